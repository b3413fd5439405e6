from .bvr_attention_decoder import BVRAttentionDecoder
from .bvr_location_embedding import BVRLocationEmbedding
from .c2f_layer import C2fBottleneck, C2fLayer
from .corner_pool import CornerPool, directional_pool
from .cross_contextual_attention import CrossContextualAttention
from .cross_scan import cross_merge, cross_scan
from .focal_decoder_stage import FocalNetDecoderStage
from .mamba_yolo_blocks import (LayerNorm2d, LSBlock, RGBlock, SimpleStem,
                                VisionClueMerge, VSSBlock, XSSBlock)
from .scse import SCSE
from .selective_scan import (selective_scan_chunked, selective_scan_cpp,
                             selective_scan_fn, selective_scan_ref)
from .sppf_bottleneck import SPPFBottleneck
from .ss2d import SS2D
from .std_conv2d import StdConv2d, standardize_weight
from .swin_decoder_stage import SwinDecoderStage
from .vss_decoder_stage import VSSDecoderStage

__all__ = [
    'BVRAttentionDecoder', 'BVRLocationEmbedding', 'C2fBottleneck',
    'C2fLayer', 'CornerPool', 'directional_pool', 'CrossContextualAttention',
    'cross_merge', 'cross_scan', 'FocalNetDecoderStage', 'LayerNorm2d',
    'LSBlock', 'RGBlock', 'SimpleStem', 'VisionClueMerge', 'VSSBlock',
    'XSSBlock', 'SCSE', 'selective_scan_chunked', 'selective_scan_cpp',
    'selective_scan_fn', 'selective_scan_ref', 'SPPFBottleneck', 'SS2D',
    'StdConv2d', 'standardize_weight', 'SwinDecoderStage', 'VSSDecoderStage'
]

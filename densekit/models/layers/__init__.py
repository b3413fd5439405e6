from .c2f_layer import C2fBottleneck, C2fLayer
from .sppf_bottleneck import SPPFBottleneck
from .cross_scan import cross_merge, cross_scan
from .mamba_yolo_blocks import (LayerNorm2d, LSBlock, RGBlock, SimpleStem,
                                VisionClueMerge, VSSBlock, XSSBlock)
from .ss2d import SS2D

__all__ = ['C2fBottleneck', 'C2fLayer', 'SPPFBottleneck', 'cross_scan',
           'cross_merge', 'SS2D', 'LayerNorm2d', 'LSBlock', 'RGBlock',
           'SimpleStem', 'VisionClueMerge', 'VSSBlock', 'XSSBlock']
from .selective_scan import (selective_scan_chunked, selective_scan_cpp,  # noqa
                             selective_scan_fn, selective_scan_ref)

__all__ += ['selective_scan_fn', 'selective_scan_chunked', 'selective_scan_cpp',
            'selective_scan_ref']
from .scse import SCSE  # noqa: E402

__all__ += ['SCSE']
from .cross_contextual_attention import CrossContextualAttention  # noqa: E402
from .focal_decoder_stage import FocalNetDecoderStage  # noqa: E402
from .swin_decoder_stage import SwinDecoderStage  # noqa: E402
from .vss_decoder_stage import VSSDecoderStage  # noqa: E402

__all__ += ['CrossContextualAttention', 'FocalNetDecoderStage',
            'SwinDecoderStage', 'VSSDecoderStage']
from .bvr_attention_decoder import BVRAttentionDecoder  # noqa: E402
from .bvr_location_embedding import BVRLocationEmbedding  # noqa: E402
from .corner_pool import CornerPool, directional_pool  # noqa: E402

__all__ += ['BVRAttentionDecoder', 'BVRLocationEmbedding', 'CornerPool',
            'directional_pool']
from .std_conv2d import StdConv2d, standardize_weight  # noqa: E402

__all__ += ['StdConv2d', 'standardize_weight']

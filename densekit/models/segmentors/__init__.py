from .dtop_encoder_decoder import DToPEncoderDecoder
from .seg_encoder_decoder import SegEncoderDecoder

__all__ = ['DToPEncoderDecoder', 'SegEncoderDecoder']

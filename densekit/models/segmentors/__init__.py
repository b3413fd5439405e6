from .seg_encoder_decoder import SegEncoderDecoder

__all__ = ['SegEncoderDecoder']

from .c2f_layer import C2fBottleneck, C2fLayer
from .sppf_bottleneck import SPPFBottleneck

__all__ = ['C2fBottleneck', 'C2fLayer', 'SPPFBottleneck']

from .bvr_roi_head import BVRRoIHead
from .roi_extractors import ScopedRoIExtractor

__all__ = ['BVRRoIHead', 'ScopedRoIExtractor']

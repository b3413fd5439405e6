from .bvr_roi_head import BVRRoIHead

__all__ = ['BVRRoIHead']

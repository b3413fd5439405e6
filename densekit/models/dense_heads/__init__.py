from .bvr_head import BVRHead
from .bvr_keypoint_head import BVRKeypointHead
from .trend_aware_yolov8_head import TrendAwareYOLOv8Head
from .yolov8_head import YOLOv8Head

__all__ = ['BVRHead', 'BVRKeypointHead', 'YOLOv8Head',
           'TrendAwareYOLOv8Head']

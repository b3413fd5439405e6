from .bvr_head import BVRHead
from .bvr_keypoint_head import BVRKeypointHead
from .yolov8_head import YOLOv8Head
from .trend_aware_yolov8_head import TrendAwareYOLOv8Head

__all__ = ['BVRHead', 'BVRKeypointHead', 'YOLOv8Head',
           'TrendAwareYOLOv8Head']

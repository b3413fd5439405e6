from .bvr_head import BVRHead
from .bvr_keypoint_head import BVRKeypointHead
from .yolov8_head import YOLOv8Head

__all__ = ['BVRHead', 'BVRKeypointHead', 'YOLOv8Head']

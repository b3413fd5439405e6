from .yolov8_head import YOLOv8Head

__all__ = ['YOLOv8Head']

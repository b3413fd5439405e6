from .yolo_warmup import YOLOWarmupLR

__all__ = ['YOLOWarmupLR']

from .yolo_ciou_loss import YOLOCIoULoss

__all__ = ['YOLOCIoULoss']

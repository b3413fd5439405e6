from .atm_loss import ATMLoss
from .yolo_ciou_loss import YOLOCIoULoss

__all__ = ['ATMLoss', 'YOLOCIoULoss']

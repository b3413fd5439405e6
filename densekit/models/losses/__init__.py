from .atm_loss import ATMLoss
from .class_dice_loss import ClassDiceLoss
from .yolo_ciou_loss import YOLOCIoULoss

__all__ = ['ATMLoss', 'ClassDiceLoss', 'YOLOCIoULoss']

from .base_backbone import BaseBackbone
from .yolov8_csp_darknet import YOLOv8CSPDarknet

__all__ = ['BaseBackbone', 'YOLOv8CSPDarknet']

from .base_backbone import BaseBackbone
from .yolov8_csp_darknet import YOLOv8CSPDarknet
from .mamba_yolo import MambaYOLO, convert_mamba_yolo

__all__ = ['BaseBackbone', 'YOLOv8CSPDarknet', 'MambaYOLO',
           'convert_mamba_yolo']

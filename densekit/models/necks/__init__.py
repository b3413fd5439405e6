from .cbnet_fpn import CBFPN
from .yolov8_pafpn import YOLOv8PAFPN
from .mamba_yolo_pafpn import MambaYOLOPAFPN

__all__ = ['YOLOv8PAFPN', 'MambaYOLOPAFPN', 'CBFPN']

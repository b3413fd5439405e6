from .cbnet_fpn import CBFPN
from .dual_flow_perception import DualFlowPerception
from .long_short_temporal_fusion import LongShortTemporalFusion
from .yolov8_pafpn import MambaYOLOPAFPN, YOLOv8PAFPN

__all__ = ['YOLOv8PAFPN', 'MambaYOLOPAFPN', 'CBFPN', 'DualFlowPerception',
           'LongShortTemporalFusion']

from ..utils.composite_features import per_backbone_features
from .base_backbone import BaseBackbone
from .cbnet import CBNet
from .conv_stem_vit import ConvStemViT
from .edgenext import EdgeNeXt, convert_edgenext
from .focalnet import FocalNet, convert_focalnet
from .hornet import HorNet, convert_hornet
from .mamba_yolo import MambaYOLO, convert_mamba_yolo
from .resnet_vit import ResNetViT, convert_resnet_vit
from .scse_unet import SCSEUNet
from .smt import SMT, convert_smt
from .transnext import TransNeXt, convert_transnext
from .wide_resnet import WideResNet
from .yolov8_csp_darknet import YOLOv8CSPDarknet

__all__ = ['BaseBackbone', 'CBNet', 'per_backbone_features',
           'YOLOv8CSPDarknet', 'MambaYOLO',
           'convert_mamba_yolo', 'EdgeNeXt', 'convert_edgenext', 'FocalNet',
           'convert_focalnet', 'HorNet', 'convert_hornet', 'SMT',
           'convert_smt', 'ConvStemViT', 'TransNeXt', 'convert_transnext',
           'WideResNet', 'SCSEUNet', 'ResNetViT', 'convert_resnet_vit']

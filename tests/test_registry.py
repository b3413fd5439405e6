"""One registration, usable from mmdet and mmseg configs alike."""
import torch
from mmengine.registry import DefaultScope

from densekit.models.backbones import YOLOv8CSPDarknet
from densekit.registry import MODELS as DENSEKIT_MODELS

BACKBONE = dict(type='densekit.YOLOv8CSPDarknet', deepen_factor=0.33,
                widen_factor=0.25, out_indices=(2, 3, 4))


def _build_in_scope(scope, cfg):
    from mmengine.registry import MODELS
    with DefaultScope.overwrite_default_scope(scope):
        with MODELS.switch_scope_and_registry(scope) as registry:
            return registry.build(cfg)


def test_registries_are_children_of_mmengine_roots():
    assert DENSEKIT_MODELS.scope == 'densekit'
    assert DENSEKIT_MODELS.parent.scope == 'mmengine'
    assert DENSEKIT_MODELS.get('YOLOv8CSPDarknet') is YOLOv8CSPDarknet


def test_backbone_in_mmdet_detector():
    from mmdet.models import RetinaNet
    detector = _build_in_scope('mmdet', dict(
        type='RetinaNet',
        data_preprocessor=dict(type='DetDataPreprocessor'),
        backbone=BACKBONE,
        neck=dict(type='FPN', in_channels=[64, 128, 256], out_channels=32,
                  num_outs=3),
        bbox_head=dict(
            type='RetinaHead', num_classes=3, in_channels=32,
            feat_channels=32, stacked_convs=1,
            anchor_generator=dict(
                type='AnchorGenerator', octave_base_scale=4,
                scales_per_octave=1, ratios=[1.0], strides=[8, 16, 32]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder'))))
    assert isinstance(detector, RetinaNet)
    assert type(detector.backbone) is YOLOv8CSPDarknet
    cls_scores, _ = detector(torch.rand(1, 3, 64, 64), mode='tensor')
    assert [c.shape[-1] for c in cls_scores] == [8, 4, 2]


def test_backbone_in_mmseg_segmentor():
    from mmseg.models import EncoderDecoder
    segmentor = _build_in_scope('mmseg', dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor'),
        backbone=BACKBONE,
        decode_head=dict(type='FCNHead', in_channels=64, in_index=0,
                         channels=16, num_convs=1, num_classes=5,
                         norm_cfg=dict(type='BN'))))
    assert isinstance(segmentor, EncoderDecoder)
    assert type(segmentor.backbone) is YOLOv8CSPDarknet
    logits = segmentor(torch.rand(2, 3, 64, 64), mode='tensor')
    assert logits.shape == (2, 5, 8, 8)
    logits.mean().backward()
    assert segmentor.backbone.stages[0].conv.weight.grad is not None

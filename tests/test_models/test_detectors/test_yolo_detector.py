"""densekit.YOLODetector reads the backbone contract: channels and strides."""
import pytest
from mmengine.registry import init_default_scope

from densekit.registry import MODELS


def detector(**head):
    return dict(
        type='densekit.YOLODetector',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0, 0, 0],
                               std=[255, 255, 255], pad_size_divisor=32),
        backbone=dict(type='densekit.YOLOv8CSPDarknet', deepen_factor=0.33,
                      widen_factor=0.125, out_indices=(2, 3, 4)),
        neck=dict(type='densekit.YOLOv8PAFPN', deepen_factor=0.33),
        bbox_head=dict(type='densekit.YOLOv8Head', num_classes=3, **head),
        train_cfg=dict(assigner=dict(type='densekit.BatchTaskAlignedAssigner',
                                     topk=10, alpha=0.5, beta=6.0)),
        test_cfg=dict(score_thr=0.001, nms_pre=1000,
                      nms=dict(type='nms', iou_threshold=0.7),
                      max_per_img=100))


def test_strides_and_channels_come_from_the_backbone():
    init_default_scope('mmdet')
    model = MODELS.build(detector())
    assert model.backbone.out_strides == [8, 16, 32]
    assert model.bbox_head.featmap_strides == [8, 16, 32]
    assert model.neck.in_channels == model.backbone.out_channels
    # the same value given explicitly is accepted
    MODELS.build(detector(featmap_strides=(8, 16, 32)))


def test_disagreeing_strides_name_the_key():
    init_default_scope('mmdet')
    with pytest.raises(ValueError, match=r'model\.bbox_head\.featmap_strides'
                       r'=\[4, 8, 16\] but the neck outputs strides '
                       r'\[8, 16, 32\]'):
        MODELS.build(detector(featmap_strides=(4, 8, 16)))

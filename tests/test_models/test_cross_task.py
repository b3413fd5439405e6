"""The cross-task matrix: every registered densekit backbone, one class,
trained for a step inside every task's model.

Columns: (a) densekit's YOLO detector (YOLOv8 PAFPN + head), (b) mmdet's
RetinaNet (FPN), (c) mmseg's UPerNet (UPerHead + FCN auxiliary head, in
``test_segmentors/test_upernet.py``), (d) the medical U-Net encoder
(Swin-Unet's patch-expanding decoder, in
``test_segmentors/test_medical_unet_encoders.py``). Rows:
``backbone_cases.BACKBONES``, which must list every registered backbone. A
backbone must be registered once, in densekit's registry only: the same class
serves every task.

The columns read each row's strides from the backbone's ``feature_info``
(the head strides and anchors follow them), so a backbone whose four
outputs double from level to level at other strides than 4-32 (ResNetViT:
2, 4, 8, 16) runs in the same models.
"""
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from densekit.registry import MODELS
from tests.test_models.backbone_cases import BACKBONES, registered_backbones

SIZE = 64


def det_samples(n=2):
    samples = []
    for i in range(n):
        sample = DetDataSample(metainfo=dict(
            img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE),
            scale_factor=(1., 1.), batch_input_shape=(SIZE, SIZE),
            pad_shape=(SIZE, SIZE)))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[8. + 4 * i, 8., 40., 44.]]),
            labels=torch.tensor([i % 3]))
        samples.append(sample)
    return samples


def backbone_cfg(name, last=None):
    kwargs = dict(BACKBONES[name])
    if last is not None:
        kwargs['out_indices'] = tuple(kwargs['out_indices'])[-last:]
    return dict(type=f'densekit.{name}', **kwargs)


def contract(name, last=None):
    """(channels, strides) of the row's outputs, from its feature_info; the
    strides must double from level to level (the necks' 2x resampling)."""
    info = MODELS.build(backbone_cfg(name, last)).feature_info
    strides = [i['stride'] for i in info]
    assert all(b == 2 * a for a, b in zip(strides, strides[1:])), strides
    return [i['channels'] for i in info], strides


def yolo_detector(name):
    return dict(
        type='densekit.YOLODetector',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0, 0, 0],
                               std=[255, 255, 255], pad_size_divisor=32),
        backbone=backbone_cfg(name, last=3),  # strides 8, 16, 32 mostly
        neck=dict(type='densekit.YOLOv8PAFPN', deepen_factor=0.33),
        # featmap_strides come from the backbone's contract
        bbox_head=dict(type='densekit.YOLOv8Head', num_classes=3,
                       reg_max=16),
        train_cfg=dict(assigner=dict(type='densekit.BatchTaskAlignedAssigner',
                                     topk=10, alpha=0.5, beta=6.0)),
        test_cfg=dict(score_thr=0.001, nms_pre=1000,
                      nms=dict(type='nms', iou_threshold=0.7),
                      max_per_img=100))


def retinanet(name, channels, strides):
    # FPN levels: outputs 1..3 and two extra stride-2 convs on the last
    anchor_strides = list(strides[1:]) + [strides[-1] * 2, strides[-1] * 4]
    return dict(
        type='RetinaNet',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0, 0, 0],
                               std=[255, 255, 255], pad_size_divisor=32),
        backbone=backbone_cfg(name),
        # strides 8-128 from the stride-8..32 maps, as mmdet's RetinaNet
        # (4-64 for ResNetViT's 4..16)
        neck=dict(type='FPN', in_channels=list(channels), out_channels=32,
                  start_level=1, add_extra_convs='on_input', num_outs=5),
        bbox_head=dict(
            type='RetinaHead', num_classes=3, in_channels=32,
            stacked_convs=1, feat_channels=32,
            anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                  scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                                  strides=anchor_strides),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                            target_means=[.0, .0, .0, .0],
                            target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                          alpha=0.25, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5,
                          neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1),
            sampler=dict(type='PseudoSampler'), allowed_border=-1,
            pos_weight=-1, debug=False),
        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                      nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=10))


def test_every_backbone_has_a_row():
    assert set(registered_backbones()) == set(BACKBONES), (
        'add the new backbone to tests/test_models/backbone_cases.py')


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_registered_once_in_densekit_only(name):
    """No per-task copy: mmdet's and mmseg's registries do not hold the
    name, and scoped lookups from either reach densekit's class."""
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmseg.registry import MODELS as MMSEG_MODELS
    cls = MODELS.get(name)
    assert cls is not None and cls.__module__.startswith('densekit.')
    assert name not in MMDET_MODELS.module_dict
    assert name not in MMSEG_MODELS.module_dict
    assert MMDET_MODELS.get(f'densekit.{name}') is cls
    assert MMSEG_MODELS.get(f'densekit.{name}') is cls


def _train_step(model, samples):
    model.train()
    inputs = torch.rand(len(samples), 3, SIZE, SIZE) * 255
    data = model.data_preprocessor(dict(inputs=list(inputs),
                                        data_samples=samples), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total, _ = model.parse_losses(losses)  # per-level lists summed
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert grads and sum(float(g.abs().sum()) for g in grads
                         if g is not None) > 0
    model.eval()
    with torch.no_grad():
        result = model.predict(data['inputs'][:1], data['data_samples'][:1])
    assert result[0].pred_instances.bboxes.shape[-1] == 4


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_backbone_in_yolo_detector(name):
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(yolo_detector(name))
    assert type(model.backbone) is MODELS.get(name)
    assert model.neck.in_channels == model.backbone.out_channels
    assert model.bbox_head.featmap_strides == model.backbone.out_strides
    _train_step(model, det_samples())


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_backbone_in_retinanet(name):
    init_default_scope('mmdet')
    torch.manual_seed(0)
    channels, strides = contract(name)
    # mmdet reads train_cfg/test_cfg by attribute: a ConfigDict
    model = MODELS.build(ConfigDict(retinanet(name, channels, strides)))
    assert type(model.backbone) is MODELS.get(name)
    _train_step(model, det_samples())

"""CBNetV2 detectors: assistant supervision (weighted, renamed losses of the
assisting backbones), lead-only prediction, and the CBNetV2 configs (params
against the published counts, one training step each)."""
import copy
import os.path as osp
from unittest import mock

import pytest
import torch
from mmdet.models.detectors import SingleStageDetector, TwoStageDetector
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from densekit.models.detectors import CBYOLODetector
from densekit.models.necks import CBFPN
from densekit.registry import MODELS
from tests.conftest import ROOT

SIZE = 64
# published parameter counts (README of VDIGPKU/CBNetV2), in millions
OFFICIAL_PARAMS_M = {
    'faster-rcnn_cbv2-r50_fpn_1x_coco.py': 69,
    'mask-rcnn_cbv2-swin-t_fpn_3x_coco.py': 76,
}


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmdet')


def det_samples(n=2, size=SIZE, masks=False):
    samples = []
    for i in range(n):
        sample = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size),
            scale_factor=(1., 1.), batch_input_shape=(size, size),
            pad_shape=(size, size)))
        box = [size * 0.1 + 2 * i, size * 0.15, size * 0.7, size * 0.8]
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([box]), labels=torch.tensor([i % 3]))
        if masks:
            mask = torch.zeros(1, size, size, dtype=torch.uint8)
            x1, y1, x2, y2 = (int(v) for v in box)
            mask[:, y1:y2, x1:x2] = 1
            sample.gt_instances.masks = BitmapMasks(mask.numpy(), size, size)
        samples.append(sample)
    return samples


def tiny_cbnet(**kwargs):
    return dict(type='densekit.CBNet',
                backbone=dict(type='ResNet', depth=18, base_channels=8,
                              stem_channels=8, norm_eval=False),
                **kwargs)


def tiny_fpn():
    return dict(type='densekit.CBFPN',
                neck=dict(type='FPN', in_channels=[8, 16, 32, 64],
                          out_channels=16, num_outs=5))


def tiny_two_stage(with_mask=False, **kwargs):
    cfg = Config.fromfile(osp.join(
        ROOT, 'configs/_base_/models/' +
        ('mask-rcnn_r50_fpn.py' if with_mask else 'faster-rcnn_r50_fpn.py')))
    model = cfg.model
    model.type = 'densekit.CBTwoStageDetector'
    model.data_preprocessor.update(mean=[0, 0, 0], std=[255, 255, 255])
    model.backbone = tiny_cbnet()
    model.neck = tiny_fpn()
    model.rpn_head.update(in_channels=16, feat_channels=16)
    model.roi_head.bbox_roi_extractor.out_channels = 16
    model.roi_head.bbox_head.update(in_channels=16, fc_out_channels=32,
                                    num_classes=3)
    if with_mask:
        model.roi_head.mask_roi_extractor.out_channels = 16
        model.roi_head.mask_head.update(in_channels=16, conv_out_channels=8,
                                        num_convs=1, num_classes=3)
    model.train_cfg.rcnn.sampler.num = 64
    for key, value in kwargs.items():
        model[key] = value  # replace, not merge
    return MODELS.build(model)


def tiny_retinanet(**kwargs):
    return MODELS.build(ConfigDict(
        type='densekit.CBSingleStageDetector',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0, 0, 0],
                               std=[255, 255, 255], pad_size_divisor=32),
        backbone=tiny_cbnet(),
        neck=dict(type='densekit.CBFPN',
                  neck=dict(type='FPN', in_channels=[8, 16, 32, 64],
                            out_channels=16, start_level=1,
                            add_extra_convs='on_input', num_outs=5)),
        bbox_head=dict(
            type='RetinaHead', num_classes=3, in_channels=16,
            stacked_convs=1, feat_channels=16,
            anchor_generator=dict(type='AnchorGenerator',
                                  octave_base_scale=4, scales_per_octave=3,
                                  ratios=[0.5, 1.0, 2.0],
                                  strides=[8, 16, 32, 64, 128]),
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
                      max_per_img=10),
        **kwargs))


def preprocess(model, samples, size=SIZE):
    inputs = torch.rand(len(samples), 3, size, size) * 255
    data = model.data_preprocessor(
        dict(inputs=list(inputs), data_samples=samples), True)
    return data['inputs'], data['data_samples']


def reference_losses(model, mmdet_cls, inputs, samples):
    """mmdet's own loss of ``mmdet_cls`` on each backbone's neck features
    alone (extract_feat patched to return them), each after reseeding."""
    refs = []
    torch.manual_seed(0)
    per_backbone = model.extract_feats(inputs)
    for feats in per_backbone:
        with mock.patch.object(model, 'extract_feat', return_value=feats):
            refs.append(mmdet_cls.loss(model, inputs, copy.deepcopy(samples)))
    return refs


def check_assistant_losses(model, mmdet_cls, inputs, samples):
    model.train()
    torch.manual_seed(0)
    losses = model.loss(inputs, copy.deepcopy(samples))
    aux, lead = reference_losses(model, mmdet_cls, inputs, samples)
    assert set(losses) == set(lead) | {f'{k}_aux0' for k in aux}
    for name, value in lead.items():
        torch.testing.assert_close(losses[name], value)
    for name, value in aux.items():
        scale = 0.5 if 'loss' in name else 1.0
        got = losses[f'{name}_aux0']
        if isinstance(value, (list, tuple)):
            for g, v in zip(got, value):
                torch.testing.assert_close(g, v * scale)
        else:
            torch.testing.assert_close(got, value * scale)
    return losses


def test_two_stage_assistant_losses_are_weighted_and_renamed():
    torch.manual_seed(0)
    model = tiny_two_stage()
    assert model.loss_weights == (0.5, 1.0)
    samples = det_samples()
    inputs, samples = preprocess(model, samples)
    losses = check_assistant_losses(model, TwoStageDetector, inputs, samples)
    for name in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox',
                 'acc'):
        assert name in losses and f'{name}_aux0' in losses
    total, log_vars = model.parse_losses(losses)
    assert 'loss_cls_aux0' in log_vars and torch.isfinite(total)
    total.backward()
    # the assisting backbone learns from its own supervision too
    first = model.backbone.backbones[0]
    assert first.conv1.weight.grad.abs().sum() > 0


def test_mask_rcnn_has_mask_losses_for_every_backbone():
    torch.manual_seed(0)
    model = tiny_two_stage(with_mask=True)
    inputs, samples = preprocess(model, det_samples(masks=True))
    losses = check_assistant_losses(model, TwoStageDetector, inputs, samples)
    assert 'loss_mask' in losses and 'loss_mask_aux0' in losses
    total, _ = model.parse_losses(losses)
    total.backward()
    model.eval()
    with torch.no_grad():
        result = model.predict(inputs[:1], samples[:1])
    assert result[0].pred_instances.masks.shape[-2:] == (SIZE, SIZE)


def test_single_stage_assistant_losses_and_custom_weights():
    torch.manual_seed(0)
    model = tiny_retinanet()
    inputs, samples = preprocess(model, det_samples())
    check_assistant_losses(model, SingleStageDetector, inputs, samples)
    weighted = tiny_retinanet(loss_weights=[0.25, 2.0])
    weighted.load_state_dict(model.state_dict())
    weighted.train()
    base = model.loss(inputs, samples)
    other = weighted.loss(inputs, samples)
    for name in ('loss_cls', 'loss_bbox'):
        for b, o in zip(base[name], other[name]):
            torch.testing.assert_close(o, 2 * b)
        for b, o in zip(base[f'{name}_aux0'], other[f'{name}_aux0']):
            torch.testing.assert_close(o, 0.5 * b)


def count_neck_calls(model):
    calls = []
    model.neck.neck.register_forward_hook(lambda *args: calls.append(1))
    return calls


@pytest.mark.parametrize('build', [tiny_two_stage, tiny_retinanet])
def test_prediction_uses_the_lead_only(build):
    torch.manual_seed(0)
    model = build()
    calls = count_neck_calls(model)
    inputs, samples = preprocess(model, det_samples(1))
    model.eval()
    with torch.no_grad():
        result = model.predict(inputs, samples)
        feats = model.extract_feat(inputs)
        lead = model.neck.neck(model.backbone(inputs)[-1])
    assert len(calls) == 3  # predict, extract_feat, the reference
    assert result[0].pred_instances.bboxes.shape[-1] == 4
    torch.testing.assert_close(tuple(feats), tuple(lead))


def test_plain_neck_and_bad_weights_raise():
    with pytest.raises(ValueError, match="wrap it: neck=dict"):
        tiny_two_stage(neck=dict(type='FPN', in_channels=[8, 16, 32, 64],
                                 out_channels=16, num_outs=5))
    with pytest.raises(ValueError, match=r'one weight per backbone \(2'):
        tiny_retinanet(loss_weights=[0.5])


def test_yolo_detector_with_composite_backbone():
    from tests.test_models.backbone_cases import BACKBONES
    torch.manual_seed(0)
    kwargs = dict(BACKBONES['YOLOv8CSPDarknet'], out_indices=(2, 3, 4))
    model = MODELS.build(dict(
        type='densekit.CBYOLODetector',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0, 0, 0],
                               std=[255, 255, 255], pad_size_divisor=32),
        backbone=dict(type='densekit.CBNet', backbone=dict(
            type='densekit.YOLOv8CSPDarknet', **kwargs)),
        neck=dict(type='densekit.CBFPN', neck=dict(
            type='densekit.YOLOv8PAFPN', deepen_factor=0.33)),
        bbox_head=dict(type='densekit.YOLOv8Head', num_classes=3,
                       featmap_strides=(8, 16, 32), reg_max=16),
        train_cfg=dict(assigner=dict(type='densekit.BatchTaskAlignedAssigner',
                                     topk=10, alpha=0.5, beta=6.0)),
        test_cfg=dict(score_thr=0.001, nms_pre=100,
                      nms=dict(type='nms', iou_threshold=0.7),
                      max_per_img=10)))
    assert isinstance(model, CBYOLODetector)
    assert isinstance(model.neck, CBFPN)
    # the PAFPN's in_channels come from the composite's contract
    assert model.neck.in_channels == model.backbone.out_channels
    inputs, samples = preprocess(model, det_samples())
    check_assistant_losses(model, SingleStageDetector, inputs, samples)


# ------------------------------------------------------------- configs
_BUILT = {}


def build_config(name):
    if name not in _BUILT:
        cfg = Config.fromfile(osp.join(ROOT, 'configs', 'det', name))
        init_default_scope(cfg.get('default_scope', 'mmdet'))
        torch.manual_seed(0)
        _BUILT[name] = (cfg, MODELS.build(cfg.model))  # no init_weights:
        # that would download the pretrained checkpoints
    return _BUILT[name]


@pytest.mark.parametrize('name', sorted(OFFICIAL_PARAMS_M))
def test_params_match_the_published_count(name):
    _, model = build_config(name)
    params = sum(p.numel() for p in model.parameters())
    print(f'{name}: {params} parameters ({params / 1e6:.2f}M, published '
          f'{OFFICIAL_PARAMS_M[name]}M)')
    assert params / 1e6 == pytest.approx(OFFICIAL_PARAMS_M[name], rel=0.05)
    assert model.backbone.num_backbones == 2


def train_step(model, masks=False, size=SIZE):
    torch.manual_seed(0)
    inputs, samples = preprocess(model, det_samples(masks=masks, size=size),
                                 size)
    model.train()
    losses = model.loss(inputs, samples)
    assert any(k.endswith('_aux0') for k in losses)
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize('name,masks', [
    ('faster-rcnn_cbv2-r50_fpn_1x_coco.py', False),
    ('mask-rcnn_cbv2-swin-t_fpn_3x_coco.py', True),
    ('mamba_yolo_cbv2_t_coco.py', False),
    ('faster-rcnn_cbv2-r50_fpn_shapes.py', False),
])
def test_config_trains_a_step(name, masks):
    cfg, model = build_config(name)
    if hasattr(model, 'roi_head'):
        model.train_cfg.rcnn.sampler.num = 64  # a smaller RoI batch
        model.roi_head.bbox_sampler.num = 64
    train_step(model, masks=masks)
    assert cfg.model.backbone.type == 'densekit.CBNet'
    assert cfg.model.neck.type == 'densekit.CBFPN'


def test_shapes_config_reads_the_synthetic_shapes():
    cfg, model = build_config('faster-rcnn_cbv2-r50_fpn_shapes.py')
    assert cfg.train_dataloader.dataset.data_root == 'data/synthetic_shapes/'
    assert cfg.train_pipeline[2].scale == (256, 256)
    assert model.roi_head.bbox_head.num_classes == 4
    assert model.backbone.out_channels == [64, 128, 256, 512]

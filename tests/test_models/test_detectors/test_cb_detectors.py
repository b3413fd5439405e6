"""CBNetV2 detectors: assistant supervision (weighted, renamed losses of the
assisting backbones; the two-stage RoI heads on the lead's proposals as the
official loop, or on their own), lead-only prediction, and the CBNetV2
configs (params against the published counts, one training step each)."""
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
from densekit.models.detectors.cb_assistant_supervision import \
    LOSS_WEIGHT_RULES
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


def tiny_retinanet(backbone=None, **kwargs):
    return MODELS.build(ConfigDict(
        type='densekit.CBSingleStageDetector',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0, 0, 0],
                               std=[255, 255, 255], pad_size_divisor=32),
        backbone=backbone or tiny_cbnet(),
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


def official_two_stage_losses(model, inputs, samples):
    """VDIGPKU/CBNetV2 ``mmdet/models/detectors/two_stage.py``
    ``TwoStageDetector.forward_train``, restated with the mmdet 3 head calls
    (the RPN part as mmdet 3's ``TwoStageDetector.loss`` writes it):

    - ``xs``: the neck features of every backbone, in backbone order (the
      official CBFPN returns the list; the lead, used at test, is last);
    - ``loss_weights = [0.5] + [1] * (len(xs) - 1)``;
    - ``for i, x in enumerate(xs)``: the RPN loss and ``proposal_list``
      of backbone ``i`` -- the list is overwritten, so the last (the lead's)
      survives the loop;
    - ``for i, x in enumerate(xs)``: ``roi_head`` loss on ``x`` with that
      ``proposal_list``.

    Returns the per-backbone unweighted loss dicts and the weights."""
    xs = model.extract_feats(inputs)
    loss_weights = [0.5] + [1] * (len(xs) - 1)
    proposal_cfg = model.train_cfg.get('rpn_proposal', model.test_cfg.rpn)
    per_backbone = [dict() for _ in xs]
    for i, x in enumerate(xs):
        rpn_samples = copy.deepcopy(samples)
        for sample in rpn_samples:
            sample.gt_instances.labels = torch.zeros_like(
                sample.gt_instances.labels)
        rpn_losses, proposal_list = model.rpn_head.loss_and_predict(
            x, rpn_samples, proposal_cfg=proposal_cfg)
        per_backbone[i].update({
            (f'rpn_{k}' if 'loss' in k and 'rpn' not in k else k): v
            for k, v in rpn_losses.items()})
    for i, x in enumerate(xs):
        per_backbone[i].update(model.roi_head.loss(
            x, copy.deepcopy(proposal_list), samples))
    return per_backbone, loss_weights


def assert_weighted(losses, per_backbone, weights):
    """``losses`` = the lead's (last) under mmdet's names, backbone k's
    under ``*_aux{k}``, every ``loss*`` entry times its weight."""
    last = len(per_backbone) - 1
    expected = {}
    for k, (part, weight) in enumerate(zip(per_backbone, weights)):
        for name, value in part.items():
            scale = weight if 'loss' in name else 1.0
            key = name if k == last else f'{name}_aux{k}'
            expected[key] = [v * scale for v in value] \
                if isinstance(value, (list, tuple)) else value * scale
    assert set(losses) == set(expected)
    diff = 0.
    for name, value in expected.items():
        got = losses[name]
        for g, v in (zip(got, value) if isinstance(value, list)
                     else [(got, value)]):
            torch.testing.assert_close(g, v)
            diff = max(diff, (g - v).abs().max().item())
    return diff


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


def check_official_losses(model, inputs, samples):
    model.train()
    torch.manual_seed(0)
    losses = model.loss(inputs, copy.deepcopy(samples))
    torch.manual_seed(0)
    per_backbone, weights = official_two_stage_losses(model, inputs, samples)
    diff = assert_weighted(losses, per_backbone, weights)
    print(f'CB two-stage losses vs the official loop: max |diff| {diff}')
    return losses


def randomize(model, seed=0):
    """Non-degenerate weights: every backbone/link parameter perturbed
    (the zero-initialised links included) and BN statistics random, so the
    copies' features, and their RPNs' proposals, differ."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.backbone.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * 0.05)
        for module in model.backbone.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1, generator=gen)
                module.running_var.uniform_(0.5, 1.5, generator=gen)
    return model


def test_two_stage_assistant_losses_are_weighted_and_renamed():
    torch.manual_seed(0)
    model = randomize(tiny_two_stage())
    assert model.loss_weights == (0.5, 1.0)
    assert model.assistant_proposals == 'lead'
    samples = det_samples()
    inputs, samples = preprocess(model, samples)
    losses = check_official_losses(model, inputs, samples)
    for name in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox',
                 'acc'):
        assert name in losses and f'{name}_aux0' in losses
    total, log_vars = model.parse_losses(losses)
    assert 'loss_cls_aux0' in log_vars and torch.isfinite(total)
    total.backward()
    # the assisting backbone learns from its own supervision too
    first = model.backbone.backbones[0]
    assert first.conv1.weight.grad.abs().sum() > 0


def test_two_stage_own_proposals_option_is_mmdets_loss_per_backbone():
    torch.manual_seed(0)
    model = randomize(tiny_two_stage(assistant_proposals='own'))
    inputs, samples = preprocess(model, det_samples())
    losses = check_assistant_losses(model, TwoStageDetector, inputs, samples)
    assert 'loss_cls_aux0' in losses and 'loss_rpn_cls_aux0' in losses


def record_rpn_and_roi(model, inputs, samples):
    """Run ``model.loss`` recording every RPN's proposals and what every
    RoI-head call receives (features, proposal boxes)."""
    rpn_out, roi_in = [], []
    rpn_loss_and_predict = model.rpn_head.loss_and_predict
    roi_loss = model.roi_head.loss

    def rpn_spy(x, *args, **kwargs):
        losses, results = rpn_loss_and_predict(x, *args, **kwargs)
        rpn_out.append([r.bboxes.clone() for r in results])
        return losses, results

    def roi_spy(x, rpn_results_list, *args, **kwargs):
        roi_in.append((x, [r.bboxes.clone() for r in rpn_results_list]))
        return roi_loss(x, rpn_results_list, *args, **kwargs)

    model.train()
    with mock.patch.object(model.rpn_head, 'loss_and_predict',
                           side_effect=rpn_spy), \
            mock.patch.object(model.roi_head, 'loss', side_effect=roi_spy):
        model.loss(inputs, copy.deepcopy(samples))
    return rpn_out, roi_in


@pytest.mark.parametrize('mode', ['lead', 'own'])
def test_which_proposals_each_roi_head_receives(mode):
    torch.manual_seed(0)
    model = randomize(tiny_two_stage(assistant_proposals=mode))
    inputs, samples = preprocess(model, det_samples())
    rpn_out, roi_in = record_rpn_and_roi(model, inputs, samples)
    with torch.no_grad():
        feats = model.extract_feats(inputs)
    assert len(rpn_out) == len(roi_in) == 2
    # the two RPNs propose different boxes, so the check below can tell
    assert not all(torch.equal(a, b) for a, b in zip(*rpn_out))
    for k, (x, boxes) in enumerate(roi_in):
        # RoI head k works on backbone k's features ...
        torch.testing.assert_close(tuple(x), tuple(feats[k]))
        # ... with the lead's (last RPN's) proposals, or its own
        source = rpn_out[-1] if mode == 'lead' else rpn_out[k]
        assert all(torch.equal(b, s) for b, s in zip(boxes, source)), k


def test_loss_weight_rules_and_bad_arguments():
    assert LOSS_WEIGHT_RULES['official'](3) == [0.5, 1.0, 1.0]
    assert LOSS_WEIGHT_RULES['paper'](3) == [0.5, 0.5, 1.0]
    three = dict(backbone=tiny_cbnet(num_backbones=3))
    assert tiny_two_stage(**three).loss_weights == (0.5, 1.0, 1.0)
    assert tiny_two_stage(loss_weights='paper', **three).loss_weights == (
        0.5, 0.5, 1.0)
    # single-stage: no official rule to follow, the paper's by default
    assert tiny_retinanet(backbone=tiny_cbnet(num_backbones=3)
                          ).loss_weights == (0.5, 0.5, 1.0)
    with pytest.raises(ValueError, match=r"one of \('lead', 'own'\)"):
        tiny_two_stage(assistant_proposals='first')
    with pytest.raises(ValueError, match=r"\['official', 'paper'\]"):
        tiny_retinanet(loss_weights='equal')


def test_mask_rcnn_has_mask_losses_for_every_backbone():
    torch.manual_seed(0)
    model = randomize(tiny_two_stage(with_mask=True))
    inputs, samples = preprocess(model, det_samples(masks=True))
    losses = check_official_losses(model, inputs, samples)
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

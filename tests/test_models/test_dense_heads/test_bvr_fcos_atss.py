"""BVR (RelationNet++) on FCOS and ATSS: the wrapped head's three outputs,
parity with the plain head when the decoders add nothing, a training step
of tiny FCOS-BVR / ATSS-BVR models, and the COCO configs' parameters next
to plain FCOS / ATSS."""
import os.path as osp

import pytest
import torch
from mmdet.models.detectors import ATSS, FCOS
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope

from densekit.models.dense_heads import BVRHead
from densekit.registry import MODELS
from tests.conftest import ROOT
from tests.test_models.test_dense_heads.test_bvr_head import (
    CH, GN, SIZE, STRIDES, det_samples, fpn_feats, keypoint_head_cfg)

FOCAL = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
             loss_weight=1.0)
CENTERNESS = dict(type='CrossEntropyLoss', use_sigmoid=True,
                  loss_weight=1.0)
HEADS = {
    'FCOSHead': dict(type='FCOSHead', num_classes=3, in_channels=CH,
                     stacked_convs=1, feat_channels=CH, strides=STRIDES,
                     norm_cfg=GN, loss_cls=FOCAL,
                     loss_bbox=dict(type='GIoULoss', loss_weight=1.0),
                     loss_centerness=CENTERNESS),
    'ATSSHead': dict(type='ATSSHead', num_classes=3, in_channels=CH,
                     stacked_convs=1, feat_channels=CH, norm_cfg=GN,
                     anchor_generator=dict(type='AnchorGenerator',
                                           ratios=[1.0], octave_base_scale=8,
                                           scales_per_octave=1,
                                           strides=STRIDES),
                     bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                                     target_means=[.0, .0, .0, .0],
                                     target_stds=[0.1, 0.1, 0.2, 0.2]),
                     loss_cls=FOCAL,
                     loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
                     loss_centerness=CENTERNESS),
}
DETECTORS = {'FCOSHead': ('FCOS', FCOS), 'ATSSHead': ('ATSS', ATSS)}
TRAIN_CFGS = {
    'FCOSHead': None,  # FCOS assigns inside the head
    'ATSSHead': dict(assigner=dict(type='ATSSAssigner', topk=9),
                     allowed_border=-1, pos_weight=-1, debug=False),
}


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmdet')


def tiny_bvr(head_type, head_kw=None, **bvr_kw):
    detector, _ = DETECTORS[head_type]
    return ConfigDict(
        type=detector,
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0, 0, 0],
                               std=[255, 255, 255], pad_size_divisor=32),
        backbone=dict(type='ResNet', depth=18, base_channels=8,
                      stem_channels=8, norm_eval=False),
        neck=dict(type='FPN', in_channels=[8, 16, 32, 64], out_channels=CH,
                  start_level=1, add_extra_convs='on_output', num_outs=5),
        bbox_head=dict(
            type='densekit.BVRHead',
            bbox_head=dict(HEADS[head_type], **(head_kw or {})),
            keypoint_head=keypoint_head_cfg(),
            num_heads=4, topk_per_level=5, num_keys=8,
            location_embedding=dict(type='densekit.BVRLocationEmbedding',
                                    embed_dims=32, base_size=30),
            **bvr_kw),
        train_cfg=TRAIN_CFGS[head_type],
        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.0,
                      nms=dict(type='nms', iou_threshold=0.6),
                      max_per_img=10))


def _switch_off_decoders(head):
    """Zero the decoders' output projections: each decoder then returns
    ``relu(query)``, which is the query (the towers end in a ReLU)."""
    for dec in (head.cls_decoder, head.reg_decoder):
        for proj in dec.out_projs:
            torch.nn.init.zeros_(proj.weight)
            torch.nn.init.zeros_(proj.bias)


FCOS_VARIANTS = [
    ('FCOSHead', dict()),
    ('FCOSHead', dict(norm_on_bbox=True, centerness_on_reg=True,
                      center_sampling=True, norm_cfg=None, conv_bias=True)),
    ('FCOSHead', dict(norm_on_bbox=True, centerness_on_reg=False)),
    ('ATSSHead', dict()),
]


@pytest.mark.parametrize('head_type,head_kw', FCOS_VARIANTS)
@pytest.mark.parametrize('training', [True, False])
def test_parity_with_plain_head(head_type, head_kw, training):
    """With the decoders switched off, BVRHead gives the wrapped head's own
    ``forward`` outputs, in train and test mode (FCOS scales by stride at
    test time with ``norm_on_bbox``)."""
    torch.manual_seed(0)
    head = MODELS.build(tiny_bvr(head_type, head_kw).bbox_head)
    head.init_weights()
    for scale in head.bbox_head.scales:  # non-trivial per-level scales
        scale.scale.data.uniform_(0.5, 1.5)
    head.train(training)
    feats = fpn_feats()
    with torch.no_grad():
        plain = head.bbox_head(feats)
        bvr = head(feats)
        assert len(bvr) == len(plain) == 3  # scores, boxes, centernesses
        # BVR changes the outputs ...
        assert not torch.allclose(bvr[0][0], plain[0][0])
        assert not torch.allclose(bvr[1][0], plain[1][0])
        _switch_off_decoders(head)
        bvr = head(feats)
    # ... and gives them back exactly without the decoders' updates
    for name, b_levels, p_levels in zip(
            ('cls_scores', 'bbox_preds', 'centernesses'), bvr, plain):
        for lvl, (b, p, f) in enumerate(zip(b_levels, p_levels, feats)):
            assert b.shape == p.shape and b.shape[-2:] == f.shape[-2:]
            diff = (b - p).abs().max().item()
            assert diff < 1e-5, f'{name}[{lvl}] differs by {diff}'


@pytest.mark.parametrize('head_type', ['FCOSHead', 'ATSSHead'])
def test_training_step(head_type):
    torch.manual_seed(0)
    model = MODELS.build(tiny_bvr(head_type))
    model.init_weights()
    _, detector = DETECTORS[head_type]
    head = model.bbox_head
    assert isinstance(model, detector) and isinstance(head, BVRHead)
    assert type(head.bbox_head).__name__ == head_type
    model.train()
    samples = det_samples()
    data = model.data_preprocessor(
        dict(inputs=list(torch.rand(2, 3, SIZE, SIZE) * 255),
             data_samples=samples), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert {'loss_cls', 'loss_bbox', 'loss_centerness', 'loss_kpt_heatmap',
            'loss_kpt_offset'} <= set(losses)
    values = {k: float(sum(x.detach() for x in v) if isinstance(v, list)
                       else v.detach())
              for k, v in losses.items()}
    print(head_type, values)
    assert all(torch.isfinite(torch.tensor(v)) for v in values.values())
    assert losses['loss_kpt_heatmap'] > 0 and losses['loss_kpt_offset'] > 0
    assert values['loss_bbox'] > 0  # the two boxes get positives
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    for name, mod in [('keypoint head', head.keypoint_head),
                      ('cls decoder', head.cls_decoder),
                      ('reg decoder', head.reg_decoder),
                      ('decoder output projections',
                       torch.nn.ModuleList([*head.cls_decoder.out_projs,
                                            *head.reg_decoder.out_projs])),
                      ('centerness conv',
                       head.bbox_head.conv_centerness
                       if head_type == 'FCOSHead'
                       else head.bbox_head.atss_centerness),
                      ('backbone', model.backbone)]:
        grad = sum(float(p.grad.abs().sum()) for p in mod.parameters()
                   if p.grad is not None)
        assert grad > 0, f'no gradient reaches the {name}'
    model.eval()
    with torch.no_grad():
        result = model.predict(data['inputs'], data['data_samples'])
    assert len(result) == 2
    for res in result:
        boxes = res.pred_instances.bboxes
        assert boxes.ndim == 2 and boxes.shape[-1] == 4 and len(boxes) > 0
        assert torch.isfinite(boxes).all()
        assert len(res.pred_instances.scores) == len(boxes) <= 10


@pytest.mark.parametrize('head_type', ['FCOSHead', 'ATSSHead'])
def test_empty_gt(head_type):
    model = MODELS.build(tiny_bvr(head_type))
    model.init_weights()
    losses = model.bbox_head.loss(fpn_feats(), det_samples(empty=True))
    assert losses['loss_kpt_offset'].item() == 0, \
        'there should be no offset loss without ground truth'
    # ATSSHead returns its losses per level, FCOSHead as one tensor
    total = {k: sum(v) if isinstance(v, list) else v
             for k, v in losses.items()}
    assert total['loss_bbox'].item() == 0, \
        'there should be no box loss without ground truth'
    assert total['loss_centerness'].item() == 0
    assert torch.isfinite(total['loss_cls'])
    assert torch.isfinite(losses['loss_kpt_heatmap'])


# ---- COCO configs --------------------------------------------------------

def _params(name):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'det', name))
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    return model, sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('algo,detector', [('fcos', FCOS), ('atss', ATSS)])
def test_coco_config_params(algo, detector):
    plain, n_plain = _params(f'{algo}_r50_fpn_1x_coco.py')
    bvr, n_bvr = _params(f'bvr_{algo}_r50_fpn_1x_coco.py')
    head = bvr.bbox_head
    n_kpt = sum(p.numel() for p in head.keypoint_head.parameters())
    # a shared location embedding counts once, as in model.parameters()
    n_dec = sum(p.numel() for p in {
        id(p): p for m in (head.cls_decoder, head.reg_decoder)
        for p in m.parameters()}.values())
    n_rest = n_bvr - n_plain - n_kpt - n_dec  # wrapped head differences
    print(f'\n{algo.upper()} R50-FPN:     {n_plain:,} params\n'
          f'{algo.upper()}-BVR R50-FPN: {n_bvr:,} params '
          f'(+{n_bvr - n_plain:,}, +{100 * (n_bvr / n_plain - 1):.2f}%)\n'
          f'  keypoint head {n_kpt:,}, decoders {n_dec:,}, '
          f'wrapped head vs plain {n_rest:+,}')
    assert type(plain) is type(bvr) is detector
    assert isinstance(head, BVRHead)
    assert type(head.bbox_head) is type(plain.bbox_head)
    assert head.keypoint_head.strides == (8, 16, 32, 64, 128)
    assert (head.topk_per_level, head.num_keys) == (20, 50)
    assert n_dec < 0.025 * n_plain
    if algo == 'fcos':
        # official FCOS-BVR head: conv bias and no GN in the 8 tower convs
        # (+256 bias, -512 GN affine each); its own keypoint head
        # (logits_convs=0) and embeddings per branch
        assert n_rest == 8 * (256 - 2 * 256)
        assert head.bbox_head.norm_on_bbox and head.bbox_head.center_sampling
        assert head.bbox_head.centerness_on_reg
        assert (head.cls_decoder.location_embedding is not
                head.reg_decoder.location_embedding)
    else:
        assert n_rest == 0  # the ATSSHead is unchanged
        assert (head.cls_decoder.location_embedding is
                head.reg_decoder.location_embedding)
    assert bvr.test_cfg.nms.iou_threshold == 0.6

"""BVR (RelationNet++) on RetinaNet: keypoint targets and sampling, the
wrapped head's forward / loss / predict, a training step of a tiny
RetinaNet-BVR, and the COCO config's parameters next to plain RetinaNet."""
import copy
import os.path as osp

import pytest
import torch
from mmdet.models.detectors import RetinaNet
from mmdet.structures import DetDataSample
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from densekit.models.dense_heads import BVRHead, BVRKeypointHead
from densekit.registry import MODELS
from tests.conftest import ROOT

SIZE = 64
CH = 16
STRIDES = [8, 16, 32, 64, 128]
GN = dict(type='GN', num_groups=4, requires_grad=True)


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmdet')


def det_samples(n=2, empty=False):
    samples = []
    for i in range(n):
        sample = DetDataSample(metainfo=dict(
            img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE),
            scale_factor=(1., 1.), batch_input_shape=(SIZE, SIZE),
            pad_shape=(SIZE, SIZE)))
        boxes = torch.tensor([[8. + 4 * i, 8., 40., 44.],
                              [30., 20., 60., 50.]])
        labels = torch.tensor([i % 3, 2])
        if empty:
            boxes, labels = boxes[:0], labels[:0]
        sample.gt_instances = InstanceData(bboxes=boxes, labels=labels)
        samples.append(sample)
    return samples


def keypoint_head_cfg(**kw):
    return dict(dict(type='densekit.BVRKeypointHead', num_classes=3,
                     in_channels=CH, feat_channels=CH, stacked_convs=1,
                     logits_convs=1, strides=STRIDES, norm_cfg=GN), **kw)


def tiny_bvr_retinanet(**head_kw):
    return ConfigDict(
        type='RetinaNet',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0, 0, 0],
                               std=[255, 255, 255], pad_size_divisor=32),
        backbone=dict(type='ResNet', depth=18, base_channels=8,
                      stem_channels=8, norm_eval=False),
        neck=dict(type='FPN', in_channels=[8, 16, 32, 64], out_channels=CH,
                  start_level=1, add_extra_convs='on_input', num_outs=5),
        bbox_head=dict(
            type='densekit.BVRHead',
            bbox_head=dict(
                type='RetinaHead', num_classes=3, in_channels=CH,
                stacked_convs=1, feat_channels=CH,
                anchor_generator=dict(type='AnchorGenerator',
                                      octave_base_scale=4,
                                      scales_per_octave=3,
                                      ratios=[0.5, 1.0, 2.0],
                                      strides=STRIDES),
                bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                                target_means=[.0, .0, .0, .0],
                                target_stds=[1.0, 1.0, 1.0, 1.0]),
                loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                              alpha=0.25, loss_weight=1.0),
                loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
            keypoint_head=keypoint_head_cfg(),
            num_heads=4, topk_per_level=5, num_keys=8,
            location_embedding=dict(type='densekit.BVRLocationEmbedding',
                                    embed_dims=32, base_size=40),
            **head_kw),
        train_cfg=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5,
                          neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1),
            sampler=dict(type='PseudoSampler'), allowed_border=-1,
            pos_weight=-1, debug=False),
        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.0,
                      nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=10))


def fpn_feats(n=2, seed=0):
    torch.manual_seed(seed)
    return [torch.randn(n, CH, SIZE // s if s <= SIZE else 1,
                        SIZE // s if s <= SIZE else 1) for s in STRIDES]


# ---- keypoint head -------------------------------------------------------

def test_keypoint_targets():
    head = MODELS.build(keypoint_head_cfg(strides=[8, 16]))
    sizes = [(8, 8), (4, 4)]
    points = head.get_points(sizes, torch.device('cpu'))
    assert points[0][:2].tolist() == [[4., 4.], [12., 4.]]
    strides = torch.cat([p.new_full((len(p),), s)
                         for p, s in zip(points, [8, 16])])
    points = torch.cat(points)
    box = torch.tensor([[10., 14., 42., 50.]])
    center = torch.tensor([[26., 32.]])
    heat, off, pos = head._targets_single(center, box, torch.tensor([1]),
                                          sizes, points, strides)
    assert heat.shape == (64 + 16, 3) and off.shape == (80, 2)
    # one positive per level, at the nearest cell center, heat 1 there
    pos_inds = pos.nonzero().flatten().tolist()
    assert len(pos_inds) == 2
    assert points[pos_inds[0]].tolist() == [28., 36.]  # stride 8 cell (3, 4)
    assert points[pos_inds[1]].tolist() == [24., 40.]  # stride 16 cell (1, 2)
    assert heat[pos_inds, 1].tolist() == [1., 1.]
    assert heat[:, [0, 2]].abs().sum() == 0
    torch.testing.assert_close(off[pos_inds[0]],
                               torch.tensor([-2., -4.]) / 8)
    torch.testing.assert_close(off[pos_inds[1]],
                               torch.tensor([2., -8.]) / 16)
    assert ((heat[:, 1] > 0) & (heat[:, 1] < 1)).any()  # Gaussian tails
    empty = head._targets_single(center[:0], box[:0],
                                 torch.tensor([], dtype=torch.long), sizes,
                                 points, strides)
    assert all(t.abs().sum() == 0 for t in empty)


def test_keypoint_sampling_picks_peaks():
    head = MODELS.build(keypoint_head_cfg(strides=[8, 16]))
    heat = [torch.full((1, 3, 8, 8), -10.), torch.full((1, 3, 4, 4), -10.)]
    heat[0][0, 2, 5, 3] = 5.  # class 2 at cell (x=3, y=5) of stride 8
    heat[1][0, 0, 1, 2] = 3.  # class 0 at cell (x=2, y=1) of stride 16
    offs = [torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 4, 4)]
    offs[0][0, :, 5, 3] = torch.tensor([0.25, -0.5])
    feats = [torch.arange(64.).reshape(1, 1, 8, 8),
             100 + torch.arange(16.).reshape(1, 1, 4, 4)]
    f, p, s = head.sample_keypoints(heat, offs, feats, topk_per_level=2,
                                    num_keys=2)
    assert f.shape == (1, 2, 1) and p.shape == (1, 2, 2)
    assert s[0].argsort(descending=True).tolist() == [0, 1]
    assert p[0, 0].tolist() == [3 * 8 + 4 + 2., 5 * 8 + 4 - 4.]
    assert p[0, 1].tolist() == [2 * 16 + 8., 16 + 8.]
    assert f[0, :, 0].tolist() == [5 * 8 + 3., 100 + 4 + 2.]


# ---- BVR head ------------------------------------------------------------

def test_bvr_head_forward_loss_predict():
    model = MODELS.build(tiny_bvr_retinanet())
    head = model.bbox_head
    assert isinstance(head, BVRHead) and isinstance(model, RetinaNet)
    assert isinstance(head.keypoint_head, BVRKeypointHead)
    assert head.bbox_head.train_cfg is not None  # passed down
    feats = fpn_feats()
    cls_scores, bbox_preds = head(feats)
    for f, c, b in zip(feats, cls_scores, bbox_preds):
        assert c.shape == (2, 9 * 3, *f.shape[-2:])
        assert b.shape == (2, 9 * 4, *f.shape[-2:])
    # BVR changes the predictions of the plain head on the same features
    plain_cls, _ = head.bbox_head(feats)
    assert not torch.allclose(plain_cls[0], cls_scores[0])
    losses = head.loss(feats, det_samples())
    assert {'loss_cls', 'loss_bbox', 'loss_kpt_heatmap',
            'loss_kpt_offset'} <= set(losses)
    head.eval()
    with torch.no_grad():
        results = head.predict(feats, det_samples())
    assert len(results) == 2 and results[0].bboxes.shape[-1] == 4


def test_empty_gt_gives_zero_offset_loss():
    model = MODELS.build(tiny_bvr_retinanet())
    losses = model.bbox_head.loss(fpn_feats(), det_samples(empty=True))
    assert losses['loss_kpt_offset'].item() == 0, \
        'there should be no offset loss without ground truth'
    assert sum(losses['loss_bbox']).item() == 0
    assert torch.isfinite(losses['loss_kpt_heatmap'])
    assert losses['loss_kpt_heatmap'].item() > 0  # negatives still count


@pytest.mark.parametrize('share', [False, True])
def test_training_step(share):
    torch.manual_seed(0)
    model = MODELS.build(tiny_bvr_retinanet(share_location_embedding=share))
    model.init_weights()
    head = model.bbox_head
    assert (head.cls_decoder.location_embedding is
            head.reg_decoder.location_embedding) is share
    model.train()
    samples = det_samples()
    data = model.data_preprocessor(
        dict(inputs=list(torch.rand(2, 3, SIZE, SIZE) * 255),
             data_samples=samples), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    print({k: float(sum(x.detach() for x in v) if isinstance(v, list)
                 else v.detach())
           for k, v in losses.items()})
    assert losses['loss_kpt_heatmap'] > 0 and losses['loss_kpt_offset'] > 0
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    for name, mod in [('keypoint head', head.keypoint_head),
                      ('cls decoder', head.cls_decoder),
                      ('reg decoder', head.reg_decoder),
                      ('backbone', model.backbone)]:
        grad = sum(float(p.grad.abs().sum()) for p in mod.parameters()
                   if p.grad is not None)
        assert grad > 0, f'no gradient reaches the {name}'
    model.eval()
    with torch.no_grad():
        result = model.predict(data['inputs'][:1], data['data_samples'][:1])
    assert result[0].pred_instances.bboxes.shape[-1] == 4


def test_bad_args():
    cfg = tiny_bvr_retinanet().bbox_head
    with pytest.raises(TypeError, match='BVRHead supports'):
        MODELS.build(dict(copy.deepcopy(cfg), bbox_head=dict(
            type='RPNHead', num_classes=1, in_channels=CH)))
    with pytest.raises(ValueError, match='not predicted by'):
        MODELS.build(dict(copy.deepcopy(cfg), keypoint_head=keypoint_head_cfg(
            keypoint_types=('center', ))))
    with pytest.raises(ValueError, match='keypoint_types must be'):
        MODELS.build(keypoint_head_cfg(keypoint_types=('corner', )))


# ---- COCO config ---------------------------------------------------------

def _params(name):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'det', name))
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    return model, sum(p.numel() for p in model.parameters())


def test_coco_config_params():
    plain, n_plain = _params('retinanet_r50_fpn_1x_coco.py')
    bvr, n_bvr = _params('bvr_retinanet_r50_fpn_1x_coco.py')
    head = bvr.bbox_head
    n_kpt = sum(p.numel() for p in head.keypoint_head.parameters())
    n_dec = sum(p.numel() for m in (head.cls_decoder, head.reg_decoder)
                for p in m.parameters())
    n_gn = n_bvr - n_plain - n_kpt - n_dec  # GN in FPN and head towers
    print(f'\nRetinaNet R50-FPN:     {n_plain:,} params\n'
          f'RetinaNet-BVR R50-FPN: {n_bvr:,} params '
          f'(+{n_bvr - n_plain:,}, +{100 * (n_bvr / n_plain - 1):.2f}%)\n'
          f'  keypoint head {n_kpt:,}, decoders {n_dec:,}, GN {n_gn:,}')
    assert isinstance(head, BVRHead)
    assert head.keypoint_head.strides == (8, 16, 32, 64, 128)
    assert (head.topk_per_level, head.num_keys) == (20, 50)
    # the decoders are the cheap part (4 x 256^2 per key type + embedding)
    assert n_dec < 0.025 * n_plain
    # GN (official config) in place of conv biases: +256 per conv, for the
    # FPN's 3 lateral, 3 output and 2 extra convs and the 8 tower convs
    assert n_gn == 256 * (3 + 3 + 2 + 8)
    # the official head (3 types x 4 convs of 256) makes the total +22%
    assert n_bvr - n_plain == n_kpt + n_dec + n_gn
    assert n_bvr < 1.25 * n_plain

"""BVR in Faster R-CNN's RoI head: parity with StandardRoIHead when the
decoders add nothing, per-image keys (an RoI never sees another image's
keypoints), a training step of a tiny Faster R-CNN-BVR, bad arguments, and
the COCO config's parameters next to plain Faster R-CNN."""
import os.path as osp

import pytest
import torch
from mmdet.models.detectors import FasterRCNN
from mmdet.structures import DetDataSample
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from densekit.models.roi_heads import BVRRoIHead
from densekit.registry import MODELS
from tests.conftest import ROOT

SIZE = 64
CH = 16
FC = 32
STRIDES = [4, 8, 16, 32]
GN = dict(type='GN', num_groups=4, requires_grad=True)


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmdet')


def samples(n=2, empty=False):
    out = []
    for i in range(n):
        s = DetDataSample(metainfo=dict(
            img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE),
            scale_factor=(1., 1.), batch_input_shape=(SIZE, SIZE),
            pad_shape=(SIZE, SIZE)))
        boxes = torch.tensor([[8. + 4 * i, 8., 40., 44.],
                              [30., 20., 60., 50.]])
        labels = torch.tensor([i % 3, 2])
        if empty:
            boxes, labels = boxes[:0], labels[:0]
        s.gt_instances = InstanceData(bboxes=boxes, labels=labels)
        out.append(s)
    return out


def roi_head_cfg(bvr=True, **kw):
    cfg = dict(
        type='densekit.BVRRoIHead' if bvr else 'StandardRoIHead',
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
            out_channels=CH, featmap_strides=STRIDES),
        bbox_head=dict(
            type='Shared2FCBBoxHead', in_channels=CH, fc_out_channels=FC,
            roi_feat_size=7, num_classes=3,
            bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                            target_means=[0., 0., 0., 0.],
                            target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False,
                          loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5,
                          neg_iou_thr=0.5, min_pos_iou=0.5,
                          match_low_quality=False, ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=32, pos_fraction=0.25,
                         neg_pos_ub=-1, add_gt_as_proposals=True),
            pos_weight=-1, debug=False),
        test_cfg=dict(score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=10))
    if bvr:
        cfg.update(
            keypoint_in_levels=(1, 2, 3),
            keypoint_head=dict(type='densekit.BVRKeypointHead',
                               num_classes=3, in_channels=CH,
                               feat_channels=CH, stacked_convs=1,
                               logits_convs=1, strides=STRIDES[1:],
                               norm_cfg=GN),
            num_heads=4, topk_per_level=5, num_keys=8,
            location_embedding=dict(type='densekit.BVRLocationEmbedding',
                                    embed_dims=32, base_size=30))
    cfg.update(kw)
    return ConfigDict(cfg)


def fpn_feats(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(n, CH, SIZE // s, SIZE // s, generator=g)
                 for s in STRIDES)


def proposals(counts=(6, 6), seed=1):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in counts:
        xy = torch.rand(n, 2, generator=g) * 40
        wh = torch.rand(n, 2, generator=g) * 20 + 4
        out.append(InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                scores=torch.rand(n, generator=g)))
    return out


def _switch_off_decoders(head):
    for dec in (head.cls_decoder, head.reg_decoder):
        for proj in dec.out_projs:
            torch.nn.init.zeros_(proj.weight)
            torch.nn.init.zeros_(proj.bias)


def test_parity_with_standard_roi_head():
    torch.manual_seed(0)
    bvr = MODELS.build(roi_head_cfg())
    bvr.init_weights()
    plain = MODELS.build(roi_head_cfg(bvr=False))
    missing, unexpected = plain.load_state_dict(bvr.state_dict(),
                                                strict=False)
    assert not missing  # the plain head's weights are a subset
    assert all(k.split('.')[0] in ('keypoint_head', 'cls_decoder',
                                   'reg_decoder') for k in unexpected)
    bvr.eval()
    plain.eval()
    feats, props = fpn_feats(), proposals((5, 7))
    with torch.no_grad():
        p_cls, p_reg = plain(feats, props)
        b_cls, b_reg = bvr(feats, props)
        assert b_cls.shape == p_cls.shape == (12, 4)
        assert b_reg.shape == p_reg.shape == (12, 12)
        assert not torch.allclose(b_cls, p_cls)  # BVR changes the outputs
        _switch_off_decoders(bvr)
        b_cls, b_reg = bvr(feats, props)
    assert (b_cls - p_cls).abs().max() < 1e-6
    assert (b_reg - p_reg).abs().max() < 1e-6


def test_rois_attend_to_their_own_image_only():
    """Ragged RoI counts: image 0's outputs do not change when image 1's
    features change, and equal those of image 0 run alone."""
    torch.manual_seed(0)
    head = MODELS.build(roi_head_cfg())
    head.init_weights()
    head.eval()
    feats = fpn_feats()
    props = proposals((3, 8))
    other = tuple(torch.cat([f[:1], torch.rand_like(f[1:])]) for f in feats)
    with torch.no_grad():
        cls_a, reg_a = head(feats, props)
        cls_b, reg_b = head(other, props)
        cls_alone, reg_alone = head(tuple(f[:1] for f in feats), props[:1])
    assert torch.allclose(cls_a[:3], cls_b[:3], atol=1e-6)
    assert torch.allclose(reg_a[:3], reg_b[:3], atol=1e-6)
    assert not torch.allclose(cls_a[3:], cls_b[3:])
    assert torch.allclose(cls_a[:3], cls_alone, atol=1e-6)
    assert torch.allclose(reg_a[:3], reg_alone, atol=1e-6)


def tiny_faster_rcnn_bvr():
    return ConfigDict(
        type='FasterRCNN',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0, 0, 0],
                               std=[255, 255, 255], pad_size_divisor=32),
        backbone=dict(type='ResNet', depth=18, base_channels=8,
                      stem_channels=8, norm_eval=False),
        neck=dict(type='FPN', in_channels=[8, 16, 32, 64], out_channels=CH,
                  num_outs=5),
        rpn_head=dict(
            type='RPNHead', in_channels=CH, feat_channels=CH,
            anchor_generator=dict(type='AnchorGenerator', scales=[8],
                                  ratios=[0.5, 1.0, 2.0],
                                  strides=[4, 8, 16, 32, 64]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                            target_means=[.0, .0, .0, .0],
                            target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True,
                          loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        roi_head=roi_head_cfg(train_cfg=None, test_cfg=None),
        train_cfg=dict(
            rpn=dict(
                assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.7,
                              neg_iou_thr=0.3, min_pos_iou=0.3,
                              match_low_quality=True, ignore_iof_thr=-1),
                sampler=dict(type='RandomSampler', num=64, pos_fraction=0.5,
                             neg_pos_ub=-1, add_gt_as_proposals=False),
                allowed_border=-1, pos_weight=-1, debug=False),
            rpn_proposal=dict(nms_pre=200, max_per_img=50,
                              nms=dict(type='nms', iou_threshold=0.7),
                              min_bbox_size=0),
            rcnn=roi_head_cfg().train_cfg),
        test_cfg=dict(
            rpn=dict(nms_pre=200, max_per_img=50,
                     nms=dict(type='nms', iou_threshold=0.7),
                     min_bbox_size=0),
            rcnn=roi_head_cfg().test_cfg))


def test_training_step_and_predict():
    torch.manual_seed(0)
    model = MODELS.build(tiny_faster_rcnn_bvr())
    model.init_weights()
    assert isinstance(model, FasterRCNN)
    assert isinstance(model.roi_head, BVRRoIHead)
    model.train()
    data = model.data_preprocessor(
        dict(inputs=list(torch.rand(2, 3, SIZE, SIZE) * 255),
             data_samples=samples()), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox',
            'loss_kpt_heatmap', 'loss_kpt_offset'} <= set(losses)
    assert losses['loss_kpt_heatmap'] > 0 and losses['loss_kpt_offset'] > 0
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    head = model.roi_head
    for name, mod in [('keypoint head', head.keypoint_head),
                      ('cls decoder', head.cls_decoder),
                      ('reg decoder', head.reg_decoder),
                      ('key projections',
                       torch.nn.ModuleList([*head.cls_decoder.key_value_projs,
                                            *head.reg_decoder.key_value_projs
                                            ])),
                      ('box head', head.bbox_head),
                      ('backbone', model.backbone)]:
        grad = sum(float(p.grad.abs().sum()) for p in mod.parameters()
                   if p.grad is not None)
        assert grad > 0, f'no gradient reaches the {name}'
    assert head._keys is None  # the keys do not outlive the forward
    model.eval()
    with torch.no_grad():
        result = model.predict(data['inputs'], data['data_samples'])
    assert len(result) == 2
    for res in result:
        boxes = res.pred_instances.bboxes
        assert boxes.shape[-1] == 4 and 0 < len(boxes) <= 10
        assert torch.isfinite(boxes).all()


def test_empty_gt():
    model = MODELS.build(tiny_faster_rcnn_bvr())
    model.init_weights()
    data = model.data_preprocessor(
        dict(inputs=list(torch.rand(2, 3, SIZE, SIZE) * 255),
             data_samples=samples(empty=True)), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert losses['loss_kpt_offset'].item() == 0
    assert losses['loss_bbox'].item() == 0
    assert torch.isfinite(losses['loss_cls'])


def test_bad_args():
    with pytest.raises(TypeError, match='ConvFCBBoxHead.*num_shared_fcs|'
                                        'shared fc'):
        MODELS.build(roi_head_cfg(bbox_head=dict(
            roi_head_cfg().bbox_head, type='ConvFCBBoxHead',
            num_shared_fcs=0, num_cls_fcs=1, num_reg_fcs=1)))
    with pytest.raises(ValueError, match='keypoint_in_levels'):
        MODELS.build(roi_head_cfg(keypoint_in_levels=(1, 2)))
    with pytest.raises(ValueError, match='not predicted'):
        MODELS.build(roi_head_cfg(cls_keypoint_types=('center', ),
                                  keypoint_head=dict(
                                      roi_head_cfg().keypoint_head,
                                      keypoint_types=('top_left_corner',
                                                      'bottom_right_corner'))))
    head = MODELS.build(roi_head_cfg())
    from mmdet.structures.bbox import bbox2roi
    with pytest.raises(RuntimeError, match='keys'):
        head._bbox_forward(fpn_feats(), bbox2roi([p.bboxes
                                                  for p in proposals()]))


def _params(name):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'det', name))
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    return model, sum(p.numel() for p in model.parameters())


def test_coco_config_params():
    plain, n_plain = _params('faster-rcnn_r50_fpn_1x_coco.py')
    bvr, n_bvr = _params('bvr_faster-rcnn_r50_fpn_1x_coco.py')
    head = bvr.roi_head
    n_kpt = sum(p.numel() for p in head.keypoint_head.parameters())
    n_rest = n_bvr - n_plain - n_kpt
    print(f'\nFaster R-CNN R50-FPN:     {n_plain:,} params\n'
          f'Faster R-CNN-BVR R50-FPN: {n_bvr:,} params '
          f'(+{n_bvr - n_plain:,}, +{100 * (n_bvr / n_plain - 1):.2f}%)\n'
          f'  keypoint head {n_kpt:,}, decoders + key projections '
          f'{n_rest:,}')
    assert type(plain) is type(bvr) is FasterRCNN
    assert isinstance(head, BVRRoIHead)
    assert 41.0e6 < n_plain < 42.0e6  # mmdet's 41.53M (80 classes)
    assert head.keypoint_head.strides == (8, 16, 32, 64)
    assert head.cls_decoder.embed_dims == 1024  # the shared fc width
    # attention at the FPN width: the decoders stay small
    assert head.cls_decoder.attention_dims == 256
    assert head.cls_decoder.key_dims == 256
    assert n_rest < 2.5e6, n_rest
    assert (head.topk_per_level, head.num_keys) == (20, 50)

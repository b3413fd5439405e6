"""The two detection plug-ins compose: a BVR head (RelationNet++) on a
CBNetV2 composite backbone builds, trains a step with the keypoint and the
assistant-supervision losses on every backbone copy, and predicts from the
lead copy only."""
import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope

from densekit.registry import MODELS
from tests.test_models.test_dense_heads.test_bvr_head import tiny_bvr_retinanet
from tests.test_models.test_detectors.test_cb_detectors import (
    SIZE, count_neck_calls, det_samples, preprocess, tiny_cbnet)


def cb_bvr_retinanet():
    cfg = tiny_bvr_retinanet()
    fpn = cfg['neck']
    return ConfigDict(dict(
        cfg, type='densekit.CBSingleStageDetector', backbone=tiny_cbnet(),
        neck=dict(type='densekit.CBFPN', neck=fpn)))


def test_bvr_head_on_cbnet_backbone_trains_and_predicts():
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cb_bvr_retinanet())
    assert type(model.bbox_head).__name__ == 'BVRHead'
    assert model.backbone.num_backbones == 2
    model.train()
    inputs, samples = preprocess(model, det_samples(size=SIZE))
    losses = model.loss(inputs, samples)
    for suffix in ('', '_aux0'):
        for name in ('loss_cls', 'loss_bbox', 'loss_kpt_heatmap',
                     'loss_kpt_offset'):
            assert name + suffix in losses, sorted(losses)
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    keypoint_grads = [p.grad for p in model.bbox_head.keypoint_head
                      .parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in keypoint_grads)
    # the assisting copy (not only the lead) gets gradients
    first = model.backbone.backbones[0]
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in first.parameters())

    model.eval()
    calls = count_neck_calls(model)
    with torch.no_grad():
        results = model.predict(inputs[:1], samples[:1])
    assert calls == [1]  # the shared neck ran on the lead's features only
    assert results[0].pred_instances.bboxes.shape[-1] == 4

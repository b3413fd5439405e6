"""The Mamba YOLO configs build detectors of the official sizes and train."""
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from densekit.registry import MODELS
from tests.conftest import ROOT

# parameters of the official builds with 80 classes (ultralytics'
# DetectionModel of Mamba-YOLO-{T,B,L}.yaml, in millions)
OFFICIAL_PARAMS_M = dict(t=6.13, b=21.83, l=57.63)


def _build(name, **model_overrides):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'det', name))
    cfg.model.update(model_overrides)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('size', list(OFFICIAL_PARAMS_M))
def test_params_match_official_build(size):
    model = _build(f'mamba_yolo_{size}_coco.py')
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    assert params_m == pytest.approx(OFFICIAL_PARAMS_M[size], rel=0.02)
    assert model.backbone.arch == size.upper()


def test_headline_config_is_t():
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'det',
                                   'mamba_yolo_coco.py'))
    assert cfg.model.backbone.arch == 'T'
    assert cfg.max_epochs == 300 and cfg.train_dataloader.batch_size == 64
    assert cfg.optim_wrapper.optimizer.weight_decay == pytest.approx(0.004)


def test_tiny_detector_loss_and_predict():
    torch.manual_seed(0)
    model = _build('mamba_yolo_t_coco.py',
                   bbox_head=dict(type='densekit.YOLOv8Head', num_classes=3,
                                  featmap_strides=(8, 16, 32), reg_max=16))
    sample = DetDataSample(metainfo=dict(img_shape=(64, 64),
                                         ori_shape=(64, 64),
                                         scale_factor=(1., 1.),
                                         batch_input_shape=(64, 64)))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[8., 8., 40., 40.]]),
        labels=torch.tensor([1]))
    inputs = torch.rand(1, 3, 64, 64)
    model.train()
    losses = model.loss(inputs, [sample])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    ss2d = model.backbone.stages[2].blocks[0].ss2d
    assert ss2d.x_proj_weight.grad.abs().sum() > 0
    assert ss2d.A_logs.grad is not None
    model.eval()
    with torch.no_grad():
        result = model.predict(inputs, [sample])[0]
    assert result.pred_instances.bboxes.shape[-1] == 4

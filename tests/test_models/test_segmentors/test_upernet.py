"""UPerNet (mmseg's EncoderDecoder + UPerHead + FCNHead) on densekit's
shared backbones, and the segmentation configs."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from densekit.registry import MODELS
from tests.conftest import ROOT
from tests.test_models.backbone_cases import BACKBONES, registered_backbones


def test_every_backbone_has_a_segmentation_case():
    assert set(registered_backbones()) == set(BACKBONES), (
        'add the new backbone to tests/test_models/backbone_cases.py so it '
        'is tested inside every task')


def small_upernet(backbone):
    return dict(
        type='densekit.SegEncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0, 0, 0],
                               std=[1, 1, 1], size=(64, 64)),
        backbone=backbone,
        decode_head=dict(type='UPerHead', in_index=[0, 1, 2, 3],
                         pool_scales=(1, 2, 3, 6), channels=16,
                         num_classes=5, norm_cfg=dict(type='BN'),
                         loss_decode=dict(type='CrossEntropyLoss')),
        auxiliary_head=dict(type='FCNHead', in_index=2, channels=8,
                            num_convs=1, concat_input=False, num_classes=5,
                            norm_cfg=dict(type='BN'),
                            loss_decode=dict(type='CrossEntropyLoss',
                                             loss_weight=0.4)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


def seg_batch(n=2, size=64):
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.rand(3, size, size, generator=gen) * 255
              for _ in range(n)]
    samples = []
    for _ in range(n):
        sample = SegDataSample(metainfo=dict(img_shape=(size, size),
                                             ori_shape=(size, size),
                                             pad_shape=(size, size)))
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, 5, (1, size, size), generator=gen))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_backbone_trains_inside_upernet(name):
    init_default_scope('mmseg')
    model = MODELS.build(small_upernet(dict(type=f'densekit.{name}',
                                            **BACKBONES[name])))
    # the same class as in detection: one registration
    assert type(model.backbone) is MODELS.get(f'densekit.{name}')
    channels = model.backbone.out_channels
    assert model.decode_head.in_channels == channels
    assert model.auxiliary_head.in_channels == channels[2]
    model.train()
    data = model.data_preprocessor(seg_batch(), training=True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert torch.isfinite(total)
    grads = [p.grad for p in model.backbone.parameters()
             if p.requires_grad]
    assert grads and all(g is not None for g in grads[:5])
    model.eval()
    with torch.no_grad():
        preds = model.test_step(seg_batch(n=1))
    assert preds[0].pred_sem_seg.data.shape == (1, 64, 64)


def test_explicit_in_channels_that_disagree_name_the_key():
    init_default_scope('mmseg')
    cfg = small_upernet(dict(type='densekit.YOLOv8CSPDarknet',
                             **BACKBONES['YOLOv8CSPDarknet']))
    cfg['decode_head']['in_channels'] = [1, 2, 3, 4]
    with pytest.raises(ValueError, match=r'model\.decode_head\.in_channels='
                       r'\[1, 2, 3, 4\] but in_index=\[0, 1, 2, 3\] selects'):
        MODELS.build(cfg)
    cfg = small_upernet(dict(type='densekit.YOLOv8CSPDarknet',
                             **BACKBONES['YOLOv8CSPDarknet']))
    cfg['auxiliary_head']['in_index'] = 7
    with pytest.raises(ValueError, match=r'auxiliary_head\.in_index=7 but '
                       'the backbone'):
        MODELS.build(cfg)


SEG_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'seg', '*.py')))


def build_from_config(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    model_cfg = cfg.model.copy()
    model_cfg.pop('pretrained', None)  # no download in tests
    if 'init_cfg' in model_cfg.get('backbone', {}):
        model_cfg.backbone.init_cfg = None
    return cfg, MODELS.build(model_cfg)


@pytest.mark.parametrize('path', SEG_CONFIGS,
                         ids=[osp.basename(p) for p in SEG_CONFIGS])
def test_config_builds(path):
    cfg, model = build_from_config(path)
    assert cfg.default_scope == 'mmseg'
    num_classes = cfg.model.decode_head.num_classes
    assert model.decode_head.num_classes == num_classes
    aux = model.auxiliary_head
    for head in (aux if isinstance(aux, torch.nn.ModuleList) else [aux]):
        assert head.num_classes == num_classes
    expected = (150 if 'ade20k' in path else 19 if 'cityscapes' in path
                else 5)
    assert num_classes == expected


@pytest.mark.parametrize('name,published_m', [
    ('upernet_r50_ade20k-512x512.py', 66.5),  # mmseg's model card: ~66M
    ('upernet_swin-t_ade20k-512x512.py', 59.9),  # mmseg/Swin: 60M
])
def test_params_match_mmseg(name, published_m):
    _, model = build_from_config(osp.join(ROOT, 'configs', 'seg', name))
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(params_m - published_m) / published_m < 0.05, params_m


def test_whole_and_sliding_window_inference_agree_in_shape():
    init_default_scope('mmseg')
    cfg = small_upernet(dict(type='densekit.YOLOv8CSPDarknet',
                             **BACKBONES['YOLOv8CSPDarknet']))
    cfg['data_preprocessor'].pop('size')
    cfg['data_preprocessor']['size_divisor'] = 32
    whole = MODELS.build(cfg).eval()
    slide = MODELS.build(dict(cfg, test_cfg=dict(
        mode='slide', crop_size=(64, 64), stride=(32, 32)))).eval()
    slide.load_state_dict(whole.state_dict())
    batch = seg_batch(n=1, size=96)
    with torch.no_grad():
        out_whole = whole.test_step(batch)[0].seg_logits.data
        out_slide = slide.test_step(batch)[0].seg_logits.data
    assert out_whole.shape == out_slide.shape == (5, 96, 96)
    # windows see less context: close to, not equal to, the whole image
    assert not torch.equal(out_whole, out_slide)

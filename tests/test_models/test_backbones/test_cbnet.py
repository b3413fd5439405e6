"""densekit.CBNet: the composite around every backbone family, zero-init
equivalence with a single backbone, the composite links, errors."""
import math

import pytest
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope

from densekit.models.backbones import CBNet
from densekit.registry import MODELS
from tests.test_models.backbone_cases import BACKBONES

SIZE = 64

# the mmdet families CBNet walks besides densekit's BaseBackbone, tiny
MMDET_BACKBONES = {
    'mmdet.ResNet': dict(depth=18, base_channels=8, stem_channels=8),
    'mmdet.ResNetV1d': dict(depth=18, base_channels=8, stem_channels=8),
    'mmdet.ResNet-50': dict(depth=50, base_channels=8, stem_channels=8),
    'mmdet.SwinTransformer': dict(embed_dims=16, depths=(1, 1, 1, 1),
                                  num_heads=(1, 1, 2, 2), window_size=2),
    'densekit.WideResNet': dict(depth=50, num_stages=3, strides=(1, 2, 2),
                                dilations=(1, 1, 1), out_indices=(0, 1, 2),
                                base_channels=8, stem_channels=8),
}


def backbone_cfg(name):
    if name in BACKBONES:
        return dict(type=f'densekit.{name}', **BACKBONES[name])
    return dict(type=name.split('-')[0], **MMDET_BACKBONES[name])


def single_forward(backbone, x):
    return tuple(backbone(x))  # mmdet's Swin returns a list


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmdet')


def identical_copies(cb):
    """Every copy with copy 0's weights (what a pretrained init gives)."""
    for other in cb.backbones[1:]:
        other.load_state_dict(cb.backbones[0].state_dict(), strict=False)


@pytest.mark.parametrize('name', ['mmdet.ResNet', 'mmdet.SwinTransformer',
                                  'FocalNet', 'YOLOv8CSPDarknet'])
@pytest.mark.parametrize('cb_del_stages', [0, 1])
def test_zero_init_lead_equals_single_backbone(name, cb_del_stages):
    torch.manual_seed(0)
    cb = CBNet(backbone=backbone_cfg(name), num_backbones=3,
               cb_del_stages=cb_del_stages)
    cb.init_weights()
    identical_copies(cb)
    cb.eval()
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        outs = cb(x)
        single = single_forward(cb.backbones[0], x)
    assert len(outs) == 3
    for per_backbone in outs:
        assert len(per_backbone) == len(single)
        for got, want in zip(per_backbone, single):
            assert got.shape == want.shape
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_links_change_the_lead_once_non_zero():
    torch.manual_seed(0)
    cb = CBNet(backbone=backbone_cfg('mmdet.ResNet'))
    cb.init_weights()
    identical_copies(cb)
    # ResNet: links before layer2..4 (cb_del_stages=1), from every higher
    # or equal level: 3 + 2 + 1, each conv + the ResNet's BN
    assert sorted(cb.links) == ['unit2', 'unit3', 'unit4']
    assert [len(cb.links[k]) for k in sorted(cb.links)] == [3, 2, 1]
    assert all(isinstance(link.norm, nn.BatchNorm2d)
               for links in cb.links.values() for link in links)
    cb.eval()
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        before = cb(x)
        for links in cb.links.values():
            for link in links:
                nn.init.ones_(link.norm.weight)
        after = cb(x)
    # the assisting backbone and the reused stride-4 level do not change
    for got, want in zip(after[0], before[0]):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(after[1][0], before[1][0])
    for level in (1, 2, 3):
        assert (after[1][level] - before[1][level]).abs().max() > 1e-3


def test_pretrained_weights_reach_every_copy(tmp_path):
    torch.manual_seed(0)
    source = MODELS.build(backbone_cfg('mmdet.ResNet'))
    path = str(tmp_path / 'resnet.pth')
    torch.save(dict(state_dict=source.state_dict()), path)
    cfg = dict(backbone_cfg('mmdet.ResNet'),
               init_cfg=dict(type='Pretrained', checkpoint=path))
    cb = MODELS.build(dict(type='densekit.CBNet', backbone=cfg))
    cb.init_weights()
    reference = source.state_dict()
    for backbone in cb.backbones:
        own = backbone.state_dict()
        assert own  # the lead still has layer2..4
        for key, value in own.items():
            torch.testing.assert_close(value, reference[key])
    # the lead's parameters: no stem and no layer1
    lead_keys = set(cb.backbones[1].state_dict())
    assert not any(k.startswith(('conv1.', 'bn1.', 'layer1.'))
                   for k in lead_keys)
    cb.eval()
    source.eval()
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        for got, want in zip(cb(x)[-1], source(x)):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def _check_contract(cb, outs, name):
    info = cb.feature_info
    single = MODELS.build(backbone_cfg(name))
    assert info == (single.feature_info if hasattr(single, 'feature_info')
                    else info)
    assert cb.out_channels == [i['channels'] for i in info]
    for per_backbone in outs:
        assert len(per_backbone) == len(info)
        for out, level in zip(per_backbone, info):
            side = math.ceil(SIZE / level['stride'])
            assert tuple(out.shape) == (2, level['channels'], side, side), \
                (name, tuple(out.shape), level)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize('name', sorted(BACKBONES) + sorted(MMDET_BACKBONES))
def test_every_backbone_forward_backward(name):
    torch.manual_seed(0)
    cb = MODELS.build(dict(type='densekit.CBNet', backbone=backbone_cfg(name),
                           num_backbones=2, cb_del_stages=1))
    cb.init_weights()
    cb.train()
    outs = cb(torch.rand(2, 3, SIZE, SIZE))
    assert len(outs) == 2
    _check_contract(cb, outs, name)
    sum(o.float().pow(2).mean() for per in outs for o in per).backward()
    # every link's zero-initialised last layer gets a gradient
    for key, links in cb.links.items():
        for link in links:
            last = link[-1]
            grads = [p.grad for p in last.parameters()]
            assert grads and all(g is not None for g in grads), (name, key)
            assert sum(float(g.abs().sum()) for g in grads) > 0, (name, key)
    # both copies learn; the lead has no stem
    for backbone in cb.backbones:
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in backbone.parameters())


def test_swin_official_links():
    cb = CBNet(backbone=backbone_cfg('mmdet.SwinTransformer'),
               cb_del_stages=0, cb_same_width_identity=True)
    # every stage gets links from its own and the higher levels: identity
    # for the equal width, a biased 1x1 conv (no norm) otherwise
    assert [len(cb.links[f'unit{u}']) for u in (1, 2, 3, 4)] == [4, 3, 2, 1]
    for unit in (1, 2, 3, 4):
        links = cb.links[f'unit{unit}']
        assert isinstance(links[0], nn.Identity)
        assert all(len(link) == 1 and link.conv.bias is not None
                   for link in links[1:])
    lead = cb.backbones[1]
    assert isinstance(lead.patch_embed, nn.Identity)
    outs = cb(torch.rand(2, 3, SIZE, SIZE))
    _check_contract(cb, outs, 'mmdet.SwinTransformer')


def test_frozen_stages_and_link_norms_in_train_mode():
    cfg = dict(backbone_cfg('mmdet.ResNet'), frozen_stages=1)
    cb = CBNet(backbone=cfg)
    cb.train()
    first, lead = cb.backbones
    assert not any(p.requires_grad for p in first.layer1.parameters())
    assert not first.layer1.training and first.layer2.training
    assert all(p.requires_grad for p in lead.layer2.parameters())
    assert all(not m.training for m in cb.links.modules()
               if isinstance(m, nn.BatchNorm2d))
    cb = CBNet(backbone=cfg, cb_norm_eval=False).train()
    assert all(m.training for m in cb.links.modules()
               if isinstance(m, nn.BatchNorm2d))


def test_single_backbone_is_the_backbone():
    torch.manual_seed(0)
    cb = CBNet(backbone=backbone_cfg('FocalNet'), num_backbones=1)
    assert len(cb.links) == 0
    cb.eval()
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        (outs, ) = cb(x)
        for got, want in zip(outs, cb.backbones[0](x)):
            torch.testing.assert_close(got, want)


def test_built_module_is_copied():
    backbone = MODELS.build(backbone_cfg('YOLOv8CSPDarknet'))
    cb = CBNet(backbone=backbone)
    assert cb.backbones[0] is backbone
    assert cb.backbones[1] is not backbone


def test_backbone_without_stage_structure_raises():
    with pytest.raises(ValueError) as err:
        CBNet(backbone=nn.Conv2d(3, 8, 3))
    msg = str(err.value)
    assert msg.startswith("densekit.CBNet: backbone 'Conv2d' exposes neither "
                          '`stages` (densekit BaseBackbone) nor mmdet '
                          "ResNet's `res_layers`")
    assert 'SwinTransformer' in msg


@pytest.mark.parametrize('kwargs', [dict(cb_del_stages=4),
                                    dict(cb_del_stages=-1),
                                    dict(num_backbones=0)])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError, match='densekit.CBNet: '):
        CBNet(backbone=backbone_cfg('mmdet.ResNet'), **kwargs)

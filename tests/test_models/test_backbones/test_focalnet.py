"""FocalNet: parameter counts against the official README, feature contract,
padding, freezing, gradients, focal modulation against a functional
reference, and the converter of official checkpoints, tested on official-
layout state dicts generated here by hand."""
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

import densekit.models.backbones.focalnet  # noqa: F401  (registers FocalNet)
from densekit.models.backbones.focalnet import (FocalNet, convert_focalnet,
                                                focalnet_classifier)
from densekit.models.layers.focalnet_block import FocalModulation
from densekit.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

# ImageNet-1K models with the 1000-class head, microsoft/FocalNet README.md
OFFICIAL_PARAMS_M = {'T-SRF': 28.4, 'T-LRF': 28.6, 'S-SRF': 49.9,
                     'S-LRF': 50.3, 'B-SRF': 88.1, 'B-LRF': 88.7}
# embed dim, depths, focal level (focal window 3 everywhere)
OFFICIAL_ARCH = {'T-SRF': (96, (2, 2, 6, 2), 2),
                 'T-LRF': (96, (2, 2, 6, 2), 3),
                 'S-SRF': (96, (2, 2, 18, 2), 2),
                 'S-LRF': (96, (2, 2, 18, 2), 3),
                 'B-SRF': (128, (2, 2, 18, 2), 2),
                 'B-LRF': (128, (2, 2, 18, 2), 3)}
# a small arch for speed
TINY = dict(embed_dims=16, depths=(1, 1, 2, 1), focal_levels=2,
            focal_windows=3)


def official_state_dict(embed_dim, depths, focal_level, focal_window=3,
                        num_classes=1000, layerscale=False):
    """An ImageNet checkpoint's ``model`` dict in the official key layout
    (``classification/focalnet.py``), written out by hand."""
    g = torch.Generator().manual_seed(0)
    sd = {}

    def tensor(name, *shape):
        sd[name] = torch.randn(*shape, generator=g) * 0.02

    def linear(prefix, out_dims, in_dims):
        tensor(f'{prefix}.weight', out_dims, in_dims)
        tensor(f'{prefix}.bias', out_dims)

    def layer_norm(prefix, dims):
        tensor(f'{prefix}.weight', dims)
        tensor(f'{prefix}.bias', dims)

    tensor('patch_embed.proj.weight', embed_dim, 3, 4, 4)
    tensor('patch_embed.proj.bias', embed_dim)
    layer_norm('patch_embed.norm', embed_dim)
    for i, depth in enumerate(depths):
        dims = embed_dim * 2**i
        for j in range(depth):
            p = f'layers.{i}.blocks.{j}'
            layer_norm(f'{p}.norm1', dims)
            linear(f'{p}.modulation.f', 2 * dims + focal_level + 1, dims)
            for k in range(focal_level):
                size = focal_window + 2 * k
                tensor(f'{p}.modulation.focal_layers.{k}.0.weight', dims, 1,
                       size, size)
            tensor(f'{p}.modulation.h.weight', dims, dims, 1, 1)
            tensor(f'{p}.modulation.h.bias', dims)
            linear(f'{p}.modulation.proj', dims, dims)
            layer_norm(f'{p}.norm2', dims)
            linear(f'{p}.mlp.fc1', 4 * dims, dims)
            linear(f'{p}.mlp.fc2', dims, 4 * dims)
            if layerscale:
                tensor(f'{p}.gamma_1', dims)
                tensor(f'{p}.gamma_2', dims)
        if i < len(depths) - 1:
            tensor(f'layers.{i}.downsample.proj.weight', 2 * dims, dims, 2, 2)
            tensor(f'layers.{i}.downsample.proj.bias', 2 * dims)
            layer_norm(f'layers.{i}.downsample.norm', 2 * dims)
    last = embed_dim * 2**(len(depths) - 1)
    layer_norm('norm', last)
    linear('head', num_classes, last)
    return sd


def tiny_official():
    return official_state_dict(16, (1, 1, 2, 1), 2)


def num_params(module):
    return sum(p.numel() for p in module.parameters())


# -- parameter counts -------------------------------------------------------
@pytest.mark.parametrize('arch', ['T-SRF', 'T-LRF', 'S-SRF', 'S-LRF',
                                  'B-LRF'])
def test_params_match_official_readme(arch):
    count = num_params(focalnet_classifier(arch)) / 1e6
    assert count == pytest.approx(OFFICIAL_PARAMS_M[arch], rel=0.03)
    # rounding to 0.1M as the README does gives the same figure
    assert round(count, 1) == pytest.approx(OFFICIAL_PARAMS_M[arch],
                                            abs=0.051)


@pytest.mark.parametrize('arch', sorted(OFFICIAL_PARAMS_M))
def test_hand_built_official_layout_has_official_size(arch):
    # cross-checks the generator used by the converter tests, for all sizes
    sd = official_state_dict(*OFFICIAL_ARCH[arch])
    count = sum(v.numel() for v in sd.values()) / 1e6
    assert count == pytest.approx(OFFICIAL_PARAMS_M[arch], rel=0.03)


# -- feature contract -------------------------------------------------------
def test_feature_contract_t_srf():
    model = MODELS.build(dict(type='densekit.FocalNet', arch='T-SRF')).eval()
    assert isinstance(model, FocalNet)
    assert model.out_channels == [96, 192, 384, 768]
    assert model.out_strides == [4, 8, 16, 32]
    assert [len(stage.blocks) for stage in model.stages] == [2, 2, 6, 2]
    kernels = model.stages[2].blocks[0].modulation.kernel_sizes
    assert kernels == [3, 5]
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 64, 64))
    assert len(feats) == 4
    for feat, info in zip(feats, model.feature_info):
        assert feat.shape == (1, info['channels'], 64 // info['stride'],
                              64 // info['stride'])
        assert feat.is_contiguous()
        assert torch.isfinite(feat).all()
    assert FocalNet(arch='B-LRF', out_indices=(0, )).out_channels == [128]
    lrf = FocalNet(arch='T-LRF', out_indices=(0, ))
    assert lrf.stages[0].blocks[0].modulation.kernel_sizes == [3, 5, 7]


def test_out_indices_subset_builds_only_their_norms():
    model = FocalNet(arch=TINY, out_indices=(1, 3)).eval()
    assert model.out_channels == [32, 128]
    assert model.out_strides == [8, 32]
    assert hasattr(model, 'norm1') and hasattr(model, 'norm3')
    assert not hasattr(model, 'norm0') and not hasattr(model, 'norm2')
    with torch.no_grad():
        feats = model(torch.rand(2, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(2, 32, 8, 8), (2, 128, 2, 2)]


@pytest.mark.parametrize('size', [(50, 37), (33, 95), (17, 17), (64, 48)])
def test_any_input_size(size):
    model = FocalNet(arch=TINY).eval()
    with torch.no_grad():
        feats = model(torch.rand(1, 3, *size))
    for feat, stride in zip(feats, [4, 8, 16, 32]):
        assert tuple(feat.shape[-2:]) == (math.ceil(size[0] / stride),
                                          math.ceil(size[1] / stride))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='arch'):
        FocalNet(arch='X-SRF')
    with pytest.raises(ValueError, match='needs'):
        FocalNet(arch=dict(embed_dims=16, depths=(1, 1, 1, 1)))
    with pytest.raises(ValueError, match='out_indices'):
        FocalNet(arch=TINY, out_indices=(4, ))
    with pytest.raises(ValueError, match='frozen_stages'):
        FocalNet(arch=TINY, frozen_stages=4)


# -- training behaviour -----------------------------------------------------
@pytest.mark.parametrize('options', [
    dict(),
    dict(use_layerscale=True, use_postln=True, use_conv_embed=True,
         use_postln_in_modulation=True, normalize_modulator=True),
])
def test_forward_backward_reaches_every_parameter(options):
    model = FocalNet(arch=TINY, drop_path_rate=0.2, **options)
    model.train()
    feats = model(torch.rand(2, 3, 40, 56))
    loss = sum((f**2).mean() for f in feats)
    loss.backward()
    no_grad = [name for name, p in model.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad
    if options:
        block = model.stages[0].blocks[0]
        assert torch.allclose(block.gamma1.detach(),
                              torch.full((16, ), 1e-4), atol=1e-3)
        assert model.stages[0].downsample.proj.kernel_size == (7, 7)
        assert model.stages[1].downsample.proj.kernel_size == (3, 3)


def test_focal_modulation_matches_functional_reference():
    torch.manual_seed(0)
    dims, levels = 8, 3
    module = FocalModulation(dims, focal_level=levels, focal_window=3).eval()
    for p in module.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 7, 9, dims)   # channels-last
    with torch.no_grad():
        out = module(x)
        # y = q ⊙ h(Σ_l g^l z^l), z^l = GELU(DWConv_l(z^{l-1})),
        # z^{L+1} = GELU(mean z^L)
        proj = x @ module.f.weight.T + module.f.bias
        q, z = proj[..., :dims], proj[..., dims:2 * dims]
        gates = proj[..., 2 * dims:]
        z = z.permute(0, 3, 1, 2)
        agg = torch.zeros_like(z)
        for level, conv in enumerate(module.focal_convs):
            size = 3 + 2 * level
            assert conv.weight.shape == (dims, 1, size, size)
            z = F.gelu(F.conv2d(z, conv.weight, padding=size // 2,
                                groups=dims))
            agg = agg + z * gates[..., level].unsqueeze(1)
        z_global = F.gelu(z.mean(dim=(2, 3), keepdim=True))
        agg = agg + z_global * gates[..., levels].unsqueeze(1)
        modulator = torch.einsum('nchw,oc->nhwo', agg,
                                 module.h.weight[:, :, 0, 0]) + module.h.bias
        expected = (q * modulator) @ module.proj.weight.T + module.proj.bias
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_classifier_head():
    model = focalnet_classifier(TINY, num_classes=10).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 10)
    # the official final norm is the backbone's single output norm
    assert model.backbone.out_indices == (3, )


# -- converter --------------------------------------------------------------
NORM_KEYS = {f'norm{i}.{p}' for i in range(4) for p in ('weight', 'bias')}


def test_converter_loads_t_srf_official_layout():
    official = official_state_dict(*OFFICIAL_ARCH['T-SRF'])
    converted = convert_focalnet({'model': official})
    model = FocalNet(arch='T-SRF')
    result = model.load_state_dict(converted, strict=False)
    # the ImageNet checkpoint has no per-output norms; its final norm and
    # head are dropped
    assert set(result.missing_keys) == NORM_KEYS
    assert result.unexpected_keys == []
    assert len(converted) == len(official) - 4
    assert torch.equal(
        model.stages[2].blocks[5].modulation.focal_convs[1].weight,
        official['layers.2.blocks.5.modulation.focal_layers.1.0.weight'])
    assert torch.equal(model.stages[3].downsample.proj.weight,
                       official['layers.2.downsample.proj.weight'])
    assert torch.equal(model.stages[0].downsample.norm.bias,
                       official['patch_embed.norm.bias'])
    # with the head, the whole classifier loads strictly
    classifier = focalnet_classifier('T-SRF')
    classifier.load_state_dict(
        convert_focalnet(official, with_head=True), strict=True)
    assert torch.equal(classifier.backbone.norm3.weight,
                       official['norm.weight'])
    assert torch.equal(classifier.head.weight, official['head.weight'])


def test_converter_layerscale_idempotent_and_errors():
    official = official_state_dict(16, (1, 1, 2, 1), 2, layerscale=True)
    converted = convert_focalnet(official)
    model = FocalNet(arch=TINY, use_layerscale=True)
    result = model.load_state_dict(converted, strict=False)
    assert set(result.missing_keys) == NORM_KEYS
    assert not result.unexpected_keys
    assert torch.equal(model.stages[2].blocks[1].gamma2,
                       official['layers.2.blocks.1.gamma_2'])
    again = convert_focalnet({'state_dict': converted})
    assert again.keys() == converted.keys()
    # an official detector checkpoint: backbone.* with norm{i}, rest dropped
    detector = {f'backbone.{k}': v for k, v in official.items()
                if not k.startswith(('norm.', 'head.'))}
    detector.update({f'backbone.norm{i}.weight': torch.ones(16 * 2**i)
                     for i in range(4)})
    detector.update({f'backbone.norm{i}.bias': torch.zeros(16 * 2**i)
                     for i in range(4)})
    detector['roi_head.bbox_head.fc_cls.weight'] = torch.zeros(2, 2)
    model.load_state_dict(convert_focalnet(detector), strict=True)
    with pytest.raises(KeyError, match='layers.0.blocks.0.unknown'):
        convert_focalnet({**official,
                          'layers.0.blocks.0.unknown.weight': torch.zeros(1)})


def test_converter_pads_focal_kernels_for_detection_windows():
    official = tiny_official()
    converted = convert_focalnet(official, focal_windows=9)
    model = FocalNet(arch=TINY, focal_windows=9)
    result = model.load_state_dict(converted, strict=False)
    assert set(result.missing_keys) == NORM_KEYS
    for k, size in enumerate([9, 11]):
        new = converted[
            f'stages.1.blocks.0.modulation.focal_convs.{k}.weight']
        old = official[f'layers.1.blocks.0.modulation.focal_layers.{k}.0.'
                       'weight']
        assert new.shape[-2:] == (size, size)
        assert torch.equal(new[..., 3:-3, 3:-3], old)
        border = torch.ones_like(new, dtype=torch.bool)
        border[..., 3:-3, 3:-3] = False
        assert not new[border].any()   # zeros around the original kernel
    # and back (cropping)
    back = convert_focalnet(converted, focal_windows=3)
    assert torch.equal(
        back['stages.1.blocks.0.modulation.focal_convs.1.weight'],
        official['layers.1.blocks.0.modulation.focal_layers.1.0.weight'])


def test_init_cfg_pretrained_accepts_official_file(tmp_path):
    official = tiny_official()
    path = tmp_path / 'focalnet_official.pth'
    torch.save({'model': official, 'epoch': 300}, path)
    model = FocalNet(arch=TINY, focal_windows=5, frozen_stages=0,
                     init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    norm0 = model.norm0.weight.detach().clone()
    model.init_weights()
    assert torch.equal(model.stages[3].blocks[0].mlp.fc2.bias,
                       official['layers.3.blocks.0.mlp.fc2.bias'])
    conv = model.stages[0].blocks[0].modulation.focal_convs[0].weight
    assert conv.shape[-1] == 5
    assert torch.equal(
        conv[..., 1:-1, 1:-1],
        official['layers.0.blocks.0.modulation.focal_layers.0.0.weight'])
    assert torch.equal(model.norm0.weight, norm0)   # left as initialised
    assert not any(p.requires_grad for p in model.stages[0].parameters())
    # a densekit detector checkpoint with a prefix
    dk_path = tmp_path / 'densekit_detector.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in model.state_dict().items()}},
               dk_path)
    other = FocalNet(arch=TINY, focal_windows=5, init_cfg=dict(
        type='Pretrained', checkpoint=str(dk_path), prefix='backbone.'))
    other.init_weights()
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key


def test_converter_tool(tmp_path, capsys):
    from tests.converter_cli import convert_cli
    convert = convert_cli('focalnet')
    src, dst = tmp_path / 'official.pth', tmp_path / 'densekit.pth'
    torch.save({'model': official_state_dict(*OFFICIAL_ARCH['T-SRF'])}, src)
    assert convert([src, dst, '--arch', 'T-SRF']) == 0
    out = capsys.readouterr().out
    assert 'every key and shape matches' in out and 'norm0.weight' in out
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    model = FocalNet(arch='T-SRF')
    result = model.load_state_dict(saved['state_dict'], strict=False)
    assert set(result.missing_keys) == NORM_KEYS
    # with the head against the classifier; a wrong arch is reported
    assert convert([src, dst, '--arch', 'T-SRF', '--with-head']) == 0
    assert convert([src, dst, '--arch', 'T-LRF']) == 1

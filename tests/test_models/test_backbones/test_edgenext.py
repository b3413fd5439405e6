"""EdgeNeXt: parameter counts of the official sizes, feature contract,
padding, freezing, drop path, and the converter of official checkpoints,
checked against a functional re-statement of the official forward pass on
state dicts generated in the official key layout."""
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

import densekit.models.backbones.edgenext  # noqa: F401  (registers it)
from densekit.models.backbones.edgenext import (EdgeNeXt, convert_edgenext,
                                                edgenext_classifier)
from densekit.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

# official models/model.py (LayerNorm/GELU models) and the README's
# parameter counts with the 1000-class head
OFFICIAL = {
    'xxs': dict(depths=[2, 2, 6, 2], dims=[24, 48, 88, 168], heads=4,
                params=1.33e6),
    'xs': dict(depths=[3, 3, 9, 3], dims=[32, 64, 100, 192], heads=4,
               params=2.34e6),
    's': dict(depths=[3, 3, 9, 3], dims=[48, 96, 160, 304], heads=8,
              params=5.59e6),
}
KERNELS, D2_SCALES, POS_EMB = [3, 5, 7, 9], [2, 2, 3, 4], [0, 1, 0, 0]


def num_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('arch', sorted(OFFICIAL))
def test_params_match_official(arch):
    model = edgenext_classifier(arch, num_classes=1000)
    expected = OFFICIAL[arch]['params']
    assert abs(num_params(model) - expected) <= 0.03 * expected
    # the backbone alone: no ImageNet norm/head, plus 4 output LayerNorms
    dims = OFFICIAL[arch]['dims']
    head = dims[3] * 1000 + 1000 + 2 * dims[3]
    assert num_params(EdgeNeXt(arch=arch)) == \
        num_params(model) - head + 2 * sum(dims)


@pytest.mark.parametrize('arch', sorted(OFFICIAL))
def test_feature_contract(arch):
    model = EdgeNeXt(arch=arch).eval()
    dims = OFFICIAL[arch]['dims']
    assert model.out_channels == dims
    assert model.out_strides == [4, 8, 16, 32]
    assert model.feature_info == [dict(channels=c, stride=s)
                                  for c, s in zip(dims, [4, 8, 16, 32])]
    assert [len(s.blocks) for s in model.stages] == OFFICIAL[arch]['depths']
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 64, 64))
    assert len(feats) == 4
    for feat, info in zip(feats, model.feature_info):
        assert feat.shape == (1, info['channels'], 64 // info['stride'],
                              64 // info['stride'])
        assert torch.isfinite(feat).all()
        # per-output LayerNorm at init: zero mean over the channels
        assert feat.mean(1).abs().max() < 1e-4


def test_out_indices_registry_and_arch_errors():
    model = MODELS.build(dict(type='densekit.EdgeNeXt', arch='x_small',
                              out_indices=(1, 3)))
    assert isinstance(model, EdgeNeXt)
    assert model.feature_info == [dict(channels=64, stride=8),
                                  dict(channels=192, stride=32)]
    assert not hasattr(model, 'norm0') and hasattr(model, 'norm3')
    with torch.no_grad():
        feats = model.eval()(torch.rand(1, 3, 32, 32))
    assert [tuple(f.shape) for f in feats] == [(1, 64, 4, 4), (1, 192, 1, 1)]
    with pytest.raises(ValueError, match='out_indices'):
        EdgeNeXt(arch='xxs', out_indices=(4, ))
    with pytest.raises(ValueError, match='arch'):
        EdgeNeXt(arch='m')
    custom = EdgeNeXt(arch=dict(depths=[1, 1, 1, 1], dims=[8, 16, 24, 32],
                                heads=[2, 2, 2, 2]))
    assert custom.out_channels == [8, 16, 24, 32]


@pytest.mark.parametrize('size', [(40, 72), (33, 31), (70, 45)])
def test_sizes_not_divisible_by_32(size):
    model = EdgeNeXt(arch='xxs').eval()
    with torch.no_grad():
        feats = model(torch.rand(1, 3, *size))
    for feat, stride in zip(feats, [4, 8, 16, 32]):
        assert tuple(feat.shape[-2:]) == (math.ceil(size[0] / stride),
                                          math.ceil(size[1] / stride))
        assert torch.isfinite(feat).all()


def test_forward_backward():
    model = EdgeNeXt(arch='xxs', drop_path_rate=0.1).train()
    x = torch.rand(2, 3, 32, 48, requires_grad=True)
    loss = sum(f.pow(2).mean() for f in model(x))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert x.grad is not None and torch.isfinite(x.grad).all()


# ---------------------------------------------------------------------------
# official key layout (models/edgenext.py, conv_encoder.py, sdta_encoder.py)
# ---------------------------------------------------------------------------
def official_state_dict(arch, num_classes=10, seed=0):
    """Random tensors under the official module names and shapes. Layer
    scales and temperatures are O(1) so every branch matters."""
    gen = torch.Generator().manual_seed(seed)
    cfg = OFFICIAL[arch]
    dims, heads = cfg['dims'], cfg['heads']
    shapes = {'downsample_layers.0.0.weight': (dims[0], 3, 4, 4),
              'downsample_layers.0.0.bias': (dims[0], ),
              'downsample_layers.0.1.weight': (dims[0], ),
              'downsample_layers.0.1.bias': (dims[0], )}
    for i in range(1, 4):
        shapes.update({
            f'downsample_layers.{i}.0.weight': (dims[i - 1], ),
            f'downsample_layers.{i}.0.bias': (dims[i - 1], ),
            f'downsample_layers.{i}.1.weight': (dims[i], dims[i - 1], 2, 2),
            f'downsample_layers.{i}.1.bias': (dims[i], )})
    for i, (depth, c) in enumerate(zip(cfg['depths'], dims)):
        for j in range(depth):
            p = f'stages.{i}.{j}.'
            mlp = {p + 'norm.weight': (c, ), p + 'norm.bias': (c, ),
                   p + 'pwconv1.weight': (4 * c, c),
                   p + 'pwconv1.bias': (4 * c, ),
                   p + 'pwconv2.weight': (c, 4 * c),
                   p + 'pwconv2.bias': (c, ), p + 'gamma': (c, )}
            shapes.update(mlp)
            if i > 0 and j == depth - 1:  # SDTA
                width = math.ceil(c / D2_SCALES[i])
                for k in range(D2_SCALES[i] - 1):
                    shapes[p + f'convs.{k}.weight'] = (width, 1, 3, 3)
                    shapes[p + f'convs.{k}.bias'] = (width, )
                if POS_EMB[i]:
                    shapes[p + 'pos_embd.token_projection.weight'] = \
                        (c, 64, 1, 1)
                    shapes[p + 'pos_embd.token_projection.bias'] = (c, )
                shapes.update({
                    p + 'norm_xca.weight': (c, ), p + 'norm_xca.bias': (c, ),
                    p + 'gamma_xca': (c, ),
                    p + 'xca.temperature': (heads, 1, 1),
                    p + 'xca.qkv.weight': (3 * c, c),
                    p + 'xca.qkv.bias': (3 * c, ),
                    p + 'xca.proj.weight': (c, c),
                    p + 'xca.proj.bias': (c, )})
            else:
                shapes[p + 'dwconv.weight'] = (c, 1, KERNELS[i], KERNELS[i])
                shapes[p + 'dwconv.bias'] = (c, )
    shapes.update({'norm.weight': (dims[3], ), 'norm.bias': (dims[3], ),
                   'head.weight': (num_classes, dims[3]),
                   'head.bias': (num_classes, )})
    state = {}
    for key, shape in shapes.items():
        if key.endswith(('gamma', 'gamma_xca', 'temperature')) or (
                'norm' in key and key.endswith('weight')) or (
                key.startswith('downsample_layers') and key.endswith(
                    '.weight') and len(shape) == 1):
            state[key] = 0.5 + torch.rand(shape, generator=gen)
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else 10
            state[key] = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
    return state


def _ln_channels_first(x, w, b):
    mean = x.mean(1, keepdim=True)
    var = (x - mean).pow(2).mean(1, keepdim=True)
    return w[:, None, None] * (x - mean) / torch.sqrt(var + 1e-6) \
        + b[:, None, None]


def _ln_last(x, sd, p):
    return F.layer_norm(x, x.shape[-1:], sd[p + 'weight'], sd[p + 'bias'],
                        1e-6)


def _mlp(x, sd, p):  # (B, H, W, C), ends with the layer scale
    x = _ln_last(x, sd, p + 'norm.')
    x = F.gelu(F.linear(x, sd[p + 'pwconv1.weight'], sd[p + 'pwconv1.bias']))
    x = F.linear(x, sd[p + 'pwconv2.weight'], sd[p + 'pwconv2.bias'])
    return sd[p + 'gamma'] * x


def _fourier(sd, p, b, h, w):  # the official cumsum formulation
    not_mask = torch.ones(b, h, w)
    y = not_mask.cumsum(1)
    x = not_mask.cumsum(2)
    y = y / (y[:, -1:, :] + 1e-6) * 2 * math.pi
    x = x / (x[:, :, -1:] + 1e-6) * 2 * math.pi
    dim_t = torch.arange(32, dtype=torch.float32)
    dim_t = 10000**(2 * (dim_t // 2) / 32)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()),
                     dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()),
                     dim=4).flatten(3)
    pos = torch.cat((py, px), dim=3).permute(0, 3, 1, 2)
    # the official features are float32; a float64 token_projection needs
    # them cast (the official module would fail on float64 weights)
    pos = pos.to(sd[p + 'weight'].dtype)
    return F.conv2d(pos, sd[p + 'weight'], sd[p + 'bias'])


def _sdta(x, sd, p, scales, heads, pos):
    b, c, h, w = x.shape
    width = math.ceil(c / scales)
    parts = torch.split(x, width, 1)
    outs, sp = [], None
    for k in range(scales - 1):
        sp = parts[k] if k == 0 else sp + parts[k]
        sp = F.conv2d(sp, sd[p + f'convs.{k}.weight'],
                      sd[p + f'convs.{k}.bias'], padding=1, groups=width)
        outs.append(sp)
    y = torch.cat(outs + [parts[scales - 1]], 1)
    t = y.reshape(b, c, h * w).permute(0, 2, 1)
    if pos:
        t = t + _fourier(sd, p + 'pos_embd.token_projection.', b, h,
                         w).reshape(b, -1, h * w).permute(0, 2, 1)
    n = _ln_last(t, sd, p + 'norm_xca.')
    qkv = F.linear(n, sd[p + 'xca.qkv.weight'], sd[p + 'xca.qkv.bias'])
    qkv = qkv.reshape(b, h * w, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    q, k, v = (F.normalize(qkv[0].transpose(-2, -1), dim=-1),
               F.normalize(qkv[1].transpose(-2, -1), dim=-1),
               qkv[2].transpose(-2, -1))
    attn = ((q @ k.transpose(-2, -1)) * sd[p + 'xca.temperature']).softmax(-1)
    o = (attn @ v).permute(0, 3, 1, 2).reshape(b, h * w, c)
    o = F.linear(o, sd[p + 'xca.proj.weight'], sd[p + 'xca.proj.bias'])
    t = t + sd[p + 'gamma_xca'] * o
    return x + _mlp(t.reshape(b, h, w, c), sd, p).permute(0, 3, 1, 2)


def official_forward(sd, x, arch):
    """Stage outputs and logits of the official model (no padding: the
    input must be a multiple of 32)."""
    cfg = OFFICIAL[arch]
    feats = []
    for i, depth in enumerate(cfg['depths']):
        d = f'downsample_layers.{i}.'
        if i == 0:
            x = F.conv2d(x, sd[d + '0.weight'], sd[d + '0.bias'], stride=4)
            x = _ln_channels_first(x, sd[d + '1.weight'], sd[d + '1.bias'])
        else:
            x = _ln_channels_first(x, sd[d + '0.weight'], sd[d + '0.bias'])
            x = F.conv2d(x, sd[d + '1.weight'], sd[d + '1.bias'], stride=2)
        for j in range(depth):
            p = f'stages.{i}.{j}.'
            if i > 0 and j == depth - 1:
                x = _sdta(x, sd, p, D2_SCALES[i], cfg['heads'], POS_EMB[i])
            else:
                k = KERNELS[i]
                y = F.conv2d(x, sd[p + 'dwconv.weight'], sd[p + 'dwconv.bias'],
                             padding=k // 2, groups=x.shape[1])
                x = x + _mlp(y.permute(0, 2, 3, 1), sd, p).permute(0, 3, 1, 2)
        feats.append(x)
    pooled = F.layer_norm(x.mean([-2, -1]), x.shape[1:2], sd['norm.weight'],
                          sd['norm.bias'], 1e-6)
    return feats, F.linear(pooled, sd['head.weight'], sd['head.bias'])


@pytest.mark.parametrize('arch', ['xxs', 's'])
def test_converter_matches_official_forward(arch):
    official = official_state_dict(arch)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref_feats, ref_logits = official_forward(official, x, arch)

    backbone = EdgeNeXt(arch=arch, out_norm=False).eval()
    backbone.load_state_dict(convert_edgenext(official), strict=True)
    classifier = edgenext_classifier(arch, num_classes=10).eval()
    classifier.load_state_dict(convert_edgenext(official, with_head=True),
                               strict=True)
    with torch.no_grad():
        feats = backbone(x)
        logits = classifier(x)
    for feat, ref in zip(feats, ref_feats):
        torch.testing.assert_close(feat, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-4)


def test_converter_layouts_and_errors():
    official = official_state_dict('xxs')
    converted = convert_edgenext(official)
    # into the dense backbone: only the new output norms are missing
    result = EdgeNeXt(arch='xxs').load_state_dict(converted, strict=False)
    assert sorted(result.missing_keys) == sorted(
        f'norm{i}.{n}' for i in range(4) for n in ('weight', 'bias'))
    assert not result.unexpected_keys
    assert not any(k.startswith(('norm.', 'head.')) for k in converted)
    # the official train-checkpoint wrappers and a DDP prefix
    wrapped = {'model': {f'module.{k}': v for k, v in official.items()},
               'model_ema': official_state_dict('xxs', seed=3),
               'epoch': 299}
    assert convert_edgenext(wrapped).keys() == converted.keys()
    ema = convert_edgenext(wrapped, use_ema=True)
    key = 'stages.3.blocks.1.attn.qkv.weight'
    assert torch.equal(ema[key],
                       wrapped['model_ema']['stages.3.1.xca.qkv.weight'])
    # converting twice changes nothing
    assert convert_edgenext(converted).keys() == converted.keys()
    # BN-HS checkpoints (BatchNorm buffers) are refused
    bn_hs = dict(official)
    bn_hs['stages.0.0.norm.running_mean'] = torch.zeros(24)
    with pytest.raises(ValueError, match='BN-HS'):
        convert_edgenext(bn_hs)


def test_pretrained_init_cfg_and_tool(tmp_path):
    official = official_state_dict('xxs', num_classes=1000)
    src, dst = tmp_path / 'official.pth', tmp_path / 'densekit.pth'
    torch.save({'model': official, 'epoch': 1}, src)
    from tests.converter_cli import convert_cli
    assert convert_cli('edgenext')([src, dst, '--arch', 'xxs']) == 0

    model = MODELS.build(dict(
        type='densekit.EdgeNeXt', arch='xxs',
        init_cfg=dict(type='Pretrained', checkpoint=str(dst))))
    model.init_weights()
    assert torch.equal(model.stages[2].blocks[5].attn.qkv.weight,
                       official['stages.2.5.xca.qkv.weight'])
    assert torch.equal(model.stages[0].downsample.conv.weight,
                       official['downsample_layers.0.0.weight'])


def test_init_cfg_converts_the_raw_official_checkpoint(tmp_path):
    """``init_cfg=dict(type='Pretrained')`` on the official file itself (the
    train-checkpoint wrapper with ``model``/``model_ema``, 1000-class head,
    official keys as in :func:`official_state_dict`), converted on the fly
    like the other zoo backbones; float64 stage outputs equal the official
    forward."""
    official = official_state_dict('xxs', num_classes=1000)
    path = tmp_path / 'edgenext_xx_small.pth'
    torch.save({'model': official,
                'model_ema': official_state_dict('xxs', 1000, seed=5),
                'epoch': 299}, path)
    model = MODELS.build(dict(
        type='densekit.EdgeNeXt', arch='xxs', out_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    model.init_weights()
    assert torch.equal(model.stages[2].blocks[5].attn.qkv.weight,
                       official['stages.2.5.xca.qkv.weight'])
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64,
                   generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref_feats, _ = official_forward(
            {k: v.double() for k, v in official.items()}, x, 'xxs')
        feats = model.double().eval()(x)
    diff = max((f - r).abs().max().item() for f, r in zip(feats, ref_feats))
    print(f'EdgeNeXt from the raw official checkpoint vs official forward '
          f'(float64): max |diff| {diff:.3e}')
    for feat, ref in zip(feats, ref_feats):
        torch.testing.assert_close(feat, ref, rtol=1e-10, atol=1e-10)
    # with the per-output norms (the default): only those stay initialised
    dense = MODELS.build(dict(
        type='densekit.EdgeNeXt', arch='xxs',
        init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    norm = dense.norm3.weight.detach().clone()
    dense.init_weights()
    assert torch.equal(dense.norm3.weight, norm)
    for key, value in model.state_dict().items():
        assert torch.equal(dense.state_dict()[key].double(), value), key
    # a file of another arch is refused, not loaded partially
    other = MODELS.build(dict(
        type='densekit.EdgeNeXt', arch='s',
        init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    with pytest.raises(ValueError, match='other shapes'):
        other.init_weights()

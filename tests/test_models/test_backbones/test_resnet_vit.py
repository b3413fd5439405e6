"""ResNetViT (TransUNet's R50-ViT hybrid): feature contract, the official
stem quirk, position-embedding resize, grey input, the pure-ViT variant and
the converter of the official npz layout."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from densekit.models.backbones import ResNetViT, convert_resnet_vit
from densekit.models.backbones.resnet_vit import resize_pos_embed
from densekit.models.layers import StdConv2d

TINY = dict(img_size=64, stem_channels=16, base_channels=8,
            stage_blocks=(1, 2, 1),
            norm_cfg=dict(type='GN', num_groups=8, eps=1e-6),
            embed_dims=32, num_layers=2, num_heads=2)


def tiny(**kwargs):
    torch.manual_seed(0)
    model = ResNetViT(**dict(TINY, **kwargs))
    model.init_weights()
    return model.eval()


def test_every_stage_contract_and_shapes():
    model = tiny(out_indices=(0, 1, 2, 3, 4))
    assert model.feature_info == [
        dict(channels=16, stride=2), dict(channels=32, stride=4),
        dict(channels=64, stride=8), dict(channels=128, stride=16),
        dict(channels=32, stride=16)]
    with torch.no_grad():
        outs = model(torch.rand(2, 3, 64, 64))
    assert len(outs) == 5
    for out, info in zip(outs, model.feature_info):
        s = info['stride']
        assert out.shape == (2, info['channels'], 64 // s, 64 // s)
        assert torch.isfinite(out).all()


def test_default_out_indices_are_transunets():
    model = tiny()
    assert model.out_indices == (0, 1, 2, 4)
    assert model.out_strides == [2, 4, 8, 16]
    assert model.out_channels == [16, 32, 64, 32]


def test_padding_zero_max_pool_and_padded_skip():
    # official stem: 64 -> 32 (conv) -> 15 (3x3/2 pool, padding 0); the
    # stride-4 skip is zero-padded to 16 at the bottom/right only
    model = tiny(out_indices=(1, ))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        raw = model.stages[1](model.maxpool(model.stages[0](x)))
        skip, = model(x)
    assert raw.shape[-2:] == (15, 15)
    assert skip.shape[-2:] == (16, 16)
    assert torch.equal(skip[..., :15, :15], raw)
    assert skip[..., 15, :].abs().sum() == 0
    assert skip[..., :, 15].abs().sum() == 0


def test_stride_on_3x3_std_conv_and_group_norms():
    model = tiny()
    block = model.stages[2][0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    # the official weight standardisation everywhere, shortcuts included
    for conv in (block.conv1, block.conv2, block.conv3,
                 block.downsample[0], model.stages[0].conv):
        assert type(conv) is StdConv2d and conv.eps == 1e-5
    assert type(tiny(conv_cfg=dict(type='ConvWS')).stages[0].conv
                ).__name__ == 'ConvWS2d'
    assert model.stages[0].conv.kernel_size == (7, 7)
    assert model.stages[0].gn.eps == 1e-6
    assert model.stages[0].gn.num_groups == 8
    # projection shortcut norm: GroupNorm(C, C) as TransUNet's port
    proj_norm = block.downsample[1]
    assert proj_norm.num_groups == proj_norm.num_channels == 64
    assert model.maxpool.padding == 0 and model.maxpool.kernel_size == 3


def test_position_embedding_resized_bicubically_for_other_inputs():
    model = tiny(out_indices=(4, ))
    encoder = model.stages[4]
    assert encoder.pos_embed.shape == (1, 16, 32)  # 4 x 4 grid, no cls token
    resized = encoder.position_embedding((6, 5))
    grid = encoder.pos_embed.reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(6, 5), mode='bicubic',
                             align_corners=False).flatten(2).transpose(1, 2)
    assert torch.allclose(resized, expected)
    assert encoder.position_embedding((4, 4)) is encoder.pos_embed
    # hand-checkable: a constant embedding stays constant
    const = torch.full((1, 16, 3), 0.5)
    assert torch.allclose(resize_pos_embed(const, (4, 4), (7, 3)),
                          torch.full((1, 21, 3), 0.5))
    with torch.no_grad():
        out, = model(torch.rand(1, 3, 96, 80))
    assert out.shape == (1, 32, 6, 5)


def test_grey_input_is_repeated_only_when_asked():
    model = tiny(grey_to_rgb=True)
    grey = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        a = model(grey)
        b = model(grey.repeat(1, 3, 1, 1))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match=r'expected images \(N, 3, H, W\)'):
        tiny()(grey)


def test_pure_vit_variant():
    model = tiny(hybrid=False)
    assert model.feature_info == [dict(channels=32, stride=16)]
    assert model.stages[0].patch_embed.kernel_size == (16, 16)
    with torch.no_grad():
        out, = model(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 32, 4, 4)


@pytest.mark.parametrize('kwargs,match', [
    (dict(stage_blocks=(1, 1)), 'stage_blocks needs one count'),
    (dict(out_indices=(5, )), 'out_indices must be a non-empty subset'),
    (dict(img_size=8), 'img_size must be'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResNetViT(**dict(TINY, **kwargs))


# -- converter: the official npz layout (TransUNet's load_from keys) -------

def official_npz(model, rng):
    """A synthetic R50+ViT-B_16.npz for ``model``: every key TransUNet's
    ``load_from`` reads, in the JAX shapes, plus the classifier keys."""
    sd = model.state_dict()
    C = model.stages[4].pos_embed.shape[-1]
    heads = model.stages[4].layers[0].attn.attn.num_heads
    w = {}

    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    stem = sd['stages.0.conv.weight'].shape[0]
    w['conv_root/kernel'] = arr(7, 7, 3, stem)
    w['gn_root/scale'], w['gn_root/bias'] = arr(stem), arr(stem)
    for b in (1, 2, 3):
        blocks = len(model.stages[b])
        for u in range(1, blocks + 1):
            pre = f'stages.{b}.{u - 1}.'
            for k in (1, 2, 3):
                o, i, kh, kw = sd[f'{pre}conv{k}.weight'].shape
                w[f'block{b}/unit{u}/conv{k}/kernel'] = arr(kh, kw, i, o)
                w[f'block{b}/unit{u}/gn{k}/scale'] = arr(o)
                w[f'block{b}/unit{u}/gn{k}/bias'] = arr(o)
            if f'{pre}downsample.0.weight' in sd:
                o, i = sd[f'{pre}downsample.0.weight'].shape[:2]
                w[f'block{b}/unit{u}/conv_proj/kernel'] = arr(1, 1, i, o)
                w[f'block{b}/unit{u}/gn_proj/scale'] = arr(o)
                w[f'block{b}/unit{u}/gn_proj/bias'] = arr(o)
    w['embedding/kernel'] = arr(1, 1, model.stage_channels[3], C)
    w['embedding/bias'] = arr(C)
    w['Transformer/posembed_input/pos_embedding'] = arr(
        1, 1 + model.stages[4].pos_embed.shape[1], C)
    w['Transformer/encoder_norm/scale'] = arr(C)
    w['Transformer/encoder_norm/bias'] = arr(C)
    for i in range(len(model.stages[4].layers)):
        pre = f'Transformer/encoderblock_{i}/'
        att = pre + 'MultiHeadDotProductAttention_1/'
        for n in ('query', 'key', 'value'):
            w[f'{att}{n}/kernel'] = arr(C, heads, C // heads)
            w[f'{att}{n}/bias'] = arr(heads, C // heads)
        w[att + 'out/kernel'] = arr(heads, C // heads, C)
        w[att + 'out/bias'] = arr(C)
        for norm in ('LayerNorm_0', 'LayerNorm_2'):
            w[f'{pre}{norm}/scale'], w[f'{pre}{norm}/bias'] = arr(C), arr(C)
        w[pre + 'MlpBlock_3/Dense_0/kernel'] = arr(C, 4 * C)
        w[pre + 'MlpBlock_3/Dense_0/bias'] = arr(4 * C)
        w[pre + 'MlpBlock_3/Dense_1/kernel'] = arr(4 * C, C)
        w[pre + 'MlpBlock_3/Dense_1/bias'] = arr(C)
    # the ViT classifier, unused by TransUNet
    w['cls'] = arr(1, 1, C)
    w['head/kernel'], w['head/bias'] = arr(C, 10), arr(10)
    return w


def test_converter_maps_every_official_key():
    model = tiny()
    npz = official_npz(model, np.random.default_rng(0))
    converted = convert_resnet_vit(dict(npz), grid_size=(4, 4))
    own = model.state_dict()
    assert set(converted) == set(own)
    for k, v in converted.items():
        assert v.shape == own[k].shape, k
    model.load_state_dict(converted, strict=True)
    # safe to run twice
    assert convert_resnet_vit(converted) is not None
    assert set(convert_resnet_vit(converted)) == set(own)
    # value transforms
    assert torch.equal(converted['stages.0.conv.weight'], torch.from_numpy(
        npz['conv_root/kernel'].transpose(3, 2, 0, 1)))
    assert torch.equal(converted['stages.4.pos_embed'], torch.from_numpy(
        npz['Transformer/posembed_input/pos_embedding'][:, 1:]))
    assert torch.equal(converted['stages.4.layers.1.ffn.layers.0.0.weight'],
                       torch.from_numpy(npz['Transformer/encoderblock_1/'
                                            'MlpBlock_3/Dense_0/kernel'].T))


def test_converted_attention_computes_the_official_attention():
    """The per-head JAX kernels, used as TransUNet's ``Attention`` uses
    them, give the output of the converted ``nn.MultiheadAttention``."""
    model = tiny()
    npz = official_npz(model, np.random.default_rng(1))
    model.load_state_dict(convert_resnet_vit(dict(npz), grid_size=(4, 4)))
    C, heads = 32, 2
    att = 'Transformer/encoderblock_0/MultiHeadDotProductAttention_1/'
    x = torch.randn(2, 5, C)

    def proj(name):
        kernel = torch.from_numpy(npz[f'{att}{name}/kernel']).reshape(C, C)
        bias = torch.from_numpy(npz[f'{att}{name}/bias']).reshape(C)
        y = x @ kernel + bias
        return y.reshape(2, 5, heads, C // heads).permute(0, 2, 1, 3)

    q, k, v = proj('query'), proj('key'), proj('value')
    probs = (q @ k.transpose(-1, -2) / (C // heads)**0.5).softmax(-1)
    ctx = (probs @ v).permute(0, 2, 1, 3).reshape(2, 5, C)
    expected = ctx @ torch.from_numpy(npz[att + 'out/kernel']).reshape(C, C) \
        + torch.from_numpy(npz[att + 'out/bias'])
    mha = model.stages[4].layers[0].attn.attn  # torch's, maybe seq-first
    seq = x if mha.batch_first else x.transpose(0, 1)
    with torch.no_grad():
        got = mha(seq, seq, seq, need_weights=False)[0]
    got = got if mha.batch_first else got.transpose(0, 1)
    print('max |diff|', (got - expected).abs().max().item())
    assert torch.allclose(got, expected, atol=1e-4)


def test_converter_resizes_the_position_embedding_and_refuses_leftovers():
    from densekit.models.utils.checkpoint import UnconvertedKeysError
    model = tiny(img_size=96)  # 6 x 6 grid
    npz = official_npz(tiny(), np.random.default_rng(2))
    converted = model.convert_pretrained(dict(npz))
    assert converted['stages.4.pos_embed'].shape == (1, 36, 32)
    model.load_state_dict(converted)
    # keys of no part of the official npz are refused (every converter
    # reports them the same way), the classifier is dropped on purpose
    npz['extra/unknown'] = np.zeros(3, np.float32)
    with pytest.raises(UnconvertedKeysError,
                       match=r"1 keys not in .*\['extra/unknown'\]"):
        model.convert_pretrained(dict(npz))
    with pytest.raises(ValueError, match='no ViT classifier'):
        convert_resnet_vit(dict(npz), with_head=True)


# -- parity: the hybrid ResNet against the official StdConv2d ResNetV2 -----
# Restated from Beckschen/TransUNet networks/vit_seg_modeling_resnet_skip.py
# (StdConv2d, PreActBottleneck, ResNetV2.forward and their load_from), on
# the npz arrays directly, so only convert_resnet_vit links the two sides.

def official_std_conv2d(x, kernel, stride=1, padding=0):
    """``StdConv2d.forward``: biased variance, eps under the square root."""
    v, m = torch.var_mean(kernel, dim=[1, 2, 3], keepdim=True,
                          unbiased=False)
    return F.conv2d(x, (kernel - m) / torch.sqrt(v + 1e-5), None, stride,
                    padding)


def official_resnetv2(npz, x, block_units):
    """``ResNetV2.forward``: (body output, [skips deepest first])."""
    def t(key, conv=False):  # np2th, in x's dtype
        value = npz[key].transpose([3, 2, 0, 1]) if conv else npz[key]
        return torch.from_numpy(value).to(x.dtype)

    def gn(y, prefix, groups, eps):
        return F.group_norm(y, groups, t(prefix + '/scale').view(-1),
                            t(prefix + '/bias').view(-1), eps)

    def unit(y, prefix, stride):  # PreActBottleneck.forward
        kernel3 = t(prefix + 'conv3/kernel', conv=True)
        cin, cout = y.shape[1], kernel3.shape[0]
        residual = y
        if stride != 1 or cin != cout:  # downsample + GroupNorm(cout, cout)
            residual = gn(official_std_conv2d(
                y, t(prefix + 'conv_proj/kernel', conv=True), stride),
                prefix + 'gn_proj', cout, 1e-5)
        z = F.relu(gn(official_std_conv2d(
            y, t(prefix + 'conv1/kernel', conv=True)), prefix + 'gn1', 32,
            1e-6))
        z = F.relu(gn(official_std_conv2d(
            z, t(prefix + 'conv2/kernel', conv=True), stride, 1),
            prefix + 'gn2', 32, 1e-6))
        z = gn(official_std_conv2d(z, kernel3), prefix + 'gn3', 32, 1e-6)
        return F.relu(residual + z)

    b, _, in_size, _ = x.shape
    x = F.relu(gn(official_std_conv2d(x, t('conv_root/kernel', conv=True),
                                      2, 3), 'gn_root', 32, 1e-6))
    features = [x]
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=0)
    for i, units in enumerate(block_units):
        for u in range(1, units + 1):
            x = unit(x, f'block{i + 1}/unit{u}/',
                     2 if (u == 1 and i > 0) else 1)
        if i == len(block_units) - 1:
            break
        right_size = int(in_size / 4 / (i + 1))
        feat = x
        if x.shape[2] != right_size:
            feat = x.new_zeros((b, x.shape[1], right_size, right_size))
            feat[:, :, :x.shape[2], :x.shape[3]] = x
        features.append(feat)
    return x, features[::-1]


#: the official widths (cmid = width, cout = 4 width per stage, GN(32))
PARITY = dict(img_size=64, stem_channels=32, base_channels=32,
              stage_blocks=(1, 2, 1), embed_dims=32, num_layers=1,
              num_heads=2)


def parity_pair(conv_cfg=None):
    """A converted model in float64 and the npz it was converted from:
    random GN scales/biases and conv kernels of std 0.02 (the order of the
    released weights, where the eps placement matters)."""
    kwargs = dict(PARITY) if conv_cfg is None else dict(PARITY,
                                                        conv_cfg=conv_cfg)
    torch.manual_seed(0)
    model = ResNetViT(**kwargs)
    npz = official_npz(model, np.random.default_rng(3))
    for key in npz:
        if key.endswith('/kernel') and key.startswith(('conv_root', 'block')):
            npz[key] = npz[key] * np.float32(0.02)
    model.load_state_dict(convert_resnet_vit(dict(npz), grid_size=(4, 4)))
    return model.double().eval(), npz


def test_hybrid_resnet_matches_the_official_std_conv_resnetv2():
    model, npz = parity_pair()
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64,
                   generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        body, (skip8, skip4, skip2) = official_resnetv2(
            npz, x, PARITY['stage_blocks'])
        model.out_indices = (0, 1, 2, 3)  # the CNN stages
        ours = model(x)
    diffs = [(a - b).abs().max().item()
             for a, b in zip(ours, (skip2, skip4, skip8, body))]
    scale = max(t.abs().max().item() for t in (skip2, skip4, skip8, body))
    print(f'official StdConv2d ResNetV2 vs ResNetV2 stages (float64): max '
          f'|diff| per stride 2/4/8/16 {diffs} (outputs up to {scale:.2f})')
    for a, b in zip(ours, (skip2, skip4, skip8, body)):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_mmcv_conv_ws_option_is_not_the_official_standardisation():
    """``conv_cfg=dict(type='ConvWS')`` (unbiased std + eps) stays
    available but differs from the official model on the same weights."""
    model, npz = parity_pair(conv_cfg=dict(type='ConvWS'))
    model.out_indices = (3, )
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64,
                   generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        body, _ = official_resnetv2(npz, x, PARITY['stage_blocks'])
        ours, = model(x)
    diff = (ours - body).abs().max().item()
    rel = diff / body.abs().max().item()
    print(f'ConvWS option vs official (float64): max |diff| {diff:.3e} '
          f'({rel:.2e} of the largest output)')
    assert rel > 1e-4

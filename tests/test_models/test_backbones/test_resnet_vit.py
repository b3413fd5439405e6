"""ResNetViT (TransUNet's R50-ViT hybrid): feature contract, the official
stem quirk, position-embedding resize, grey input, the pure-ViT variant and
the converter of the official npz layout."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from densekit.models.backbones import ResNetViT, convert_resnet_vit
from densekit.models.backbones.resnet_vit import resize_pos_embed

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


def test_stride_on_3x3_conv_ws_and_group_norms():
    model = tiny()
    block = model.stages[2][0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert type(block.conv2).__name__ == 'ConvWS2d'
    assert type(model.stages[0].conv).__name__ == 'ConvWS2d'
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


def test_frozen_stages():
    model = tiny(frozen_stages=1)
    model.train()
    assert not any(p.requires_grad for p in model.stages[1].parameters())
    assert all(p.requires_grad for p in model.stages[2].parameters())


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

    w['conv_root/kernel'] = arr(7, 7, 3, 16)
    w['gn_root/scale'], w['gn_root/bias'] = arr(16), arr(16)
    for b, blocks in enumerate(TINY['stage_blocks'], 1):
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
    w['embedding/kernel'] = arr(1, 1, 128, C)
    w['embedding/bias'] = arr(C)
    w['Transformer/posembed_input/pos_embedding'] = arr(1, 1 + 16, C)
    w['Transformer/encoder_norm/scale'] = arr(C)
    w['Transformer/encoder_norm/bias'] = arr(C)
    for i in range(TINY['num_layers']):
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


def test_converter_resizes_the_position_embedding_and_reports_leftovers():
    model = tiny(img_size=96)  # 6 x 6 grid
    npz = official_npz(tiny(), np.random.default_rng(2))
    npz['extra/unknown'] = np.zeros(3, np.float32)
    converted = model.convert_pretrained(dict(npz))
    assert converted['stages.4.pos_embed'].shape == (1, 36, 32)
    assert 'extra/unknown' not in converted
    model.load_state_dict(converted)

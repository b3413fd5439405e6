"""TransNeXt: parameter counts against the official figures, feature
contract, odd input sizes, freezing, gradients, the aggregated attention
against a per-pixel loop reference, and the converter of official
checkpoints on an official-layout state dict written out by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

import densekit.models.backbones.transnext  # noqa: F401  (registers)
from densekit.models.backbones.transnext import (AggregatedAttention,
                                                 TransNeXt, convert_transnext,
                                                 local_length_and_mask,
                                                 relative_position_cpb,
                                                 sliding_window_keys,
                                                 transnext_classifier)
from densekit.registry import MODELS

# ImageNet-1K, 1000-class head (official README)
OFFICIAL_PARAMS_M = {'micro': 12.8, 'tiny': 28.2}
# a small arch for speed
SMALL = dict(embed_dims=(16, 32, 64, 64), depths=(1, 1, 2, 1),
             num_heads=(2, 2, 4, 4), mlp_ratios=(4, 4, 4, 4))


@pytest.mark.parametrize('arch', ['micro', 'tiny'])
def test_params_match_official(arch):
    model = transnext_classifier(arch, num_classes=1000, img_size=64)
    n = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(n - OFFICIAL_PARAMS_M[arch]) / OFFICIAL_PARAMS_M[arch] < 0.03
    logits = model.eval()(torch.rand(1, 3, 64, 64))
    assert logits.shape == (1, 1000)


def test_feature_contract_micro_from_registry():
    model = MODELS.build(dict(type='densekit.TransNeXt', arch='micro',
                              img_size=64)).eval()
    assert model.out_strides == [4, 8, 16, 32]
    assert model.out_channels == [48, 96, 192, 384]
    with torch.no_grad():
        outs = model(torch.rand(2, 3, 64, 64))
    for out, c, s in zip(outs, model.out_channels, model.out_strides):
        assert out.shape == (2, c, 64 // s, 64 // s)
    model = TransNeXt(arch=SMALL, img_size=64, out_indices=(1, 3))
    assert model.out_strides == [8, 32]
    assert [o.shape[1] for o in model(torch.rand(1, 3, 64, 64))] == [32, 64]


@pytest.mark.parametrize('size', [(70, 45), (97, 64), (40, 33)])
def test_non_multiple_of_32_gives_ceil(size):
    model = TransNeXt(arch=SMALL, img_size=64).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, *size))
    for out, s in zip(outs, model.out_strides):
        assert out.shape[2:] == (math.ceil(size[0] / s),
                                 math.ceil(size[1] / s))
        assert torch.isfinite(out).all()


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        TransNeXt(arch='huge')
    with pytest.raises(ValueError):
        TransNeXt(arch=SMALL, img_size=64, out_indices=(4, ))
    with pytest.raises(ValueError):
        TransNeXt(arch=SMALL, img_size=64, frozen_stages=4)


def test_forward_backward_reaches_every_parameter():
    model = TransNeXt(arch=SMALL, img_size=64, drop_path_rate=0.1).train()
    # non-zero learnable_bias etc. so every path carries gradient
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.01)
    outs = model(torch.rand(2, 3, 64, 48))
    sum(o.square().mean() for o in outs).backward()
    missing = [n for n, p in model.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_sliding_window_keys_match_loop():
    torch.manual_seed(0)
    H, W, w = 4, 5, 3
    x = torch.randn(2, 3, H * W, 4)
    cols = sliding_window_keys(x, (H, W), w)
    assert cols.shape == (2, 3, H * W, 4, w * w)
    ref = torch.zeros_like(cols)
    for i in range(H):
        for j in range(W):
            for dy in range(w):
                for dx in range(w):
                    y, z = i + dy - w // 2, j + dx - w // 2
                    if 0 <= y < H and 0 <= z < W:
                        ref[:, :, i * W + j, :, dy * w + dx] = \
                            x[:, :, y * W + z]
    torch.testing.assert_close(cols, ref)
    length, mask = local_length_and_mask((H, W), w)
    assert length[0, 0] == 4 and length[W + 1, 0] == 9
    torch.testing.assert_close(mask, (ref.abs().sum((0, 1, 3)) == 0))


def _attention_loop(attn, x, hw, index, table):
    """Aggregated attention (Sec. 3.2-3.3) one query pixel at a time."""
    B, N, C = x.shape
    H, W = hw
    heads, d, w = attn.num_heads, attn.head_dims, attn.window_size
    ph, pw = attn.pool_hw(hw)
    q = F.normalize(attn.q(x).view(B, N, heads, d), dim=-1)
    k, v = attn.kv(x).view(B, N, 2, heads, d).unbind(2)
    k = F.normalize(k, dim=-1)
    pooled = F.adaptive_avg_pool2d(
        attn.act(attn.sr(x.transpose(1, 2).reshape(B, C, H, W))), (ph, pw))
    pooled = attn.norm(pooled.flatten(2).transpose(1, 2))
    kp, vp = attn.kv(pooled).view(B, ph * pw, 2, heads, d).unbind(2)
    kp = F.normalize(kp, dim=-1)
    bias = attn.cpb_fc2(F.relu(attn.cpb_fc1(table)))[index].view(
        N, ph * pw, heads)
    tau = F.softplus(attn.temperature).view(heads)
    out = torch.zeros(B, N, heads, d)
    for p in range(N):
        i, j = divmod(p, W)
        nbrs = [(dy * w + dx, (i + dy - 1) * W + j + dx - 1)
                for dy in range(w) for dx in range(w)
                if 0 <= i + dy - 1 < H and 0 <= j + dx - 1 < W]
        scale = math.log(len(nbrs) + ph * pw)
        for h in range(heads):
            qs = (q[:, p, h] + attn.query_embedding[h, 0]) * tau[h] * scale
            loc = torch.stack([qs[b] @ k[b, n, h] for b in range(B)
                               for _, n in nbrs]).view(B, -1) + \
                attn.relative_pos_bias_local[h, [s for s, _ in nbrs]]
            pool = (qs.unsqueeze(1) * kp[:, :, h]).sum(-1) + bias[p, :, h]
            a = torch.cat([loc, pool], -1).softmax(-1)
            for t, (s, n) in enumerate(nbrs):
                wt = a[:, t] + q[:, p, h] @ attn.learnable_tokens[h, :, s] + \
                    attn.learnable_bias[h, 0, s]
                out[:, p, h] += wt[:, None] * v[:, n, h]
            out[:, p, h] += (a[:, len(nbrs):, None] * vp[:, :, h]).sum(1)
    return attn.proj(out.reshape(B, N, C))


def test_aggregated_attention_matches_pixel_loop():
    torch.manual_seed(0)
    hw, sr = (4, 6), 2
    attn = AggregatedAttention(8, 2, hw, window_size=3, sr_ratio=sr).eval()
    for p in attn.parameters():
        p.data.add_(torch.randn_like(p) * 0.1)
    index, table = relative_position_cpb(hw, (2, 3))
    x = torch.randn(2, hw[0] * hw[1], 8)
    # length scale and padding mask as the stage makes them (sr 2 stage)
    stage = TransNeXt(arch=SMALL, img_size=64).stages[2]
    assert stage.sr_ratio == sr
    scale, mask = stage.attention_inputs(hw, x.device)
    with torch.no_grad():
        out = attn(x, hw, index, table, scale, mask)
        ref = _attention_loop(attn, x, hw, index, table)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_relative_coords_are_log_spaced():
    index, table = relative_position_cpb((4, 4), (2, 2))
    assert index.shape == (16 * 4, )
    assert table.abs().max() <= 1.0 + 1e-6
    # offset 0.5 px on a 4-grid -> 0.5 / 3 * 8, then log2(. + 1) / 3
    expected = math.log2(0.5 / 3 * 8 + 1) / 3
    assert torch.isclose(table.abs().min(), torch.tensor(expected))


def official_state_dict(cfg, num_classes=1000, seed=0):
    """An ImageNet checkpoint in the official key layout
    (``classification/transnext_native.py``: ``patch_embed{i}``,
    ``block{i}.{j}``, ``norm{i}``, ``head``), shapes written out here."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def put(name, *shape):
        sd[name] = torch.randn(*shape, generator=g) * 0.2

    dims, heads, ratios = cfg['embed_dims'], cfg['num_heads'], \
        cfg['mlp_ratios']
    cin = 3
    for i in range(4):
        c, n, s = dims[i], heads[i], i + 1
        k = 7 if i == 0 else 3
        put(f'patch_embed{s}.proj.weight', c, cin, k, k)
        put(f'patch_embed{s}.proj.bias', c)
        put(f'patch_embed{s}.norm.weight', c)
        put(f'patch_embed{s}.norm.bias', c)
        hidden = int(2 * int(c * ratios[i]) / 3)
        for j in range(cfg['depths'][i]):
            p = f'block{s}.{j}.'
            for norm in ('norm1', 'norm2'):
                put(p + norm + '.weight', c)
                put(p + norm + '.bias', c)
            put(p + 'attn.temperature', n, 1, 1)
            put(p + 'attn.query_embedding', n, 1, c // n)
            if i < 3:
                put(p + 'attn.q.weight', c, c)
                put(p + 'attn.q.bias', c)
                put(p + 'attn.kv.weight', 2 * c, c)
                put(p + 'attn.kv.bias', 2 * c)
                put(p + 'attn.sr.weight', c, c, 1, 1)
                put(p + 'attn.sr.bias', c)
                put(p + 'attn.norm.weight', c)
                put(p + 'attn.norm.bias', c)
                put(p + 'attn.relative_pos_bias_local', n, 9)
                put(p + 'attn.learnable_tokens', n, c // n, 9)
                put(p + 'attn.learnable_bias', n, 1, 9)
            else:
                put(p + 'attn.qkv.weight', 3 * c, c)
                put(p + 'attn.qkv.bias', 3 * c)
            put(p + 'attn.proj.weight', c, c)
            put(p + 'attn.proj.bias', c)
            put(p + 'attn.cpb_fc1.weight', 512, 2)
            put(p + 'attn.cpb_fc1.bias', 512)
            put(p + 'attn.cpb_fc2.weight', n, 512)
            put(p + 'attn.cpb_fc2.bias', n)
            put(p + 'mlp.fc1.weight', 2 * hidden, c)
            put(p + 'mlp.fc1.bias', 2 * hidden)
            put(p + 'mlp.dwconv.dwconv.weight', hidden, 1, 3, 3)
            put(p + 'mlp.dwconv.dwconv.bias', hidden)
            put(p + 'mlp.fc2.weight', c, hidden)
            put(p + 'mlp.fc2.bias', c)
        put(f'norm{s}.weight', c)
        put(f'norm{s}.bias', c)
        cin = c
    put('head.weight', num_classes, dims[3])
    put('head.bias', num_classes)
    return sd


def test_converter_loads_official_layout_strictly():
    official = official_state_dict(SMALL)
    model = TransNeXt(arch=SMALL, img_size=64)
    converted = convert_transnext({'model': official})
    model.load_state_dict(converted, strict=True)
    torch.testing.assert_close(
        model.stages[1].blocks[0].mlp.dwconv.weight,
        official['block2.0.mlp.dwconv.dwconv.weight'])
    torch.testing.assert_close(model.stages[3].norm.bias,
                               official['norm4.bias'])
    # classifier with head; detection layout; idempotent; unknown keys
    clf = transnext_classifier(SMALL, num_classes=1000, img_size=64)
    clf.load_state_dict(convert_transnext(official, with_head=True))
    det = {f'backbone.{k}': v for k, v in official.items()
           if not k.startswith('head.')}
    det['neck.conv.weight'] = torch.zeros(1)
    assert convert_transnext({'state_dict': det}).keys() == converted.keys()
    assert convert_transnext(converted).keys() == converted.keys()
    assert model.convert_pretrained(official).keys() == converted.keys()
    with pytest.raises(KeyError):
        convert_transnext({**official, 'block1.0.attn.foo': torch.zeros(1)})


def test_init_cfg_pretrained_accepts_official_file(tmp_path):
    path = tmp_path / 'transnext.pth'
    official = official_state_dict(SMALL)
    torch.save({'model': official}, path)
    model = TransNeXt(arch=SMALL, img_size=64, init_cfg=dict(
        type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    torch.testing.assert_close(model.stages[0].embed.proj.weight,
                               official['patch_embed1.proj.weight'])


def test_converter_tool(tmp_path, capsys):
    from tests.converter_cli import convert_cli
    convert = convert_cli('transnext')
    src, dst = tmp_path / 'official.pth', tmp_path / 'densekit.pth'
    official = official_state_dict(TransNeXt.resolve_arch('micro'))
    torch.save({'model': official}, src)
    assert convert([src, dst, '--arch', 'micro']) == 0
    assert 'every key and shape matches' in capsys.readouterr().out
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    assert saved['meta']['converter'] == 'convert_transnext'
    model = TransNeXt(arch='micro', img_size=64)
    model.load_state_dict(saved['state_dict'], strict=True)
    torch.testing.assert_close(model.stages[2].blocks[3].attn.proj.weight,
                               official['block3.3.attn.proj.weight'])
    assert convert([src, dst, '--arch', 'micro', '--with-head']) == 0
    with_head = torch.load(dst, map_location='cpu', weights_only=True)
    assert 'head.weight' in with_head['state_dict']
    assert convert([src, dst, '--prefix', 'backbone.']) == 0
    prefixed = torch.load(dst, map_location='cpu', weights_only=True)
    assert all(k.startswith('backbone.') for k in prefixed['state_dict'])
    # a wrong arch is reported, not saved as if it fitted
    capsys.readouterr()
    assert convert([src, dst, '--arch', 'tiny']) == 1
    assert 'mismatches against TransNeXt tiny' in capsys.readouterr().out


@pytest.mark.parametrize('query,key,pretrain', [((4, 4), (2, 2), None),
                                                ((7, 5), (3, 2), (4, 4)),
                                                ((16, 12), (2, 2), (8, 8))])
def test_relative_position_cpb_equals_unique_over_all_pairs(query, key,
                                                           pretrain):
    # reference: the official construction, torch.unique over every pair
    pre = pretrain or query
    axes = [(torch.arange(query[d], dtype=torch.float32),
             F.adaptive_avg_pool1d(
                 torch.arange(query[d], dtype=torch.float32)[None],
                 key[d])[0]) for d in range(2)]
    qh, qw = torch.meshgrid(axes[0][0], axes[1][0], indexing='ij')
    kh, kw = torch.meshgrid(axes[0][1], axes[1][1], indexing='ij')
    rel = torch.stack([
        (qh.reshape(-1, 1) - kh.reshape(1, -1)) / (pre[0] - 1) * 8,
        (qw.reshape(-1, 1) - kw.reshape(1, -1)) / (pre[1] - 1) * 8
    ], dim=-1).view(-1, 2)
    ref_table, ref_index = torch.unique(rel, return_inverse=True, dim=0)
    ref_table = torch.sign(ref_table) * torch.log2(ref_table.abs() + 1) / 3
    index, table = relative_position_cpb(query, key, pretrain)
    torch.testing.assert_close(table, ref_table)
    assert torch.equal(index, ref_index)


# -- float64 parity of the length-scaled attention -------------------------
# Restated from DaiShiResearch/TransNeXt classification/transnext.py
# (get_relative_position_cpb, Attention.__init__/forward) and
# classification/attention_native.py (the aggregated stages' buffer).

def official_relative_position_cpb(query_size, key_size, pretrain_size):
    axis_qh = torch.arange(query_size[0], dtype=torch.float32)
    axis_kh = F.adaptive_avg_pool1d(axis_qh.unsqueeze(0),
                                    key_size[0]).squeeze(0)
    axis_qw = torch.arange(query_size[1], dtype=torch.float32)
    axis_kw = F.adaptive_avg_pool1d(axis_qw.unsqueeze(0),
                                    key_size[1]).squeeze(0)
    axis_kh, axis_kw = torch.meshgrid(axis_kh, axis_kw, indexing='ij')
    axis_qh, axis_qw = torch.meshgrid(axis_qh, axis_qw, indexing='ij')
    axis_kh, axis_kw = axis_kh.reshape(-1), axis_kw.reshape(-1)
    axis_qh, axis_qw = axis_qh.reshape(-1), axis_qw.reshape(-1)
    relative_h = (axis_qh[:, None] - axis_kh[None, :]) / (
        pretrain_size[0] - 1) * 8
    relative_w = (axis_qw[:, None] - axis_kw[None, :]) / (
        pretrain_size[1] - 1) * 8
    relative_hw = torch.stack([relative_h, relative_w], dim=-1).view(-1, 2)
    table, idx_map = torch.unique(relative_hw, return_inverse=True, dim=0)
    table = torch.sign(table) * torch.log2(torch.abs(table) + 1.0) / \
        torch.log2(torch.tensor(8, dtype=torch.float32))
    return idx_map, table


def official_attention(attn, x, H, W, relative_pos_index,
                       relative_coords_table):
    """``Attention.forward`` on ``attn``'s weights; ``seq_length_scale`` is
    the official buffer ``torch.as_tensor(np.log(H * W))`` (float64)."""
    import numpy as np
    seq_length_scale = torch.as_tensor(np.log(H * W))
    B, N, C = x.shape
    heads, head_dim = attn.num_heads, C // attn.num_heads
    qkv = attn.qkv(x).reshape(B, -1, 3 * heads, head_dim).permute(0, 2, 1, 3)
    q, k, v = qkv.chunk(3, dim=1)
    rel_bias = attn.cpb_fc2(F.relu(attn.cpb_fc1(relative_coords_table))
                            ).transpose(0, 1)[:, relative_pos_index.view(-1)
                                              ].view(-1, N, N)
    logits = ((F.normalize(q, dim=-1) + attn.query_embedding) *
              F.softplus(attn.temperature) * seq_length_scale
              ) @ F.normalize(k, dim=-1).transpose(-2, -1) + rel_bias
    out = (logits.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, C)
    return attn.proj(out), seq_length_scale


def test_global_attention_length_scale_is_the_official_float64():
    torch.manual_seed(0)
    model = TransNeXt(arch=SMALL, img_size=128).double().eval()
    stage = model.stages[3]
    attn = stage.blocks[0].attn
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-degenerate: every parameter randomised
        for p in attn.parameters():
            p.copy_(torch.randn(p.shape, generator=gen,
                                dtype=p.dtype) * 0.3)
    hw = (4, 4)  # 128 / 32
    index, table = official_relative_position_cpb(hw, hw, hw)
    torch.testing.assert_close(stage.relative_coords_table,
                               table.double(), rtol=0, atol=0)
    assert torch.equal(stage.relative_pos_index, index)
    x = torch.randn(2, 16, 64, dtype=torch.float64, generator=gen)
    scale, mask = stage.attention_inputs(hw, x.device)
    with torch.no_grad():
        ref, ref_scale = official_attention(attn, x, *hw, index,
                                            table.double())
        out = attn(x, hw, stage.relative_pos_index,
                   stage.relative_coords_table, scale, mask)
    diff = (out - ref).abs().max().item()
    print(f'TransNeXt global attention vs official (float64): max |diff| '
          f'{diff:.3e}; seq_length_scale {scale.item()!r} ({scale.dtype}) '
          f'vs official {ref_scale.item()!r} ({ref_scale.dtype})')
    assert scale.dtype == ref_scale.dtype == torch.float64 and mask is None
    assert scale.item() == ref_scale.item()
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    # the float32 rounding of log(16) (the former scale) is visible here
    with torch.no_grad():
        out32 = attn(x, hw, stage.relative_pos_index,
                     stage.relative_coords_table, scale.float().double(),
                     mask)
    assert (out32 - ref).abs().max() > 1e3 * max(diff, 1e-16)
    # float32 runs keep float32 activations
    x32 = x.float()
    assert attn.float()(x32, hw, stage.relative_pos_index.cpu(),
                        stage.relative_coords_table.float(), scale,
                        mask).dtype == torch.float32


def test_aggregated_length_scale_matches_the_official_buffer():
    """The sr > 1 stages: ``np.log(local_seq_length.numpy() + pool_len)``,
    a float32 buffer in the official ``AggregatedAttention``."""
    import numpy as np
    model = TransNeXt(arch=SMALL, img_size=64)
    for i, hw in enumerate([(16, 16), (8, 8), (4, 4)]):
        stage = model.stages[i]
        scale, mask = stage.attention_inputs(hw, 'cpu')
        local = F.unfold(torch.ones([1, 1, *hw]), 3, dilation=1,
                         padding=(1, 1), stride=1).sum(-2).squeeze(
                             ).unsqueeze(-1)
        pool_len = (hw[0] // stage.sr_ratio) * (hw[1] // stage.sr_ratio)
        official = torch.as_tensor(np.log(local.numpy() + pool_len))
        diff = (scale - official).abs().max().item()
        print(f'stage {i}: aggregated seq_length_scale max |diff| {diff}')
        assert scale.dtype == official.dtype == torch.float32
        torch.testing.assert_close(scale, official, rtol=2e-7, atol=0)

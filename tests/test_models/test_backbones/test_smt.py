"""SMT: parameter counts against the official figures, feature contract,
odd input sizes, freezing, norm_eval, gradients, SAM / attention against
functional references, and the converter of official checkpoints, tested on
official-layout state dicts generated here by hand, including a whole-model
check against a functional re-statement of the official forward pass."""
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

import densekit.models.backbones.smt  # noqa: F401  (registers SMT)
from densekit.models.backbones.smt import (SMT, ScaleAwareModulation,
                                           SMTAttention, convert_smt,
                                           smt_classifier)
from densekit.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

# ImageNet-1K, 1000-class head: paper Table 2 / abstract (README: 12M, 21M,
# 32M, 81M)
OFFICIAL_PARAMS_M = {'T': 11.5, 'S': 20.5, 'B': 32.0, 'L': 80.5}
# The official ``smt_s`` definition (models/smt.py and
# configs/smt/smt_small_224.yaml: depths 3, 4, 18, 2, mlp ratios 4, 4, 4, 2)
# has 22.55M parameters, not 20.5M (nor the README's 21M); its 4.66 GMACs at
# 224 (attention products excluded, as ptflops does) do match the README's
# 4.7G, so the architecture is the official one and the published count is
# off. T, B and L match to 0.3%.
OFFICIAL_CODE_PARAMS_M = {'S': 22.55}


def test_published_and_official_build_counts_are_recorded():
    assert {a: v / 1e6 for a, v in SMT.official_params.items()} == \
        OFFICIAL_PARAMS_M
    assert {a: v / 1e6 for a, v in SMT.official_build_params.items()} == \
        OFFICIAL_CODE_PARAMS_M

_COMMON = dict(ca_num_heads=(4, 4, 4, -1), sa_num_heads=(-1, -1, 8, 16),
               ca_attentions=(1, 1, 1, 0))
# official smt_t / smt_s / smt_b / smt_l (models/smt.py)
OFFICIAL_ARCH = {
    'T': dict(embed_dims=(64, 128, 256, 512), depths=(2, 2, 8, 1),
              mlp_ratios=(4, 4, 4, 2), head_conv=3, **_COMMON),
    'S': dict(embed_dims=(64, 128, 256, 512), depths=(3, 4, 18, 2),
              mlp_ratios=(4, 4, 4, 2), head_conv=3, **_COMMON),
    'B': dict(embed_dims=(64, 128, 256, 512), depths=(4, 6, 28, 2),
              mlp_ratios=(8, 6, 4, 2), head_conv=7, **_COMMON),
    'L': dict(embed_dims=(96, 192, 384, 768), depths=(4, 6, 28, 4),
              mlp_ratios=(8, 6, 4, 2), head_conv=7, **_COMMON),
}
# a small arch for speed: stage 3 = SAM, MSA; stage 4 = MSA
TINY = dict(embed_dims=(16, 32, 64, 128), depths=(1, 1, 2, 1),
            mlp_ratios=(2, 2, 2, 2), head_conv=3, ca_num_heads=(4, 4, 4, -1),
            sa_num_heads=(-1, -1, 4, 8), ca_attentions=(1, 1, 1, 0))


def official_state_dict(cfg, num_classes=1000, layerscale=False,
                        with_counters=True, empty=False, seed=0):
    """An ImageNet checkpoint's state dict in the official key layout
    (``models/smt.py``: ``patch_embed{i}``, ``block{i}``, ``norm{i}``,
    ``head``), written out by hand. Weights ~N(0, 0.2), LN/BN scales ~1,
    positive running variances."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def tensor(name, *shape, scale=0.2, offset=0.):
        sd[name] = torch.empty(*shape) if empty else \
            torch.randn(*shape, generator=g) * scale + offset

    def linear(prefix, out_dims, in_dims, bias=True):
        tensor(f'{prefix}.weight', out_dims, in_dims)
        if bias:
            tensor(f'{prefix}.bias', out_dims)

    def conv(prefix, out_dims, in_per_group, k, bias=True):
        tensor(f'{prefix}.weight', out_dims, in_per_group, k, k)
        if bias:
            tensor(f'{prefix}.bias', out_dims)

    def norm(prefix, dims, bn=False):
        tensor(f'{prefix}.weight', dims, scale=0.1, offset=1.)
        tensor(f'{prefix}.bias', dims, scale=0.1)
        if bn:
            tensor(f'{prefix}.running_mean', dims, scale=0.1)
            sd[f'{prefix}.running_var'] = torch.empty(dims) if empty else \
                torch.rand(dims, generator=g) + 0.5
            if with_counters:
                sd[f'{prefix}.num_batches_tracked'] = torch.tensor(100)

    dims, depths = cfg['embed_dims'], cfg['depths']
    conv('patch_embed1.conv.0', dims[0], 3, cfg['head_conv'], bias=False)
    norm('patch_embed1.conv.1', dims[0], bn=True)
    conv('patch_embed1.conv.3', dims[0], dims[0], 2)
    norm('patch_embed1.norm', dims[0])
    for i, (dim, depth) in enumerate(zip(dims, depths)):
        if i:
            conv(f'patch_embed{i + 1}.proj', dim, dims[i - 1], 3)
            norm(f'patch_embed{i + 1}.norm', dim)
        hidden = int(dim * cfg['mlp_ratios'][i])
        for j in range(depth):
            p = f'block{i + 1}.{j}'
            norm(f'{p}.norm1', dim)
            sam = cfg['ca_attentions'][i] and not (i == 2 and j % 2)
            if sam:
                heads = cfg['ca_num_heads'][i]
                linear(f'{p}.attn.v', dim, dim)
                linear(f'{p}.attn.s', dim, dim)
                for k in range(heads):
                    conv(f'{p}.attn.local_conv_{k + 1}', dim // heads, 1,
                         3 + 2 * k)
                conv(f'{p}.attn.proj0', 2 * dim, heads, 1)
                norm(f'{p}.attn.bn', 2 * dim, bn=True)
                conv(f'{p}.attn.proj1', dim, 2 * dim, 1)
            else:
                linear(f'{p}.attn.q', dim, dim)
                linear(f'{p}.attn.kv', 2 * dim, dim)
                conv(f'{p}.attn.local_conv', dim, 1, 3)
            linear(f'{p}.attn.proj', dim, dim)
            norm(f'{p}.norm2', dim)
            linear(f'{p}.mlp.fc1', hidden, dim)
            conv(f'{p}.mlp.dwconv.dwconv', hidden, 1, 3)
            linear(f'{p}.mlp.fc2', dim, hidden)
            if layerscale:
                tensor(f'{p}.gamma_1', dim)
                tensor(f'{p}.gamma_2', dim)
        norm(f'norm{i + 1}', dim)
    if num_classes:
        linear('head', num_classes, dims[-1])
    return sd


def official_mixer(sd, p, sam, heads, y, height, width):
    """The official ``Attention.forward`` (SAM if ``sam`` else MSA, output
    projection included) on (B, N, C) tokens, with functional ops."""
    def lin(t, name):
        return F.linear(t, sd[f'{p}.attn.{name}.weight'],
                        sd[f'{p}.attn.{name}.bias'])

    batch, tokens, dims = y.shape
    if sam:
        v = lin(y, 'v')
        s = lin(y, 's').reshape(batch, height, width, heads,
                                dims // heads).permute(3, 0, 4, 1, 2)
        s_out = None
        for h in range(heads):
            s_h = F.conv2d(s[h], sd[f'{p}.attn.local_conv_{h + 1}.weight'],
                           sd[f'{p}.attn.local_conv_{h + 1}.bias'], 1, 1 + h,
                           groups=dims // heads)
            s_h = s_h.reshape(batch, dims // heads, -1, height, width)
            s_out = s_h if s_out is None else torch.cat([s_out, s_h], 2)
        s_out = s_out.reshape(batch, dims, height, width)
        s_out = F.conv2d(s_out, sd[f'{p}.attn.proj0.weight'],
                         sd[f'{p}.attn.proj0.bias'], groups=dims // heads)
        s_out = F.batch_norm(s_out, sd[f'{p}.attn.bn.running_mean'],
                             sd[f'{p}.attn.bn.running_var'],
                             sd[f'{p}.attn.bn.weight'],
                             sd[f'{p}.attn.bn.bias'], False, 0., 1e-5)
        s_out = F.conv2d(F.gelu(s_out), sd[f'{p}.attn.proj1.weight'],
                         sd[f'{p}.attn.proj1.bias'])
        out = s_out.reshape(batch, dims, tokens).permute(0, 2, 1) * v
    else:
        q = lin(y, 'q').reshape(batch, tokens, heads,
                                dims // heads).permute(0, 2, 1, 3)
        kv = lin(y, 'kv').reshape(batch, -1, 2, heads,
                                  dims // heads).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        attn = ((q @ k.transpose(-2, -1)) * (dims // heads)**-0.5).softmax(-1)
        local = F.conv2d(
            v.transpose(1, 2).reshape(batch, tokens, dims).transpose(
                1, 2).reshape(batch, dims, height, width),
            sd[f'{p}.attn.local_conv.weight'],
            sd[f'{p}.attn.local_conv.bias'], 1, 1, groups=dims)
        out = (attn @ v).transpose(1, 2).reshape(batch, tokens, dims) + \
            local.reshape(batch, dims, tokens).transpose(1, 2)
    return lin(out, 'proj')


def official_forward(sd, cfg, x):
    """The official ``forward_features`` (models/smt.py), restated with
    functional ops on (B, N, C) tokens; returns every stage's map as the
    official detection backbone does."""
    def ln(t, prefix, eps):
        return F.layer_norm(t, t.shape[-1:], sd[f'{prefix}.weight'],
                            sd[f'{prefix}.bias'], eps)

    def lin(t, prefix):
        return F.linear(t, sd[f'{prefix}.weight'], sd.get(f'{prefix}.bias'))

    def bn(t, prefix):
        return F.batch_norm(t, sd[f'{prefix}.running_mean'],
                            sd[f'{prefix}.running_var'],
                            sd[f'{prefix}.weight'], sd[f'{prefix}.bias'],
                            False, 0., 1e-5)

    batch = x.shape[0]
    outs = []
    for i, depth in enumerate(cfg['depths']):
        if i == 0:
            k = cfg['head_conv']
            x = F.conv2d(x, sd['patch_embed1.conv.0.weight'], None, 2,
                         3 if k == 7 else 1)
            x = F.relu(bn(x, 'patch_embed1.conv.1'))
            x = F.conv2d(x, sd['patch_embed1.conv.3.weight'],
                         sd['patch_embed1.conv.3.bias'], 2)
        else:
            x = F.conv2d(x, sd[f'patch_embed{i + 1}.proj.weight'],
                         sd[f'patch_embed{i + 1}.proj.bias'], 2, 1)
        _, dims, height, width = x.shape
        x = ln(x.flatten(2).transpose(1, 2), f'patch_embed{i + 1}.norm',
               1e-5)
        for j in range(depth):
            p = f'block{i + 1}.{j}'
            y = ln(x, f'{p}.norm1', 1e-6)
            sam = bool(cfg['ca_attentions'][i]) and not (i == 2 and j % 2)
            heads = cfg['ca_num_heads' if sam else 'sa_num_heads'][i]
            x = x + official_mixer(sd, p, sam, heads, y, height, width)
            y = lin(ln(x, f'{p}.norm2', 1e-6), f'{p}.mlp.fc1')
            hidden = y.shape[-1]
            dw = F.conv2d(y.transpose(1, 2).reshape(batch, hidden, height,
                                                    width),
                          sd[f'{p}.mlp.dwconv.dwconv.weight'],
                          sd[f'{p}.mlp.dwconv.dwconv.bias'], 1, 1,
                          groups=hidden)
            y = F.gelu(y + dw.flatten(2).transpose(1, 2))
            x = x + lin(y, f'{p}.mlp.fc2')
        x = ln(x, f'norm{i + 1}', 1e-6)
        x = x.reshape(batch, height, width, -1).permute(0, 3, 1, 2)
        outs.append(x.contiguous())
    return outs


def num_params(module):
    return sum(p.numel() for p in module.parameters())


def _state_params(sd):
    return sum(v.numel() for k, v in sd.items()
               if not k.endswith(('running_mean', 'running_var',
                                  'num_batches_tracked')))


# -- parameter counts -------------------------------------------------------
@pytest.mark.parametrize('arch', ['T', 'S', 'B', 'L'])
def test_params_match_official(arch):
    count = num_params(smt_classifier(arch)) / 1e6
    # the official-layout dict built from the official definitions agrees
    hand = _state_params(official_state_dict(OFFICIAL_ARCH[arch],
                                             empty=True)) / 1e6
    assert count == pytest.approx(hand, abs=1e-6)
    if arch in OFFICIAL_CODE_PARAMS_M:
        # published figure inconsistent with the official code (see top)
        assert count == pytest.approx(OFFICIAL_CODE_PARAMS_M[arch],
                                      abs=0.01)
        assert count / OFFICIAL_PARAMS_M[arch] == pytest.approx(1.10,
                                                                abs=0.01)
    else:
        assert count == pytest.approx(OFFICIAL_PARAMS_M[arch], rel=0.03)
        assert count == pytest.approx(OFFICIAL_PARAMS_M[arch], rel=0.005)


# -- feature contract -------------------------------------------------------
def test_feature_contract_t():
    model = MODELS.build(dict(type='densekit.SMT', arch='T')).eval()
    assert isinstance(model, SMT)
    assert model.out_channels == [64, 128, 256, 512]
    assert model.out_strides == [4, 8, 16, 32]
    assert [len(stage.blocks) for stage in model.stages] == [2, 2, 8, 1]
    assert model.block_types == [['sam'] * 2, ['sam'] * 2,
                                 ['sam', 'msa'] * 4, ['msa']]
    sam = model.stages[2].blocks[0].attn
    assert isinstance(sam, ScaleAwareModulation)
    assert sam.kernel_sizes == [3, 5, 7, 9]
    assert [c.weight.shape[0] for c in sam.local_convs] == [64] * 4
    assert sam.proj0.groups == 64 and sam.proj0.out_channels == 512
    msa = model.stages[2].blocks[1].attn
    assert isinstance(msa, SMTAttention) and msa.num_heads == 8
    assert model.stages[3].blocks[0].attn.num_heads == 16
    assert model.stages[0].embed.conv.kernel_size == (3, 3)
    assert model.stages[1].blocks[0].mlp.fc1.out_features == 512
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 64, 64))
    assert len(feats) == 4
    for feat, info in zip(feats, model.feature_info):
        assert feat.shape == (1, info['channels'], 64 // info['stride'],
                              64 // info['stride'])
        assert feat.is_contiguous()
        assert torch.isfinite(feat).all()
    base = SMT(arch='base', out_indices=(0, ))
    assert base.stages[0].embed.conv.kernel_size == (7, 7)
    assert base.out_channels == [64]
    assert base.stages[1].blocks[0].mlp.fc1.out_features == 6 * 128


def test_out_indices_subset():
    model = SMT(arch=TINY, out_indices=(1, 3)).eval()
    assert model.out_channels == [32, 128]
    assert model.out_strides == [8, 32]
    with torch.no_grad():
        feats = model(torch.rand(2, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(2, 32, 8, 8), (2, 128, 2, 2)]
    early = SMT(arch=TINY, out_indices=(0, )).eval()
    early.stages[1].forward = None    # later stages are never run
    with torch.no_grad():
        assert early(torch.rand(1, 3, 32, 32))[0].shape == (1, 16, 8, 8)


@pytest.mark.parametrize('size', [(50, 37), (33, 95), (17, 17), (64, 48),
                                  (30, 30)])
def test_any_input_size_gives_ceil(size):
    model = SMT(arch=TINY).eval()
    with torch.no_grad():
        feats = model(torch.rand(1, 3, *size))
    for feat, stride in zip(feats, [4, 8, 16, 32]):
        assert tuple(feat.shape[-2:]) == (math.ceil(size[0] / stride),
                                          math.ceil(size[1] / stride))


@pytest.mark.parametrize('head_conv', [3, 7])
def test_stem_padding_only_adds_rows(head_conv):
    """The official stem drops the last row/column of an odd-sized map
    before its 2x2 conv; ours pads instead, so its output has one more
    row/column and agrees with the official stem everywhere else."""
    model = SMT(arch=dict(TINY, head_conv=head_conv)).eval()
    stem = model.stages[0].embed
    x = torch.randn(1, 3, 50, 37)
    with torch.no_grad():
        ours = stem(x)
        y = F.relu(stem.bn(stem.conv(x)))
        official = stem.norm(stem.proj(y).permute(0, 2, 3, 1))
    assert ours.shape[1:3] == (13, 10) and official.shape[1:3] == (12, 9)
    torch.testing.assert_close(ours[:, :12, :9], official)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='arch'):
        SMT(arch='X')
    with pytest.raises(ValueError, match='needs'):
        SMT(arch=dict(embed_dims=(16, 32, 64, 128), depths=(1, 1, 1, 1)))
    with pytest.raises(ValueError, match='divisible'):
        SMT(arch=dict(TINY, ca_num_heads=(3, 4, 4, -1)))
    with pytest.raises(ValueError, match='out_indices'):
        SMT(arch=TINY, out_indices=(4, ))
    with pytest.raises(ValueError, match='frozen_stages'):
        SMT(arch=TINY, frozen_stages=4)


# -- training behaviour -----------------------------------------------------
@pytest.mark.parametrize('norm_eval', [False, True])
def test_norm_eval(norm_eval):
    model = SMT(arch=TINY, norm_eval=norm_eval)
    model.train()
    bns = [m for m in model.modules()
           if isinstance(m, torch.nn.BatchNorm2d)]
    # the stem's and one per SAM block (SAA)
    assert len(bns) == 1 + sum(
        t == 'sam' for types in model.block_types for t in types) == 4
    means = [bn.running_mean.clone() for bn in bns]
    model(torch.rand(2, 3, 32, 32))
    for bn, mean in zip(bns, means):
        assert bn.training is not norm_eval
        assert torch.equal(bn.running_mean, mean) is norm_eval
    # other layers still train
    assert model.stages[2].blocks[1].training


@pytest.mark.parametrize('options', [
    dict(),
    dict(use_layerscale=True, drop_rate=0.1, attn_drop_rate=0.1),
])
def test_forward_backward_reaches_every_parameter(options):
    torch.manual_seed(0)
    model = SMT(arch=TINY, drop_path_rate=0.2, **options)
    model.train()
    feats = model(torch.rand(2, 3, 40, 56))
    loss = sum((f**2).mean() for f in feats)
    loss.backward()
    no_grad = [name for name, p in model.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad
    if options:
        gamma = model.stages[0].blocks[0].gamma1
        assert torch.allclose(gamma.detach(), torch.full((16, ), 1e-4),
                              atol=1e-3)


def test_sam_and_attention_match_official_formulas():
    """A SAM and an MSA mixer against the official code's reshapes
    (models/smt.py ``Attention.forward``) on (B, N, C) tokens."""
    sd = official_state_dict(TINY, num_classes=0, seed=1)
    model = SMT(arch=TINY).eval()
    model.load_state_dict(convert_smt(sd), strict=True)
    x = torch.randn(2, 5, 7, 64)        # stage-3 width, (B, H, W, C)
    tokens = x.reshape(2, 35, 64)
    with torch.no_grad():
        for j, sam, heads in ((0, True, 4), (1, False, 4)):
            ours = model.stages[2].blocks[j].attn(x)
            expected = official_mixer(sd, f'block3.{j}', sam, heads, tokens,
                                      5, 7).reshape(2, 5, 7, 64)
            torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)


def test_whole_model_matches_official_forward():
    """Converted official weights reproduce the official forward pass
    (every stage map, eval mode, random BN statistics)."""
    for cfg in (TINY, dict(TINY, head_conv=7, depths=(1, 2, 4, 2))):
        sd = official_state_dict(cfg, num_classes=0, seed=2)
        model = SMT(arch=cfg).eval()
        model.load_state_dict(convert_smt(sd), strict=True)
        x = torch.randn(2, 3, 64, 96)
        with torch.no_grad():
            ours = model(x)
            expected = official_forward(sd, cfg, x)
        assert len(ours) == len(expected) == 4
        for a, b in zip(ours, expected):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_classifier_head():
    model = smt_classifier(TINY, num_classes=10).eval()
    assert model.backbone.out_indices == (3, )
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 10)
    sd = official_state_dict(TINY, num_classes=10, seed=3)
    model.load_state_dict(convert_smt(sd, with_head=True), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = F.linear(official_forward(sd, TINY, x)[-1].mean((2, 3)),
                            sd['head.weight'], sd['head.bias'])
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)


# -- converter --------------------------------------------------------------
def test_converter_loads_t_official_layout_strictly():
    official = official_state_dict(OFFICIAL_ARCH['T'])
    converted = convert_smt({'model': official, 'epoch': 300})
    model = SMT(arch='T')
    # every backbone tensor (stage norms included) is in the ImageNet
    # checkpoint: only the head is dropped
    model.load_state_dict(converted, strict=True)
    assert len(converted) == len(official) - 2
    assert 'head.weight' not in converted
    assert torch.equal(model.stages[0].embed.bn.running_var,
                       official['patch_embed1.conv.1.running_var'])
    assert torch.equal(model.stages[0].embed.proj.weight,
                       official['patch_embed1.conv.3.weight'])
    assert torch.equal(model.stages[2].blocks[6].attn.local_convs[3].weight,
                       official['block3.6.attn.local_conv_4.weight'])
    assert torch.equal(model.stages[2].blocks[7].attn.kv.weight,
                       official['block3.7.attn.kv.weight'])
    assert torch.equal(model.stages[1].blocks[1].mlp.dwconv.bias,
                       official['block2.1.mlp.dwconv.dwconv.bias'])
    assert torch.equal(model.stages[3].norm.weight, official['norm4.weight'])
    assert torch.equal(model.stages[3].embed.proj.weight,
                       official['patch_embed4.proj.weight'])
    # with the head, the whole classifier loads strictly
    classifier = smt_classifier('T')
    classifier.load_state_dict(convert_smt(official, with_head=True),
                               strict=True)
    assert torch.equal(classifier.head.weight, official['head.weight'])
    assert torch.equal(classifier.backbone.stages[0].norm.bias,
                       official['norm1.bias'])


def test_converter_variants_idempotent_and_errors():
    official = official_state_dict(TINY, layerscale=True,
                                   with_counters=False)
    converted = convert_smt(official)
    model = SMT(arch=TINY, use_layerscale=True)
    # BN counters absent from the file: PyTorch fills them in
    model.load_state_dict(converted, strict=True)
    assert torch.equal(model.stages[2].blocks[1].gamma2,
                       official['block3.1.gamma_2'])
    again = convert_smt({'state_dict': converted})
    assert again.keys() == converted.keys()
    with_head = convert_smt(official, with_head=True)
    assert convert_smt(with_head, with_head=True).keys() == with_head.keys()
    # official detection / segmentation checkpoint: backbone.* kept
    detector = {f'backbone.{k}': v for k, v in official.items()
                if not k.startswith('head.')}
    detector['neck.lateral_convs.0.conv.weight'] = torch.zeros(2, 2, 1, 1)
    detector['module.x'] = torch.zeros(1)
    model.load_state_dict(convert_smt({'state_dict': detector}), strict=True)
    with pytest.raises(KeyError, match='block1.0.attn.unknown'):
        convert_smt({**official, 'block1.0.attn.unknown.weight':
                     torch.zeros(1)})
    with pytest.raises(KeyError, match='patch_embed1.conv.2'):
        convert_smt({**official, 'patch_embed1.conv.2.weight':
                     torch.zeros(1)})
    with pytest.raises(TypeError):
        convert_smt([1, 2])


def test_init_cfg_pretrained_accepts_official_file(tmp_path):
    official = official_state_dict(TINY, seed=4)
    path = tmp_path / 'smt_official.pth'
    torch.save({'model': official, 'epoch': 300}, path)
    model = SMT(arch=TINY, frozen_stages=0,
                init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert torch.equal(model.stages[3].blocks[0].mlp.fc2.bias,
                       official['block4.0.mlp.fc2.bias'])
    assert torch.equal(model.stages[0].embed.conv.weight,
                       official['patch_embed1.conv.0.weight'])
    assert not any(p.requires_grad for p in model.stages[0].parameters())
    # a densekit detector checkpoint with a prefix
    dk_path = tmp_path / 'densekit_detector.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in model.state_dict().items()}},
               dk_path)
    other = SMT(arch=TINY, init_cfg=dict(
        type='Pretrained', checkpoint=str(dk_path), prefix='backbone.'))
    other.init_weights()
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key


def test_converter_tool(tmp_path, capsys):
    from tests.converter_cli import convert_cli
    convert = convert_cli('smt')
    src, dst = tmp_path / 'official.pth', tmp_path / 'densekit.pth'
    torch.save({'model': official_state_dict(OFFICIAL_ARCH['T'],
                                             with_counters=False)}, src)
    assert convert([src, dst, '--arch', 'T']) == 0
    assert 'every key and shape matches' in capsys.readouterr().out
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    SMT(arch='T').load_state_dict(saved['state_dict'], strict=True)
    assert convert([src, dst, '--arch', 'T', '--with-head']) == 0
    # a wrong arch is reported
    assert convert([src, dst, '--arch', 'S']) == 1

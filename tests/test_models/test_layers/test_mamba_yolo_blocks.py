import pytest
import torch
import torch.nn as nn

from densekit.models.layers import (LayerNorm2d, LSBlock, RGBlock, SimpleStem,
                                    VisionClueMerge, VSSBlock, XSSBlock)


def test_simple_stem_downsamples_4x():
    stem = SimpleStem(3, 16)
    assert stem(torch.rand(2, 3, 32, 24)).shape == (2, 16, 8, 6)
    # GELU after the first conv, SiLU after the second, as the official stem
    assert isinstance(stem.conv1.activate, nn.GELU)
    assert isinstance(stem.conv2.activate, nn.SiLU)
    assert stem.conv1.bn.eps == 1e-3 and stem.conv1.bn.momentum == 0.03


def test_vision_clue_merge_phase_order():
    merge = VisionClueMerge(1, 4)
    # identity projection: output channels are the stacked phases
    with torch.no_grad():
        merge.pw_linear.conv.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        merge.pw_linear.conv.bias.zero_()
    merge.pw_linear = merge.pw_linear.conv  # drop BN/SiLU for the check
    x = torch.arange(16.).view(1, 1, 4, 4)
    out = merge(x)
    assert out.shape == (1, 4, 2, 2)
    # phases: (even, even), (odd row, even col), (even row, odd col), (odd)
    assert out[0, :, 0, 0].tolist() == [0., 4., 1., 5.]


def test_vision_clue_merge_rejects_odd_sizes():
    with pytest.raises(ValueError, match=r'\(5, 4\)'):
        VisionClueMerge(2, 4)(torch.rand(1, 2, 5, 4))


def test_ls_and_rg_blocks_keep_shapes():
    x = torch.rand(2, 8, 5, 6)
    assert LSBlock(8)(x).shape == x.shape
    rg = RGBlock(8, 32)
    assert rg.dwconv.in_channels == int(2 * 32 / 3)  # official 2/3 rule
    assert rg(x).shape == x.shape
    assert RGBlock(8, 32, 12)(x).shape == (2, 12, 5, 6)


def test_layer_norm_2d_normalises_channels():
    x = torch.randn(2, 6, 3, 4) * 5 + 3
    y = LayerNorm2d(6, eps=1e-6)(x)
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 3, 4),
                               atol=1e-5, rtol=0)


def test_vss_block_shapes():
    block = VSSBlock(8, 16, ssm_d_state=4)
    assert block(torch.rand(2, 8, 6, 5)).shape == (2, 16, 6, 5)
    no_mlp = VSSBlock(8, 8, mlp_ratio=0, ssm_d_state=4)
    assert no_mlp.mlp is None
    assert no_mlp(torch.rand(1, 8, 4, 4)).shape == (1, 8, 4, 4)


def test_xss_block_shapes_and_projection():
    block = XSSBlock(24, 8, num_ss2d=2, ssm_d_state=4)
    assert len(block.ss2d) == 2
    assert block(torch.rand(2, 24, 4, 6)).shape == (2, 8, 4, 6)
    same = XSSBlock(8, 8, ssm_d_state=4)
    assert isinstance(same.in_proj, nn.Identity)  # as the official block
    x = torch.rand(1, 8, 4, 4, requires_grad=True)
    same(x).sum().backward()
    assert x.grad is not None
    with pytest.raises(ValueError, match='num_ss2d'):
        XSSBlock(8, 8, num_ss2d=0)

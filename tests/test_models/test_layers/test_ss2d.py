import math

import pytest
import torch

from densekit.models.layers import SS2D


def test_parameters_match_official_shapes():
    # official SS2D(d_model=32), forward_type 'v2', ssm_ratio 2, d_state 16
    m = SS2D(32)
    d, rank, n = 64, math.ceil(32 / 16), 16
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        'in_proj.weight': (2 * d, 32, 1, 1),
        'conv2d.weight': (d, 1, 3, 3),
        'conv2d.bias': (d, ),
        'x_proj_weight': (4, rank + 2 * n, d),
        'dt_projs_weight': (4, d, rank),
        'dt_projs_bias': (4, d),
        'A_logs': (4 * d, n),
        'Ds': (4 * d, ),
        'out_norm.weight': (d, ),
        'out_norm.bias': (d, ),
        'out_proj.weight': (32, d, 1, 1),
    }
    # official "simple" init: A = -exp(0) = -1, D = 1
    assert torch.all(m.A_logs == 0) and torch.all(m.Ds == 1)


@pytest.mark.parametrize('size', [(4, 4), (3, 5), (1, 7)])
def test_shape_and_gradients(size):
    torch.manual_seed(0)
    m = SS2D(8, d_state=4)
    x = torch.randn(2, 8, *size, requires_grad=True)
    y = m(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_scan_sees_the_whole_map():
    # a change in one corner reaches the opposite corner through the scan
    # (a 3x3 depthwise conv alone could not reach it)
    torch.manual_seed(0)
    m = SS2D(4, d_state=4).eval()
    with torch.no_grad():  # small steps: slow decay over the 35-step route
        m.dt_projs_bias.fill_(-4.0)
    x = torch.randn(1, 4, 6, 6)
    x2 = x.clone()
    x2[..., 0, 0] += 1.0
    diff = (m(x2) - m(x))[..., -1, -1].abs().sum()
    assert diff > 1e-6


def test_bad_dt_rank():
    with pytest.raises(ValueError, match='dt_rank'):
        SS2D(8, dt_rank='big')

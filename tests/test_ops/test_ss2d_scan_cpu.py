"""The fused SS2D scan (densekit/ops/csrc/ss2d_scan_cpu.cpp) against the
unfused SS2D path and the sequential reference: outputs and every
gradient."""
import pytest
import torch

from densekit.models.layers import SS2D
from densekit.models.layers.cross_scan import cross_merge, cross_scan
from densekit.models.layers.selective_scan import selective_scan_ref
from densekit.ops.ss2d_scan import ss2d_scan_available, ss2d_scan_cpp


def test_extension_has_the_fused_op():
    assert ss2d_scan_available(), 'rebuild densekit._ext'


def random_ss2d(d_model, d_state, dtype, seed=0):
    torch.manual_seed(seed)
    m = SS2D(d_model, d_state=d_state).to(dtype)
    with torch.no_grad():  # non-degenerate A, D (init: log(1..N), ones)
        m.A_logs.normal_(0, 1)
        m.Ds.normal_(1, 0.5)
    return m


def run(m, x, fused, train=True):
    m.train(train)
    m.fused_scan = fused
    m.zero_grad()
    xi = x.clone().requires_grad_()
    y = m(xi)
    weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
    (y * weights).sum().backward()
    return [('y', y.detach()), ('x', xi.grad)] + [
        (name, p.grad.clone()) for name, p in m.named_parameters()
        if p.grad is not None
    ]


@pytest.mark.parametrize('dtype,rtol', [(torch.float64, 1e-10),
                                        (torch.float32, 1e-5)])
@pytest.mark.parametrize('d_model,d_state,hw', [
    (16, 16, (7, 9)),    # N = 16: states in registers
    (12, 4, (5, 5)),     # N = 4, D not a multiple of the vector width
    (8, 24, (1, 70)),    # N = 24 (any N), a single row, L > one chunk
    (8, 16, (13, 11)),   # L = 143 > 2 chunks of 64, H != W
])
def test_fused_equals_unfused(dtype, rtol, d_model, d_state, hw):
    m = random_ss2d(d_model, d_state, dtype)
    x = torch.randn(2, d_model, *hw, dtype=dtype)
    fused = run(m, x, True)
    plain = run(m, x, False)
    assert [n for n, _ in fused] == [n for n, _ in plain]
    worst = 0.0
    for (name, a), (_, b) in zip(fused, plain):
        scale = float(b.abs().max()) or 1.0
        err = float((a - b).abs().max()) / scale
        worst = max(worst, err)
        assert err <= rtol, (name, err)
    print(f'fused vs unfused SS2D ({str(dtype)[6:]}, D={d_model}, '
          f'N={d_state}, {hw[0]}x{hw[1]}): max rel diff {worst:.1e}')


def test_op_equals_the_sequential_reference():
    """The op's contract restated: each route scanned by the reference
    loop with its own channels, summed back into map order."""
    gen = torch.Generator().manual_seed(1)
    b, d, n, h, w = 2, 5, 3, 4, 6
    L = h * w

    def rnd(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen,
                           dtype=torch.float64) * scale

    x, delta = rnd(b, d, L), rnd(b, 4, d, L)
    A = -torch.rand(4 * d, n, generator=gen, dtype=torch.float64) * 3
    B, C = rnd(b, 4, n, L), rnd(b, 4, n, L)
    D, bias = rnd(4 * d), rnd(4 * d, scale=0.5)
    inputs = [t.requires_grad_() for t in (x, delta, A, B, C, D, bias)]
    ours = ss2d_scan_cpp(*inputs, h, w)
    # reference: routes in scan order, the loop, merged
    xs = cross_scan(x.view(b, d, h, w))  # (b, 4, d, L)
    perm = cross_scan(torch.arange(L, dtype=torch.float64).view(
        1, 1, h, w)).long()[0, :, 0]  # (4, L): map position of each step
    ds = torch.stack([delta[:, k, :, perm[k]] for k in range(4)], 1)
    bs = torch.stack([B[:, k, :, perm[k]] for k in range(4)], 1)
    cs = torch.stack([C[:, k, :, perm[k]] for k in range(4)], 1)
    ys = selective_scan_ref(xs.reshape(b, 4 * d, L), ds.reshape(b, 4 * d, L),
                            A, bs, cs, D, bias, delta_softplus=True)
    ref = cross_merge(ys.view(b, 4, d, L), h, w).transpose(1, 2)
    assert ours.shape == (b, L, d)
    grad = torch.randn(b, L, d, generator=gen, dtype=torch.float64)
    g_ours = torch.autograd.grad(ours, inputs, grad)
    g_ref = torch.autograd.grad(ref, inputs, grad)
    diffs = [float((ours - ref).abs().max())] + [
        float((a - r).abs().max()) for a, r in zip(g_ours, g_ref)]
    print(f'ss2d_scan_cpp vs sequential reference (float64): max abs diff '
          f'{max(diffs):.1e}')
    assert max(diffs) < 1e-11


def test_eval_bfloat16_and_no_grad():
    m = random_ss2d(16, 16, torch.float32).eval()
    x = torch.randn(1, 16, 6, 5)
    with torch.no_grad():
        m.fused_scan = True
        y32 = m(x)
        m.fused_scan = False
        ref = m(x)
        torch.testing.assert_close(y32, ref, rtol=1e-5, atol=1e-5)
        m16 = m.bfloat16()
        m16.fused_scan = True
        y16 = m16(x.bfloat16())
    assert y16.dtype == torch.bfloat16
    err = float((y16.float() - ref).abs().max() / ref.abs().max())
    print(f'fused SS2D bfloat16 vs float32: max rel diff {err:.1e}')
    assert err < 6e-2


def test_not_used_off_the_cpp_path(monkeypatch):
    m = random_ss2d(8, 4, torch.float32)
    x = torch.randn(1, 8, 3, 3)
    assert m._use_fused_scan(x)
    m.scan_impl = 'pytorch'
    assert not m._use_fused_scan(x)
    m.scan_impl = None
    m.fused_scan = False
    assert not m._use_fused_scan(x)

import copy
import math
import os.path as osp

import pytest
import torch

import densekit.models.layers.selective_scan as scan_module
import densekit.models.layers.ss2d as ss2d_module
from densekit.models.layers import SS2D
from densekit.models.layers.selective_scan import selective_scan_ref


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


# ------------------------------------------------------------ dtypes
def official_ss2d_forward(m, x, scan):
    """The official SS2D forward at inference, restated.

    ``SS2D.forward`` + ``forward_corev2`` + ``cross_selective_scan``
    (``HZAI-ZJNU/Mamba-YOLO``, ``ultralytics/nn/modules/mamba_yolo.py`` and
    ``common_utils_mbyolo.py``; forward_type 'v2', eval: ``force_fp32``
    False, ``out_norm_shape`` 'v0'), with ``scan`` in place of
    ``SelectiveScanCore``. Casts as there: xs/dts/Bs/Cs in the model dtype,
    ``A_logs``, ``Ds``, ``dt_projs_bias`` ``.to(torch.float)`` (float64
    kept float64 here, as densekit does; the official CUDA kernel has no
    float64), the scan output in ``u``'s dtype, ``y.to(x.dtype)``.
    """
    x = m.in_proj(x)
    x, z = x.chunk(2, dim=1)
    z1 = m.act(z)
    x = m.act(m.conv2d(x))
    B, D, H, W = x.shape
    N = m.A_logs.shape[1]
    K, _, R = m.dt_projs_weight.shape
    L = H * W
    xs = x.new_empty((B, 4, D, L))  # CrossScan
    xs[:, 0] = x.flatten(2, 3)
    xs[:, 1] = x.transpose(dim0=2, dim1=3).flatten(2, 3)
    xs[:, 2:4] = torch.flip(xs[:, 0:2], dims=[-1])
    x_dbl = torch.einsum('b k d l, k c d -> b k c l', xs, m.x_proj_weight)
    dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
    dts = torch.einsum('b k r l, k d r -> b k d l', dts, m.dt_projs_weight)
    xs = xs.view(B, -1, L)
    dts = dts.contiguous().view(B, -1, L)
    wide = torch.float64 if x.dtype == torch.float64 else torch.float
    As = -torch.exp(m.A_logs.to(wide))
    Ds = m.Ds.to(wide)
    delta_bias = m.dt_projs_bias.view(-1).to(wide)
    ys = scan(xs, dts, As, Bs.contiguous(), Cs.contiguous(), Ds,
              delta_bias, True).view(B, K, -1, H, W)
    ys = ys.view(B, K, D, -1)  # CrossMerge
    ys = ys[:, 0:2] + ys[:, 2:4].flip(dims=[-1]).view(B, 2, D, -1)
    y = ys[:, 0] + ys[:, 1].view(B, -1, W, H).transpose(
        dim0=2, dim1=3).contiguous().view(B, D, -1)
    y = y.transpose(dim0=1, dim1=2).contiguous()
    y = m.out_norm(y).view(B, H, W, -1).to(x.dtype)
    y = y.permute(0, 3, 1, 2).contiguous() * z1
    return m.dropout(m.out_proj(y))


def _random_ss2d(dtype):
    torch.manual_seed(0)
    m = SS2D(16, d_state=4).eval()
    with torch.no_grad():  # leave the trivial init (A = -1, D = 1)
        m.A_logs.uniform_(-1, 1)
        m.Ds.normal_()
        m.out_norm.weight.normal_(1, 0.1)
        m.out_norm.bias.normal_(0, 0.1)
    return m.to(dtype)


def _rel_diff(ours, ref):
    return ((ours.double() - ref.double()).abs().max() /
            ref.double().abs().max()).item()


def test_float64_matches_official_forward():
    m = _random_ss2d(torch.float64)
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    with torch.no_grad():
        y = m(x)
        y_ref = official_ss2d_forward(m, x, selective_scan_ref)
    diff = _rel_diff(y, y_ref)
    print(f'SS2D float64 vs official forward + sequential scan: max rel '
          f'diff {diff:.3e}')
    assert y.dtype == torch.float64 and diff < 1e-10


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_matches_official_forward(dtype):
    # same dtype, same casts: differences can only come from the order of
    # float32 sums inside the scan, rounded to the output dtype (2 ulp)
    m = _random_ss2d(dtype)
    x = torch.randn(2, 16, 5, 7).to(dtype)
    with torch.no_grad():
        y = m(x)
        y_ref = official_ss2d_forward(m, x, selective_scan_ref)
    diff = _rel_diff(y, y_ref)
    print(f'SS2D {dtype} vs official forward: max rel diff {diff:.3e}')
    assert y.dtype == dtype and diff <= 2 * torch.finfo(dtype).eps


def test_training_casts_scan_inputs_to_float32(monkeypatch):
    # official force_fp32 = self.training: the scan sees float32 u/delta/B/C
    seen = []
    scan = ss2d_module.selective_scan_fn

    def spy(u, delta, A, B, C, **kwargs):
        seen.append((u.dtype, delta.dtype, A.dtype, B.dtype, C.dtype))
        return scan(u, delta, A, B, C, **kwargs)

    m = _random_ss2d(torch.bfloat16)
    m.fused_scan = False  # the unfused path's scan inputs (the fused op
    # computes in float32 in both modes)
    x = torch.randn(1, 16, 3, 4).to(torch.bfloat16)
    monkeypatch.setattr('densekit.models.layers.ss2d.selective_scan_fn', spy)
    m.eval()(x)
    y = m.train()(x)
    assert seen[0] == (torch.bfloat16, ) * 2 + (torch.float32, ) + (
        torch.bfloat16, ) * 2
    assert seen[1] == (torch.float32, ) * 5
    assert y.dtype == torch.bfloat16


# ------------------------------------- every dtype through Mamba YOLO-T
@pytest.fixture(scope='module')
def mamba_yolo_t():
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from densekit.registry import MODELS
    from tests.conftest import ROOT
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'det', 'mamba_yolo_t_coco.py'))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    torch.manual_seed(0)
    return MODELS.build(cfg.model).eval()


def _detector_outputs(model, x):
    """Head outputs (cls_scores and bbox_preds of every level), flat."""
    with torch.no_grad():
        cls_scores, bbox_preds = model._forward(x)[:2]
    return list(cls_scores) + list(bbox_preds)


def test_detector_float64_reaches_the_kernel_and_matches_reference(
        mamba_yolo_t, monkeypatch):
    model = copy.deepcopy(mamba_yolo_t).double()
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    ext, reason = scan_module.load_ext()
    assert ext is not None, reason
    kernel_dtypes = []

    class Spy:  # records what reaches densekit._ext's SS2D / scan kernels
        def __getattr__(self, name):
            return getattr(ext, name)

        def ss2d_scan_fwd(self, x, *args):
            kernel_dtypes.append(x.dtype)
            return ext.ss2d_scan_fwd(x, *args)

        def selective_scan_fwd(self, u, *args):
            kernel_dtypes.append(u.dtype)
            return ext.selective_scan_fwd(u, *args)

    monkeypatch.setattr(scan_module, 'load_ext', lambda: (Spy(), None))
    monkeypatch.setattr('densekit.ops.ss2d_scan.load_ext',
                        lambda: (Spy(), None))
    ours = _detector_outputs(model, x)  # the fused C++ op (CPU default)
    num_ss2d = sum(isinstance(m, SS2D) for m in model.modules())
    assert len(kernel_dtypes) == num_ss2d > 0
    assert set(kernel_dtypes) == {torch.float64}
    # the unfused path with the sequential reference loop, same model
    for m in model.modules():
        if isinstance(m, SS2D):
            m.fused_scan = False
    monkeypatch.setattr(
        'densekit.models.layers.ss2d.selective_scan_fn',
        lambda *args, impl=None, **kwargs: selective_scan_ref(*args,
                                                               **kwargs))
    ref = _detector_outputs(model, x)
    diff = max(_rel_diff(a, b) for a, b in zip(ours, ref))
    print(f'Mamba YOLO-T float64 (C++ kernel) vs sequential reference: max '
          f'rel diff {diff:.3e} over {len(ours)} head outputs')
    assert all(a.dtype == torch.float64 for a in ours)
    assert diff < 1e-10


# dtype, device, max |diff| / max |float32 output| per head output; measured
# on this model and input (CPU): bf16 3.2e-2, fp16 4.4e-3
LOW_PRECISION = [
    (torch.bfloat16, 'cpu', 6e-2),
    (torch.float16, 'cpu', 1e-2),
    pytest.param(torch.float16, 'cuda', 1e-2, marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason='fp16 on CUDA needs a GPU')),
]


@pytest.mark.parametrize('dtype, device, tol', LOW_PRECISION)
def test_detector_low_precision_close_to_float32(mamba_yolo_t, dtype,
                                                 device, tol):
    model = copy.deepcopy(mamba_yolo_t).to(device)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    ref = _detector_outputs(model, x.to(device))
    ours = _detector_outputs(model.to(dtype), x.to(device, dtype))
    diff = max(_rel_diff(a, b) for a, b in zip(ours, ref))
    print(f'Mamba YOLO-T {dtype} on {device} vs float32: max rel diff '
          f'{diff:.3e} (tolerance {tol})')
    assert all(a.dtype == dtype and torch.isfinite(a).all() for a in ours)
    assert diff < tol

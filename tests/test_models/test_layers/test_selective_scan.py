"""Parity of the chunked selective scan with a sequential reference loop."""
import logging

import pytest
import torch

import densekit.models.layers.selective_scan as scan_module
from densekit.models.layers import selective_scan_chunked, selective_scan_fn
from densekit.models.layers.selective_scan import selective_scan_ref
from tests.scan_parity import assert_close, check_parity, make_inputs, run_both

NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')


@pytest.mark.parametrize('groups', [1, 2, 4])
@pytest.mark.parametrize('use_d,use_bias,softplus', [(True, True, True),
                                                     (False, False, False),
                                                     (True, False, True),
                                                     (False, True, False)])
def test_float64_matches_reference(groups, use_d, use_bias, softplus):
    inputs = make_inputs(groups=groups, length=37,
                         delta_max=None if softplus else 2.0)
    check_parity(run_both(inputs, use_d, use_bias, softplus, chunk_size=5))


@pytest.mark.parametrize('length,chunk_size', [(1, None), (1, 4), (2, 1),
                                               (64, 8), (64, 64), (65, 8),
                                               (100, 7), (100, 200),
                                               (300, None)])
def test_chunk_sizes_and_lengths(length, chunk_size):
    inputs = make_inputs(batch=3, dim=4, state=3, groups=2, length=length)
    check_parity(run_both(inputs, chunk_size=chunk_size))


def test_bc_without_group_dim():
    inputs = make_inputs(groups=None, length=20)
    (y, grads), (y_ref, grads_ref) = run_both(inputs, chunk_size=6)
    assert grads['B'].shape == inputs['B'].shape == (2, 4, 20)
    check_parity(((y, grads), (y_ref, grads_ref)))
    grouped = dict(inputs, B=inputs['B'][:, None], C=inputs['C'][:, None])
    y_grouped = selective_scan_chunked(
        **grouped, delta_softplus=True, chunk_size=6)
    torch.testing.assert_close(y_grouped, y, rtol=0, atol=0)


@pytest.mark.parametrize('chunk_size', [None, 4, 40])
def test_several_segments(monkeypatch, chunk_size):
    # segments of 16 steps: state and adjoint cross segment boundaries; a
    # chunk of 40 steps exceeds the budget (one chunk per segment, buffers
    # not cached)
    inputs = make_inputs(batch=2, dim=8, state=4, groups=4, length=61)
    monkeypatch.setattr(scan_module, 'SEGMENT_ELEMENTS', 16 * 2 * 8 * 4)
    plan = scan_module.plan_segments(2, 8, 4, 61, chunk_size)
    assert plan[2] > 1 and plan[0] * plan[1] * plan[2] >= 61
    check_parity(run_both(inputs, chunk_size=chunk_size))


def test_clamped_and_unclamped_decays_agree(monkeypatch):
    # exp(dt * A) >= exp(-60) here, so clamping must not change anything
    inputs = make_inputs(length=50)
    results = []
    for clamp in (False, True):
        monkeypatch.setattr(scan_module, '_needs_clamp',
                            lambda dt, A, clamp=clamp: clamp)
        results.append(run_both(inputs, chunk_size=7)[0])
    check_parity(results, rtol=1e-12, atol_scale=1e-14)


def test_float32_matches_reference():
    inputs = make_inputs(batch=2, dim=16, state=8, groups=2, length=300,
                         dtype=torch.float32)
    check_parity(run_both(inputs), rtol=1e-3, atol_scale=1e-4)


def test_long_sequence():
    inputs = make_inputs(batch=1, dim=4, state=4, groups=1, length=4096,
                         a_max=1.0)
    inputs['delta_bias'] = inputs['delta_bias'] - 3  # slow decay: long memory
    check_parity(run_both(inputs))


def test_large_decay_stays_finite_where_naive_form_overflows():
    # |A| log-uniform in [1e-2, 1e3] and delta in [0, 10), skewed to small
    # steps: per-step |A| * delta up to 1e4 next to slowly decaying states
    inputs = make_inputs(batch=2, dim=8, state=4, groups=2, length=300,
                         delta_max=1.0)
    inputs['A'] = -torch.logspace(-2, 3, 32, dtype=torch.float64).view(
        4, 8).t()[torch.randperm(8, generator=torch.Generator().manual_seed(
            2))]
    inputs['delta'] = inputs['delta']**4 * 10
    # the naive closed form exp(S_t) * cumsum(exp(-S_s) * x_s) overflows
    dt_a = torch.einsum('bdl,dn->bdnl', inputs['delta'], inputs['A']).float()
    cum = dt_a.cumsum(-1)
    naive = torch.exp(cum) * torch.cumsum(torch.exp(-cum), dim=-1)
    assert not torch.isfinite(naive).all()
    for dtype, rtol, atol_scale in ((torch.float64, 1e-4, 1e-6),
                                    (torch.float32, 1e-3, 1e-4)):
        cast = {k: v.to(dtype) for k, v in inputs.items()}
        check_parity(run_both(cast, use_bias=False, softplus=False,
                              chunk_size=16),
                     rtol=rtol, atol_scale=atol_scale)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_inputs_computed_in_float32(dtype):
    inputs = make_inputs(dim=8, length=50, dtype=dtype)
    args = {k: v.clone().requires_grad_() for k, v in inputs.items()}
    y = selective_scan_chunked(**args, delta_softplus=True)
    assert y.dtype == dtype and y.shape == (2, 8, 50)
    y.float().sum().backward()
    for k, v in args.items():
        assert v.grad.dtype == dtype, k
    # same result as float32 on the rounded inputs, rounded once at the end
    y32 = selective_scan_ref(
        **{k: v.float() for k, v in inputs.items()}, delta_softplus=True)
    assert_close('y', y.float(), y32.to(dtype).float(), 1e-2, 1e-2)


def test_autocast_does_not_lower_precision():
    inputs = make_inputs(dim=8, length=40, dtype=torch.float32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        results = run_both(inputs)
    assert results[0][0].dtype == torch.float32
    check_parity(results, rtol=1e-3, atol_scale=1e-4)


def test_non_contiguous_inputs():
    inputs = make_inputs(dim=8, length=30)
    strided = dict(
        inputs,
        u=inputs['u'].transpose(1, 2).contiguous().transpose(1, 2),
        B=inputs['B'].permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1))
    assert not strided['u'].is_contiguous()
    y = selective_scan_chunked(**strided, delta_softplus=True)
    y_ref = selective_scan_ref(**inputs, delta_softplus=True)
    assert_close('y', y, y_ref, 1e-4, 1e-6)


@pytest.mark.parametrize('name,value,match', [
    ('B', torch.zeros(2, 3, 4, 37), r'B must be \(batch, G, N, L\) with G '
     r'dividing D.*B\(2, 3, 4, 37\)'),
    ('C', torch.zeros(2, 2, 4, 36), r'C must be .*C\(2, 2, 4, 36\)'),
    ('C', torch.zeros(2, 4, 4, 37), 'same number of groups'),
    ('delta', torch.zeros(2, 8, 36), r'delta must have the shape of u'),
    ('u', torch.zeros(2, 8), r'u must be \(batch, D, L\)'),
    ('u', torch.zeros(2, 8, 0), r'batch, D and L >= 1.*u\(2, 8, 0\)'),
    ('A', torch.zeros(7, 4), r'A must be \(D, N\) with D = 8'),
    ('D', torch.zeros(7), r'D must be \(8,\).*D\(7,\)'),
    ('delta_bias', torch.zeros(8, 1), r'delta_bias must be \(8,\)'),
])
def test_bad_shapes_raise_value_error(name, value, match):
    inputs = make_inputs(dim=8, state=4, groups=2, length=37)
    inputs[name] = value.double()
    for fn in (selective_scan_chunked, selective_scan_fn):
        with pytest.raises(ValueError, match=match):
            fn(**inputs)


def test_bad_chunk_size_and_complex_a():
    inputs = make_inputs()
    with pytest.raises(ValueError, match='chunk_size must be a positive'):
        selective_scan_chunked(**inputs, chunk_size=0)
    with pytest.raises(TypeError, match='A must be real'):
        selective_scan_chunked(
            **dict(inputs, A=inputs['A'].to(torch.complex128)))


def test_dispatch_without_extension_warns_once_and_uses_chunked_path(
        monkeypatch):
    inputs = make_inputs(length=20)
    messages = []
    monkeypatch.setattr(scan_module, 'print_log',
                        lambda msg, **kw: messages.append(msg))
    monkeypatch.setattr(scan_module, '_logged_paths', set())
    monkeypatch.setattr(scan_module, '_warned_no_ext', [])
    monkeypatch.setattr(scan_module, 'load_ext',
                        lambda: (None, 'ImportError: not built'))
    assert scan_module.selective_path(inputs['u']) == 'pytorch-chunked'
    y = selective_scan_fn(**inputs, delta_softplus=True)
    selective_scan_fn(**inputs, delta_softplus=True)
    # one warning saying how to build the kernel, one line naming the path
    assert len(messages) == 2, messages
    assert 'not built' in messages[0] and 'build_ext --inplace' in \
        messages[0]
    assert 'selective scan: pytorch-chunked' in messages[1]
    torch.testing.assert_close(
        y, selective_scan_chunked(**inputs, delta_softplus=True), rtol=0,
        atol=0)


def test_impl_argument_forces_and_checks_path(monkeypatch):
    u = torch.zeros(1, 2, 3)
    assert scan_module.selective_path(u, impl='pytorch') == 'pytorch-chunked'
    assert scan_module.selective_path(u, impl='reference') == 'reference'
    monkeypatch.setattr(scan_module, '_import_cuda_scan',
                        lambda: (None, None))
    with pytest.raises(RuntimeError, match='pip install mamba-ssm'):
        scan_module.selective_path(u, impl='cuda')
    monkeypatch.setattr(scan_module, 'load_ext',
                        lambda: (None, 'ImportError: not built'))
    with pytest.raises(RuntimeError, match='C\\+\\+ extension is not built.*'
                       'build_ext --inplace'):
        scan_module.selective_path(u, impl='cpp')
    monkeypatch.setattr(scan_module, 'triton_available', lambda: False)
    with pytest.raises(RuntimeError, match='pip install triton'):
        scan_module.selective_path(u, impl='triton')
    with pytest.raises(ValueError, match=r"one of \('auto', 'reference', "
                       r"'pytorch', 'cpp', 'triton', 'cuda'\), got 'fast'"):
        scan_module.selective_path(u, impl='fast')


def test_default_impl_is_auto_and_settable(monkeypatch):
    monkeypatch.setattr(scan_module, '_default_impl', ['auto'])
    u = torch.zeros(1, 2, 3)
    # the environment variable is not read by the library
    monkeypatch.setenv(scan_module.ENV_VAR, 'pytorch')
    assert scan_module.default_impl() == 'auto'
    scan_module.set_default_impl('reference')
    assert scan_module.selective_path(u) == 'reference'
    assert scan_module.selective_path(u, impl='pytorch') == 'pytorch-chunked'
    with pytest.raises(ValueError, match='got \'nope\''):
        scan_module.set_default_impl('nope')


def test_cuda_dispatch_order(monkeypatch):
    """auto on CUDA: an installed CUDA kernel, else Triton, else chunked."""
    import types
    u = types.SimpleNamespace(device=torch.device('cuda'), is_cuda=True,
                              dtype=torch.float32)
    monkeypatch.setattr(scan_module, '_import_cuda_scan',
                        lambda: ('cuda (mamba_ssm)', None))
    monkeypatch.setattr(scan_module, 'triton_available', lambda: True)
    assert scan_module.selective_path(u, impl='auto') == 'cuda (mamba_ssm)'
    monkeypatch.setattr(scan_module, '_import_cuda_scan',
                        lambda: (None, None))
    assert scan_module.selective_path(u, impl='auto') == 'triton'
    monkeypatch.setattr(scan_module, 'triton_available', lambda: False)
    assert scan_module.selective_path(u, impl='auto') == 'pytorch-chunked'


def test_cuda_kernel_discovery_is_cached():
    scan_module._import_cuda_scan()
    info = scan_module._import_cuda_scan.cache_info()
    scan_module.selective_path(torch.zeros(1, 2, 3))
    scan_module._import_cuda_scan()
    assert scan_module._import_cuda_scan.cache_info().misses == info.misses


def test_ss2d_passes_its_scan_impl(monkeypatch):
    from densekit.models.layers.ss2d import SS2D
    seen = []
    original = scan_module.selective_scan_fn

    def spy(*args, impl=None, **kwargs):
        seen.append(impl)
        return original(*args, impl=impl, **kwargs)

    import densekit.models.layers.ss2d as ss2d_module
    monkeypatch.setattr(ss2d_module, 'selective_scan_fn', spy)
    torch.manual_seed(0)
    m = SS2D(8, d_state=4, scan_impl='reference').eval()
    x = torch.randn(1, 8, 3, 4)
    with torch.no_grad():
        ref = m(x)
        m.scan_impl = 'pytorch'
        chunked = m(x)
    assert seen == ['reference', 'pytorch']
    torch.testing.assert_close(ref, chunked, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='implementation must be one of'):
        SS2D(8, scan_impl='fast')


def test_float64_cuda_inputs_take_the_chunked_path(monkeypatch):
    # the CUDA kernels have no float64: auto falls back, cuda refuses
    import types
    monkeypatch.setattr(scan_module, '_import_cuda_scan',
                        lambda: ('cuda (mamba_ssm)', None))

    def fake_cuda(dtype):
        return types.SimpleNamespace(device=torch.device('cuda'),
                                     is_cuda=True, dtype=dtype)

    a32 = fake_cuda(torch.float32)
    assert scan_module.selective_path(fake_cuda(torch.float16), a32) == \
        'cuda (mamba_ssm)'
    assert scan_module.selective_path(fake_cuda(torch.float64)) == \
        'pytorch-chunked'
    # a float64 A with float32 u would be rounded by the kernel: same
    assert scan_module.selective_path(
        a32, fake_cuda(torch.float64)) == 'pytorch-chunked'
    with pytest.raises(RuntimeError, match='float64, which the CUDA'):
        scan_module.selective_path(fake_cuda(torch.float64), impl='cuda')


def _cuda_kernel_name():
    if not torch.cuda.is_available():
        return None
    return scan_module._import_cuda_scan()[0]


@pytest.mark.skipif(
    _cuda_kernel_name() is None,
    reason='needs CUDA and mamba_ssm or selective_scan_cuda_core')
def test_cuda_kernel_matches_chunked_path():
    inputs = make_inputs(batch=2, dim=16, state=8, groups=4, length=257,
                         dtype=torch.float32)
    cuda = {k: v.cuda() for k, v in inputs.items()}
    ours = run_both(cuda, chunk_size=16)[0]
    args = {k: v.clone().requires_grad_() for k, v in cuda.items()}
    y = selective_scan_fn(**args, delta_softplus=True)
    y.backward(torch.randn(
        y.shape, generator=torch.Generator().manual_seed(1),
        dtype=torch.float64).float().cuda())
    logging.info('compared with %s', _cuda_kernel_name())
    check_parity(((y, {k: v.grad for k, v in args.items()}), ours),
                 rtol=1e-3, atol_scale=1e-4)

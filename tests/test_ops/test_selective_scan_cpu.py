"""Parity of densekit's C++ CPU selective scan with the sequential reference.

The extension is part of the build (``make test`` builds it), so these tests
fail, rather than skip, when it is missing: CI must exercise the kernel.
"""
import pytest
import torch

import densekit.models.layers.selective_scan as scan_module
from densekit.models.layers import selective_scan_cpp, selective_scan_fn
from densekit.models.layers.selective_scan import selective_scan_ref
from densekit.ops import load_ext
from tests.scan_parity import check_parity, make_inputs, run_both


def test_extension_is_built():
    ext, reason = load_ext()
    assert ext is not None, (
        f'densekit._ext is not importable ({reason}); run `python setup.py '
        'build_ext --inplace`')


@pytest.mark.parametrize('groups', [1, 2, 4])
@pytest.mark.parametrize('use_d,use_bias,softplus', [(True, True, True),
                                                     (False, False, False),
                                                     (True, False, True),
                                                     (False, True, False)])
def test_float64_matches_reference(groups, use_d, use_bias, softplus):
    inputs = make_inputs(groups=groups, length=37,
                         delta_max=None if softplus else 2.0)
    check_parity(run_both(inputs, use_d, use_bias, softplus, chunk_size=5,
                          impl=selective_scan_cpp))


# L below, at and above a chunk, not a multiple of it; N that fills a SIMD
# vector (16), part of one (3, 5), and more than one (24, 40)
@pytest.mark.parametrize('length,chunk_size,state', [
    (1, None, 16), (2, 1, 3), (64, 64, 16), (65, 64, 5), (100, 7, 24),
    (130, None, 40), (300, 16, 16)])
def test_lengths_chunks_and_state_sizes(length, chunk_size, state):
    inputs = make_inputs(batch=3, dim=4, state=state, groups=2,
                         length=length)
    check_parity(run_both(inputs, chunk_size=chunk_size,
                          impl=selective_scan_cpp))


def test_bc_without_group_dim():
    inputs = make_inputs(groups=None, length=20)
    results = run_both(inputs, chunk_size=6, impl=selective_scan_cpp)
    assert results[0][1]['B'].shape == inputs['B'].shape == (2, 4, 20)
    check_parity(results)


def test_float32_matches_reference():
    inputs = make_inputs(batch=2, dim=16, state=16, groups=4, length=300,
                         dtype=torch.float32)
    check_parity(run_both(inputs, impl=selective_scan_cpp), rtol=1e-3,
                 atol_scale=1e-4)


def test_float32_matches_chunked_path_at_mamba_yolo_shape():
    # one SS2D route set of Mamba YOLO-T's stride-32 stage: D = 4 x 192
    inputs = make_inputs(batch=2, dim=768, state=16, groups=4, length=25,
                         dtype=torch.float32)
    ours = run_both(inputs, impl=selective_scan_cpp)[0]
    chunked = run_both(inputs, impl=scan_module.selective_scan_chunked)[0]
    check_parity((ours, chunked), rtol=1e-4, atol_scale=1e-5)


def test_long_sequence_and_large_decays():
    inputs = make_inputs(batch=1, dim=4, state=16, groups=1, length=4096,
                         a_max=1.0)
    inputs['delta_bias'] = inputs['delta_bias'] - 3  # slow decay: long memory
    check_parity(run_both(inputs, impl=selective_scan_cpp))
    # |A| * dt up to 1e4 next to slowly decaying states (the decay clamp)
    big = make_inputs(batch=2, dim=8, state=4, groups=2, length=300,
                      delta_max=1.0)
    big['A'] = -torch.logspace(-2, 3, 32, dtype=torch.float64).view(4, 8).t()
    big['delta'] = big['delta']**4 * 10
    for dtype, rtol, atol_scale in ((torch.float64, 1e-4, 1e-6),
                                    (torch.float32, 1e-3, 1e-4)):
        cast = {k: v.to(dtype) for k, v in big.items()}
        check_parity(run_both(cast, use_bias=False, softplus=False,
                              chunk_size=16, impl=selective_scan_cpp),
                     rtol=rtol, atol_scale=atol_scale)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_inputs_computed_in_float32(dtype):
    inputs = make_inputs(dim=8, length=50, dtype=dtype)
    args = {k: v.clone().requires_grad_() for k, v in inputs.items()}
    y = selective_scan_cpp(**args, delta_softplus=True)
    assert y.dtype == dtype and y.shape == (2, 8, 50)
    y.float().sum().backward()
    for k, v in args.items():
        assert v.grad.dtype == dtype, k
    y32 = selective_scan_ref(
        **{k: v.float() for k, v in inputs.items()}, delta_softplus=True)
    torch.testing.assert_close(y.float(), y32.to(dtype).float(), rtol=1e-2,
                               atol=1e-2)


def test_non_contiguous_inputs_and_threads():
    inputs = make_inputs(dim=8, length=30)
    strided = dict(
        inputs,
        u=inputs['u'].transpose(1, 2).contiguous().transpose(1, 2),
        B=inputs['B'].permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1))
    assert not strided['u'].is_contiguous()
    y_ref = selective_scan_ref(**inputs, delta_softplus=True)
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 3):  # the backward's task split depends on threads
            torch.set_num_threads(n)
            check_parity(run_both(strided, impl=selective_scan_cpp))
            torch.testing.assert_close(
                selective_scan_cpp(**strided, delta_softplus=True), y_ref,
                rtol=1e-10, atol=1e-12)
    finally:
        torch.set_num_threads(threads)


def test_no_grad_forward_keeps_no_states():
    inputs = make_inputs(dim=8, length=30)
    with torch.no_grad():
        y = selective_scan_cpp(**inputs, delta_softplus=True)
    torch.testing.assert_close(
        y, selective_scan_ref(**inputs, delta_softplus=True), rtol=1e-10,
        atol=1e-12)


def test_dispatch_prefers_kernel_on_cpu(monkeypatch):
    inputs = make_inputs(length=20)
    messages = []
    monkeypatch.setattr(scan_module, 'print_log',
                        lambda msg, **kw: messages.append(msg))
    monkeypatch.setattr(scan_module, '_logged_paths', set())
    assert scan_module.selective_path(inputs['u']) == 'cpp-cpu'
    y = selective_scan_fn(**inputs, delta_softplus=True)
    assert len(messages) == 1 and messages[0].startswith(
        'selective scan: cpp-cpu (choose with SS2D(scan_impl=...)')
    torch.testing.assert_close(
        y, selective_scan_cpp(**inputs, delta_softplus=True), rtol=0, atol=0)
    assert scan_module.selective_path(inputs['u'], impl='cpp') == 'cpp-cpu'
    assert scan_module.selective_path(inputs['u'], impl='pytorch') == \
        'pytorch-chunked'


def test_traced_forward_uses_chunked_path(monkeypatch):
    inputs = make_inputs(dim=8, length=16, dtype=torch.float32)

    def fn(u, delta):
        return selective_scan_fn(u, delta, inputs['A'], inputs['B'],
                                 inputs['C'], delta_softplus=True)

    traced = torch.jit.trace(fn, (inputs['u'], inputs['delta']))
    torch.testing.assert_close(traced(inputs['u'], inputs['delta']),
                               fn(inputs['u'], inputs['delta']), rtol=1e-5,
                               atol=1e-5)


def test_bad_inputs_name_the_argument():
    inputs = make_inputs(dim=8, state=4, groups=2, length=37)
    with pytest.raises(ValueError, match=r'B must be \(batch, G, N, L\)'):
        selective_scan_cpp(**dict(inputs, B=torch.zeros(2, 3, 4, 37).double()))
    with pytest.raises(ValueError, match='chunk_size must be a positive'):
        selective_scan_cpp(**inputs, chunk_size=0)


@pytest.mark.parametrize('impl', [selective_scan_cpp,
                                  scan_module.selective_scan_chunked])
def test_official_ss2d_casts_fp16_inputs_with_float32_parameters(impl):
    # the official SS2D at inference: u, delta, B, C in fp16; A, D and
    # delta_bias in float32. Computed with a float32 state, returned in fp16
    inputs = make_inputs(dim=8, length=50)
    mixed = {k: v.to(torch.float16 if k in ('u', 'delta', 'B', 'C') else
                      torch.float32) for k, v in inputs.items()}
    args = {k: v.clone().requires_grad_() for k, v in mixed.items()}
    y = impl(**args, delta_softplus=True)
    assert y.dtype == torch.float16
    y.float().sum().backward()
    for k, v in args.items():
        assert v.grad.dtype == mixed[k].dtype, k
    y32 = selective_scan_ref(**{k: v.float() for k, v in mixed.items()},
                             delta_softplus=True)
    diff = (y.float() - y32).abs().max().item()
    print(f'{impl.__name__} fp16/float32 inputs vs float32 reference: max '
          f'abs diff {diff:.3e}')
    torch.testing.assert_close(y.float(), y32.half().float(), rtol=2e-3,
                               atol=2e-3)


def test_float64_is_never_lowered(monkeypatch):
    inputs = make_inputs(dim=8, length=40)
    seen = []
    ext = load_ext()[0]

    class Spy:
        def selective_scan_fwd(self, u, dt, A, B, C, *args):
            seen.append({t.dtype for t in (u, dt, A, B, C)})
            return ext.selective_scan_fwd(u, dt, A, B, C, *args)

    monkeypatch.setattr(scan_module, 'load_ext', lambda: (Spy(), None))
    # float64 u with float32 A, D, delta_bias: float64 compute, upcasting
    # the float32 parameters (the reference sees the same upcast values)
    low = {k: v.float() if k in ('A', 'D', 'delta_bias') else v
           for k, v in inputs.items()}
    y = selective_scan_fn(**low, delta_softplus=True)
    y_ref = selective_scan_ref(
        **{k: v.double() for k, v in low.items()}, delta_softplus=True)
    diff = (y - y_ref).abs().max().item()
    print(f'float64 u + float32 A/D/bias: max abs diff {diff:.3e}')
    assert y.dtype == torch.float64 and seen[-1] == {torch.float64}
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    # float32 u with a float64 A: computed in float64, returned in float32
    wide_a = {k: v.float() if k != 'A' else v for k, v in inputs.items()}
    y = selective_scan_fn(**wide_a, delta_softplus=True)
    assert y.dtype == torch.float32 and seen[-1] == {torch.float64}
    y_ref = selective_scan_ref(**{k: v.double() for k, v in wide_a.items()},
                               delta_softplus=True)
    torch.testing.assert_close(y, y_ref.float(), rtol=1e-6, atol=1e-6)

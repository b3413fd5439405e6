"""Inputs and the parity check every selective-scan implementation is tested
with against the sequential reference
(:func:`densekit.models.layers.selective_scan.selective_scan_ref`): the
chunked path (tests/test_models/test_layers/test_selective_scan.py), the C++
kernel (tests/test_ops/test_selective_scan_cpu.py) and the Triton kernel
(tests/test_ops/test_selective_scan_triton.py).
"""
import torch

from densekit.models.layers import selective_scan_chunked
from densekit.models.layers.selective_scan import selective_scan_ref


def make_inputs(batch=2, dim=8, state=4, groups=2, length=37,
                dtype=torch.float64, a_max=4.0, delta_max=None, seed=0):
    """Random inputs as a dict; A in [-a_max, 0), delta raw (or in
    [0, delta_max) when given, for use without softplus)."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    def rand(*shape):
        return torch.rand(*shape, generator=gen, dtype=torch.float64)

    bc_shape = ((batch, state, length) if groups is None else
                (batch, groups, state, length))
    inputs = dict(
        u=randn(batch, dim, length),
        delta=(randn(batch, dim, length) - 1 if delta_max is None else
               rand(batch, dim, length) * delta_max),
        A=-(rand(dim, state) * 0.99 + 0.01) * a_max,
        B=randn(*bc_shape),
        C=randn(*bc_shape),
        D=randn(dim),
        delta_bias=randn(dim) * 0.5)
    return {k: v.to(dtype) for k, v in inputs.items()}


def run_both(inputs, use_d=True, use_bias=True, softplus=True,
             chunk_size=None, backward=True, impl=selective_scan_chunked):
    """Outputs and gradients of ``impl`` (the chunked scan by default) and
    the reference on cloned inputs."""
    if not use_d:
        inputs = dict(inputs, D=None)
    if not use_bias:
        inputs = dict(inputs, delta_bias=None)
    results = []
    for fn in (impl, selective_scan_ref):
        args = {
            k: None if v is None else v.detach().clone().requires_grad_(
                backward)
            for k, v in inputs.items()
        }
        kwargs = dict(chunk_size=chunk_size) if fn is not \
            selective_scan_ref else {}
        y = fn(**args, delta_softplus=softplus, **kwargs)
        grads = {}
        if backward:
            grad_y = torch.randn(
                y.shape, generator=torch.Generator().manual_seed(1),
                dtype=torch.float64).to(y.dtype)
            y.backward(grad_y)
            grads = {k: v.grad for k, v in args.items() if v is not None}
        results.append((y, grads))
    return results


def assert_close(name, ours, ref, rtol, atol_scale):
    """rtol plus an atol relative to the reference's largest magnitude."""
    atol = atol_scale * max(ref.abs().max().item(), 1e-30)
    diff = (ours.double() - ref.double()).abs().max().item()
    print(f'{name}: max abs diff {diff:.3e} (atol {atol:.1e})')
    assert torch.isfinite(ours).all(), f'{name} has non-finite values'
    torch.testing.assert_close(
        ours, ref, rtol=rtol, atol=atol, msg=lambda m: f'{name}: {m}')


def check_parity(results, rtol=1e-4, atol_scale=1e-6):
    (y, grads), (y_ref, grads_ref) = results
    assert y.shape == y_ref.shape and y.dtype == y_ref.dtype
    assert_close('y', y, y_ref, rtol, atol_scale)
    assert grads.keys() == grads_ref.keys()
    for k in grads:
        assert_close(f'grad {k}', grads[k], grads_ref[k], rtol, atol_scale)

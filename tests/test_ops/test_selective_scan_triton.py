"""Parity of the Triton selective scan with the sequential reference.

Without a GPU the kernels run on CPU tensors in Triton's interpreter, which
must be switched on (``TRITON_INTERPRET=1``) before ``triton`` is first
imported: triton builds its own library (``tl.zeros``, ``tl.sum``) in one
mode per process. ``tests/conftest.py`` sets it for the whole run on a
machine without CUDA, so there the parity cases (``needs_interpreter``)
run; where a CUDA GPU exists, ``test_cuda_matches_reference`` runs the
compiled kernels instead (``TRITON_INTERPRET=1 pytest <this file>`` runs
both).
"""
import os
import subprocess
import sys

import pytest
import torch

import densekit.ops.selective_scan_triton as sst
from densekit.ops.selective_scan_triton import (selective_scan_triton,
                                                triton_available)
from tests.scan_parity import check_parity, make_inputs, run_both

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
needs_triton = pytest.mark.skipif(
    not triton_available(),
    reason='triton is not installed (requirements/tests.txt lists it)')
# the interpreter is usable only when it was on as triton got imported
INTERPRETED = triton_available() and bool(sst._library_interpreted())
needs_interpreter = pytest.mark.skipif(
    not INTERPRETED,
    reason='needs TRITON_INTERPRET=1 before triton is imported (set by '
    'tests/conftest.py without CUDA)')


def triton_scan(*args, chunk_size=None, **kwargs):
    """``run_both``'s ``impl``; the chunk is ``sst.CHUNK`` (monkeypatched)."""
    return selective_scan_triton(*args, **kwargs)


@needs_interpreter
@pytest.mark.parametrize('groups', [2, None])  # None: B, C as (b, N, L)
@pytest.mark.parametrize('use_d,use_bias,softplus', [(True, True, True),
                                                     (False, False, False),
                                                     (True, False, True),
                                                     (False, True, False)])
def test_float64_matches_reference(monkeypatch, groups, use_d,
                                   use_bias, softplus):
    # 3 chunks of 8 steps, the last one partial; batch 2
    monkeypatch.setattr(sst, 'CHUNK', 8)
    inputs = make_inputs(groups=groups, length=21,
                         delta_max=None if softplus else 2.0)
    results = run_both(inputs, use_d, use_bias, softplus, impl=triton_scan)
    if groups is None:
        assert results[0][1]['B'].shape == inputs['B'].shape == (2, 4, 21)
    check_parity(results, rtol=1e-10, atol_scale=1e-12)


# L of one step, below a chunk (64), one chunk, not a multiple of it; N a
# power of two (16), below and above one (3, 5, 24)
@needs_interpreter
@pytest.mark.parametrize('length,state', [(1, 16), (50, 5), (64, 16),
                                          (100, 24)])
def test_float32_lengths_and_state_sizes(length, state):
    inputs = make_inputs(batch=1, dim=4, state=state, groups=1,
                         length=length, dtype=torch.float32)
    check_parity(run_both(inputs, impl=triton_scan), rtol=1e-4,
                 atol_scale=1e-5)


@needs_interpreter
def test_float32_small_steps(monkeypatch):
    # Mamba's steps, softplus(delta + bias) in [1e-3, 1e-1]: log(1 + e)
    # would lose ~1e-4 of dt in float32, log1p does not
    monkeypatch.setattr(sst, 'CHUNK', 16)
    inputs = make_inputs(batch=1, dim=4, state=16, groups=1, length=40,
                         dtype=torch.float32)
    dt = torch.logspace(-3, -1, 4)
    inputs['delta_bias'] = torch.log(torch.expm1(dt))
    inputs['delta'] = inputs['delta'] * 0.1
    check_parity(run_both(inputs, impl=triton_scan), rtol=1e-5,
                 atol_scale=1e-6)


@needs_interpreter
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_half_precision_inputs(dtype):
    # float32 state and sums in both; y and the gradients are rounded once
    inputs = make_inputs(batch=1, dim=8, state=4, groups=2, length=70,
                         dtype=dtype)
    results = run_both(inputs, impl=triton_scan)
    for k, grad in results[0][1].items():
        assert grad.dtype == dtype, k
    check_parity(results, rtol=1e-2, atol_scale=1e-3)


@needs_interpreter
@pytest.mark.parametrize('groups', [1, 2])
def test_several_channel_blocks_per_group(monkeypatch, groups):
    # blocks of 4 channels: 3 (G=1) or 2 (G=2, the second half masked) per
    # group, so dB and dC sum partials of several programs
    monkeypatch.setattr(sst, 'BLOCK_D_MAX', 4)
    monkeypatch.setattr(sst, 'CHUNK', 8)
    inputs = make_inputs(batch=1, dim=12, state=3, groups=groups, length=21)
    cfg = sst._launch_config(12, groups, 3)
    assert cfg['blocks_per_group'] == (3 if groups == 1 else 2)
    check_parity(run_both(inputs, impl=triton_scan), rtol=1e-10,
                 atol_scale=1e-12)


@needs_interpreter
def test_forward_without_grad_matches(monkeypatch):
    # no input needs a gradient: no chunk states are saved
    monkeypatch.setattr(sst, 'CHUNK', 8)
    inputs = make_inputs(batch=1, length=12)
    with torch.no_grad():
        y = selective_scan_triton(**inputs, delta_softplus=True)
    (y_grad, _), _ = run_both(inputs, impl=triton_scan)
    torch.testing.assert_close(y, y_grad.detach(), rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available() or INTERPRETED,
                    reason='needs CUDA and compiled kernels')
@needs_triton
@pytest.mark.parametrize('dtype,groups', [(torch.float32, 1),
                                          (torch.float32, None),
                                          (torch.bfloat16, 4)])
def test_cuda_matches_reference(monkeypatch, dtype, groups):
    inputs = make_inputs(batch=2, dim=64, state=16, groups=groups,
                         length=300, dtype=dtype)
    inputs = {k: v.cuda() for k, v in inputs.items()}
    tol = (dict(rtol=1e-3, atol_scale=1e-4) if dtype == torch.float32 else
           dict(rtol=1e-2, atol_scale=1e-3))
    check_parity(run_both(inputs, impl=triton_scan), **tol)


@needs_triton
def test_cpu_tensors_need_the_interpreter(monkeypatch):
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    with pytest.raises(RuntimeError, match='TRITON_INTERPRET=1'):
        selective_scan_triton(**make_inputs(length=5))


@needs_triton
def test_interpreter_switched_on_too_late(monkeypatch):
    # this process imported triton in the other mode
    monkeypatch.setenv('TRITON_INTERPRET', '0' if INTERPRETED else '1')
    with pytest.raises(RuntimeError, match='first imported'):
        sst._kernels(not INTERPRETED)


def test_missing_triton_names_the_fix(monkeypatch):
    monkeypatch.setattr(sst, 'triton_available', lambda: False)
    with pytest.raises(RuntimeError, match='pip install triton'):
        selective_scan_triton(**make_inputs(length=5))


def test_bad_shapes_raise_value_error():
    inputs = make_inputs(length=5)
    with pytest.raises(ValueError, match='A must be'):
        selective_scan_triton(**dict(inputs, A=inputs['A'][:, :2].t()))
    with pytest.raises(ValueError, match='one device'):
        selective_scan_triton(**dict(inputs, D=inputs['D'].to('meta')))


def test_import_does_not_import_triton():
    code = ('import sys; import densekit, densekit.ops.selective_scan_triton'
            "; assert 'triton' not in sys.modules, 'triton was imported'")
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


@needs_interpreter
def test_dispatch_runs_triton_when_asked():
    from densekit.models.layers.selective_scan import (available_impls,
                                                       selective_path,
                                                       selective_scan_fn,
                                                       selective_scan_ref)
    inputs = make_inputs(batch=1, dim=4, state=4, groups=2, length=30,
                         dtype=torch.float32)
    assert available_impls('cpu')['triton'] == 'yes'
    assert selective_path(inputs['u'], impl='triton') == 'triton'
    y = selective_scan_fn(**inputs, delta_softplus=True, impl='triton')
    ref = selective_scan_ref(**inputs, delta_softplus=True)
    print(f'selective_scan_fn(impl="triton") vs reference: max abs diff '
          f'{float((y - ref).abs().max()):.2e}')
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-5)
    # float64 has no Triton kernel: refused by name, not downcast
    with pytest.raises(RuntimeError, match="impl='triton' but the inputs "
                       'are float64'):
        selective_path(inputs['u'].double(), impl='triton')

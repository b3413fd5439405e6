"""selective_scan_export (the ONNX formulations) against the sequential
reference, eager and exported (ONNX Runtime, OpenVINO)."""
import numpy as np
import onnx
import pytest
import torch

from densekit.models.layers import SS2D
from densekit.models.layers.selective_scan import selective_scan_ref
from densekit.models.layers.selective_scan_export import (
    EXPORT_METHODS, export_chunk_size, selective_scan_export)


def make_inputs(batch=2, dim=8, state=4, length=37, groups=2,
                dtype=torch.float64, seed=0, three_dim=False):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, dim, length, generator=g, dtype=dtype)
    delta = torch.randn(batch, dim, length, generator=g, dtype=dtype)
    # |A| * dt up to ~50 per step: decays far below float32's range
    A = -torch.rand(dim, state, generator=g, dtype=dtype) * 20
    shape = (batch, state, length) if three_dim else (batch, groups, state,
                                                      length)
    B = torch.randn(*shape, generator=g, dtype=dtype)
    C = torch.randn(*shape, generator=g, dtype=dtype)
    D = torch.randn(dim, generator=g, dtype=dtype)
    bias = torch.randn(dim, generator=g, dtype=dtype)
    return u, delta, A, B, C, D, bias


@pytest.mark.parametrize('method', EXPORT_METHODS)
@pytest.mark.parametrize('chunk_size', [None, 1, 5, 64])
@pytest.mark.parametrize('softplus', [True, False])
def test_matches_reference_float64(method, chunk_size, softplus):
    u, delta, A, B, C, D, bias = make_inputs()
    if not softplus:
        delta = delta.abs()  # positive steps
    ref = selective_scan_ref(u, delta, A, B, C, D, bias, softplus)
    got = selective_scan_export(u, delta, A, B, C, D, bias, softplus,
                                method=method, chunk_size=chunk_size)
    diff = float((got - ref).abs().max() / ref.abs().max())
    print(f'{method} chunk {chunk_size} softplus {softplus}: max rel diff '
          f'{diff:.1e}')
    assert got.dtype == torch.float64 and diff < 1e-12


@pytest.mark.parametrize('method', EXPORT_METHODS)
def test_variants_float32(method):
    """3-dim B/C, no D and no bias, L shorter than a chunk, float32."""
    u, delta, A, B, C, _, _ = make_inputs(length=5, three_dim=True,
                                          dtype=torch.float32)
    ref = selective_scan_ref(u, delta, A, B, C, None, None, True)
    got = selective_scan_export(u, delta, A, B, C, None, None, True,
                                method=method)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_bad_arguments():
    args = make_inputs()
    with pytest.raises(ValueError, match='method must be one of'):
        selective_scan_export(*args, method='scan')
    with pytest.raises(ValueError, match='chunk_size must be'):
        selective_scan_export(*args, chunk_size=0)


def test_chunk_size_bounds():
    assert export_chunk_size(1, 256, 16, 25600) == 400
    assert export_chunk_size(1, 2048, 16, 400) == 50
    assert export_chunk_size(1, 8, 4, 5) == 5  # never beyond L


@pytest.mark.parametrize('method', EXPORT_METHODS)
def test_exported_scan_in_runtimes(method, tmp_path):
    from densekit.deploy.exporter import onnx_export
    from densekit.deploy.runtime import RuntimeSession

    class Scan(torch.nn.Module):

        def forward(self, u, delta, A, B, C, D, bias):
            return selective_scan_export(u, delta, A, B, C, D, bias, True,
                                         method=method)

    names = ['u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias']
    inputs = make_inputs(batch=1, dim=16, state=4, length=50, groups=4,
                         dtype=torch.float32)
    path = str(tmp_path / 'scan.onnx')
    onnx_export(Scan(), inputs, path, input_names=names, output_names=['y'])
    ref = selective_scan_ref(*inputs, True).numpy()
    for backend in ('onnxruntime', 'openvino'):
        out = RuntimeSession(path, backend, 1)(dict(zip(names, inputs)))['y']
        diff = float(np.abs(out - ref).max() / np.abs(ref).max())
        print(f'{method} in {backend}: max rel diff {diff:.1e}')
        assert diff < 1e-5


def test_ss2d_exports_with_standard_ops(tmp_path):
    """Under torch.onnx.export selective_scan_fn takes the export path
    whatever scan_impl says (the C++ kernel cannot be traced)."""
    from densekit.deploy.exporter import onnx_export
    from densekit.deploy.runtime import RuntimeSession
    torch.manual_seed(0)
    module = SS2D(8, d_state=4, scan_impl='cpp').eval()
    x = torch.randn(1, 8, 6, 5)
    path = str(tmp_path / 'ss2d.onnx')
    onnx_export(module, (x, ), path, input_names=['x'], output_names=['y'])
    domains = {n.domain for n in onnx.load(path).graph.node}
    assert domains <= {'', 'ai.onnx'}
    with torch.no_grad():
        ref = module(x).numpy()
    out = RuntimeSession(path, 'onnxruntime', 1)(x)['y']
    assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max()

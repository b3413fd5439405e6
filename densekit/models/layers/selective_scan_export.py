"""The selective scan written for ONNX export: standard ONNX ops only.

:func:`densekit.models.layers.selective_scan.selective_scan_fn` takes
:func:`selective_scan_export` while ``torch.onnx.export`` traces a model
(the C++, CUDA and Triton kernels cannot be traced, and the chunked
PyTorch path writes into preallocated buffers with ``out=``, which the
TorchScript exporter cannot translate). Same signature and contract as
:func:`~.selective_scan.selective_scan_ref`::

    u: r(B D L)  delta: r(B D L)  A: r(D N)  B, C: r(B G N L) or r(B N L)
    D: r(D) or None  delta_bias: r(D) or None  ->  y: r(B D L)

Three formulations (``method``), all exact (the only exponentials are of
non-positive decays ``dt * A``, as in the chunked path) and all measured by
``tools/analysis/benchmark_scan_export.py`` in ONNX Runtime and OpenVINO at
Mamba-YOLO-T's ten SS2D calls at 640x640 (batch 1, 2 threads; sum over the
calls: ``'unrolled'`` 2.2 s in ONNX Runtime, 1.16 s in OpenVINO;
``'loop-chunked'`` 3.0 s / 1.6 s; ``'loop'`` did not finish the first call
in 20 minutes, and at 160x160 took 1.9x / 52x ``'unrolled'``'s time; the
C++ kernel: 0.28 s):

``'unrolled'`` (the default; the fastest measured)
    The chunked two-level scan of the chunked path, unrolled per chunk
    offset: time is cut into ``K`` chunks of ``T`` steps; (1) ``T`` steps of
    the recurrence from a zero state run over all chunks at once (each ONNX
    node works on a ``(B, K, D, N)`` block), giving every chunk's end
    state; (2) ``K`` small steps carry the true state across chunk
    boundaries with the chunk decay ``exp(A * sum(dt))``; (3) the ``T``
    steps rerun from the carried-in states and contract with ``C``. The
    decays and inputs of a step are recomputed in (3) rather than kept, so
    no ``(B, L, D, N)`` tensor is ever materialised. About ``11 T + 2 K``
    nodes per call.
``'loop'``
    One ONNX ``Loop`` over the ``L`` time steps (a scripted loop in the
    traced graph), state ``(B, D, N)``: a small graph, but one body
    execution per step.
``'loop-chunked'``
    One ONNX ``Loop`` over the ``T`` offsets of the two-level scan (steps
    (1) and (3) as loop bodies over ``(B, K, D, N)`` blocks, step (2) as a
    second loop over the chunks): a small graph with few, large steps.
"""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

EXPORT_METHODS = ('unrolled', 'loop', 'loop-chunked')
DEFAULT_EXPORT_METHOD = 'unrolled'
# Target elements of one (B, K, D, N) block of the unrolled graph: each ONNX
# node then touches ~1 MiB (fits the L2 cache); chunks are at least
# MIN_CHUNK steps so the node count stays bounded for short sequences.
BLOCK_ELEMENTS = 1 << 18
MIN_CHUNK = 8
# as the chunked path: chunk decays are clamped at exp(-60) (no denormals)
LOG_DECAY_MIN = -60.0


def export_chunk_size(batch: int, dim: int, state: int, length: int) -> int:
    """Steps per chunk ``T`` of the unrolled graph: about
    ``BLOCK_ELEMENTS / (batch * dim * state)`` chunks per block, at least
    ``MIN_CHUNK`` steps (and at most ``length``)."""
    chunks = max(1, BLOCK_ELEMENTS // max(1, batch * dim * state))
    return max(1, min(length, max(MIN_CHUNK, -(-length // chunks))))


def _prepare(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
             delta_bias: Optional[Tensor],
             delta_softplus: bool) -> Tuple[Tensor, ...]:
    """Compute dtype (float64 when any input is, else float32), final step
    size ``dt`` and 4-dim ``B``/``C``."""
    wide = any(t is not None and t.dtype == torch.float64
               for t in (u, delta, A, B, C, delta_bias))
    dtype = torch.float64 if wide else torch.float32
    dt = delta.to(dtype)
    if delta_bias is not None:
        dt = dt + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    B = B.unsqueeze(1) if B.dim() == 3 else B
    C = C.unsqueeze(1) if C.dim() == 3 else C
    return u.to(dtype), dt, A.to(dtype), B.to(dtype), C.to(dtype)


def _finish(y: Tensor, x: Tensor, D: Optional[Tensor],
            dtype: torch.dtype) -> Tensor:
    if D is not None:
        y = y + D.to(y.dtype)[:, None] * x
    return y.to(dtype)


def _sizes(x: Tensor, B: Tensor) -> Tuple[int, int, int, int, int]:
    """``(batch, D, L, G, N)`` as Python ints. While tracing, D, L, G and
    N become constants of the graph (only the batch is dynamic in an
    export); the batch is used for block sizes only, never in a shape."""
    return tuple(int(s) for s in (x.shape[0], x.shape[1], x.shape[2],
                                  B.shape[1], B.shape[2]))


def _pad_time(x: Tensor, length: int) -> Tensor:
    """Zero-pad the last (time) dim to ``length`` by concatenation (the
    ``Pad`` node ``F.pad`` exports to is misread by OpenVINO's ONNX
    frontend, which then crops instead)."""
    pad = length - x.shape[-1]
    if pad == 0:
        return x
    return torch.cat([x, x.new_zeros(x.shape[:-1] + (pad, ))], -1)


def _time_major_blocks(x: Tensor, chunk: int, num_chunks: int,
                       groups: int) -> List[Tensor]:
    """(b, D, L) -> T tensors (b, K, G, D / G): chunk offset t of every
    chunk (zero-padded at the end)."""
    dim = int(x.shape[1])
    x = _pad_time(x, num_chunks * chunk)
    x = x.reshape(-1, groups, dim // groups, num_chunks, chunk)
    return list(x.permute(4, 0, 3, 1, 2).unbind(0))


def _time_major_bc(x: Tensor, chunk: int, num_chunks: int) -> List[Tensor]:
    """(b, G, N, L) -> T tensors (N, b, K, G, 1): states leading."""
    groups, state = int(x.shape[1]), int(x.shape[2])
    x = _pad_time(x, num_chunks * chunk)
    x = x.reshape(-1, groups, state, num_chunks, chunk)
    return list(x.permute(4, 2, 0, 3, 1).unsqueeze(-1).unbind(0))


def _state_major_a(A: Tensor, groups: int) -> Tensor:
    """(D, N) -> (N, 1, 1, G, D / G)."""
    dim, state = int(A.shape[0]), int(A.shape[1])
    return A.t().reshape(state, 1, 1, groups, dim // groups)


def _scan_unrolled(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor,
                   chunk: Optional[int]) -> Tensor:
    """``y = sum_n C h`` by the unrolled two-level scan (module docstring).

    States are laid out ``(N, b, K, G, D / G)``, N leading: every
    broadcast of a graph node then repeats a contiguous span (a per-channel
    step size over the N states, a per-group ``B_n`` over the group's
    channels), which ONNX Runtime's and OpenVINO's elementwise kernels run
    at full speed; with N last, the (b, K, D, 1) x (D, N) broadcasts took
    most of the time.
    """
    b, dim, length, groups, state = _sizes(x, B)
    T = chunk or export_chunk_size(b, dim, state, length)
    K = -(-length // T)
    A_s = _state_major_a(A, groups)  # (N, 1, 1, G, Dg)
    dts = _time_major_blocks(dt, T, K, groups)  # T x (b, K, G, Dg)
    dtus = _time_major_blocks(dt * x, T, K, groups)
    bs = _time_major_bc(B, T, K)  # T x (N, b, K, G, 1)
    cs = _time_major_bc(C, T, K)
    # (1) every chunk's end state from a zero start, all chunks at once
    h = dtus[0] * bs[0]  # (N, b, K, G, Dg)
    for t in range(1, T):
        h = torch.exp(dts[t] * A_s) * h + dtus[t] * bs[t]
    # (2) carry the true state across chunks: decay exp(A * sum(dt))
    total = dts[0]
    for t in range(1, T):
        total = total + dts[t]
    decay = torch.exp(torch.clamp(total * A_s, min=LOG_DECAY_MIN))
    ends, decays = h.unbind(2), decay.unbind(2)  # K x (N, b, G, Dg)
    carries = [torch.zeros_like(ends[0])]
    for k in range(1, K):
        carries.append(ends[k - 1] + decays[k - 1] * carries[-1])
    h = torch.stack(carries, 2)  # (N, b, K, G, Dg)
    # (3) rerun every chunk from its carried-in state, contracting with C
    ys = []
    for t in range(T):
        h = torch.exp(dts[t] * A_s) * h + dtus[t] * bs[t]
        ys.append((h * cs[t]).sum(0))  # (b, K, G, Dg)
    y = torch.stack(ys, -1)  # (b, K, G, Dg, T)
    y = y.permute(0, 2, 3, 1, 4).reshape(-1, dim, K * T)
    return y[:, :, :length]


@torch.jit.script
def _loop_over_time(a_log: Tensor, bx: Tensor, c: Tensor) -> Tensor:
    """Sequential scan as one loop (an ONNX ``Loop`` when exported).

    a_log, bx: (L, b, D, N) ``dt * A`` and ``dt * u * B``; c: (L, b, N', N)
    ``C`` broadcastable to the state; returns (L, b, D).
    """
    h = torch.zeros_like(bx[0])
    ys: List[Tensor] = []
    for t in range(a_log.shape[0]):
        h = torch.exp(a_log[t]) * h + bx[t]
        ys.append((h * c[t]).sum(-1))
    return torch.stack(ys, 0)


def _scan_loop(x: Tensor, dt: Tensor, A: Tensor, B: Tensor,
               C: Tensor) -> Tensor:
    _, dim, length, groups, state = _sizes(x, B)
    dg = dim // groups
    # time-major (L, b, G, Dg, N); decays and inputs for every step at once
    dt_t = dt.permute(2, 0, 1).reshape(length, -1, groups, dg, 1)
    dtu_t = (dt * x).permute(2, 0, 1).reshape(length, -1, groups, dg, 1)
    b_t = B.permute(3, 0, 1, 2).unsqueeze(-2)  # (L, b, G, 1, N)
    c_t = C.permute(3, 0, 1, 2).unsqueeze(-2)
    a_log = (dt_t * A.reshape(groups, dg, state)).reshape(length, -1, dim,
                                                          state)
    bx = (dtu_t * b_t).reshape(length, -1, dim, state)
    c_full = c_t.expand(-1, -1, -1, dg, -1).reshape(length, -1, dim, state)
    y = _loop_over_time(a_log, bx, c_full)  # (L, b, D)
    return y.permute(1, 2, 0)


@torch.jit.script
def _loop_chunk_offsets(dts: Tensor, dtus: Tensor, bs: Tensor, cs: Tensor,
                        A_s: Tensor, log_decay_min: float) -> Tensor:
    """The two-level scan with loops: dts, dtus (T, b, K, G, Dg); bs, cs
    (T, N, b, K, G, 1); A_s (N, 1, 1, G, Dg). Returns (T, b, K, G, Dg)."""
    num_steps = dts.shape[0]
    h = dtus[0] * bs[0]
    for t in range(1, num_steps):
        h = torch.exp(dts[t] * A_s) * h + dtus[t] * bs[t]
    decay = torch.exp(torch.clamp(dts.sum(0) * A_s, min=log_decay_min))
    state = torch.zeros_like(h[:, :, 0])
    carries: List[Tensor] = []
    for k in range(h.shape[2]):
        carries.append(state)
        state = h[:, :, k] + decay[:, :, k] * state
    h = torch.stack(carries, 2)
    ys: List[Tensor] = []
    for t in range(num_steps):
        h = torch.exp(dts[t] * A_s) * h + dtus[t] * bs[t]
        ys.append((h * cs[t]).sum(0))
    return torch.stack(ys, 0)


def _scan_loop_chunked(x: Tensor, dt: Tensor, A: Tensor, B: Tensor,
                       C: Tensor, chunk: Optional[int]) -> Tensor:
    _, dim, length, groups, state = _sizes(x, B)
    T = chunk or max(1, round(math.sqrt(length)))
    K = -(-length // T)
    y = _loop_chunk_offsets(
        torch.stack(_time_major_blocks(dt, T, K, groups)),
        torch.stack(_time_major_blocks(dt * x, T, K, groups)),
        torch.stack(_time_major_bc(B, T, K)),
        torch.stack(_time_major_bc(C, T, K)),
        _state_major_a(A, groups), LOG_DECAY_MIN)  # (T, b, K, G, Dg)
    y = y.permute(1, 3, 4, 2, 0).reshape(-1, dim, K * T)
    return y[:, :, :length]


def selective_scan_export(u: Tensor,
                          delta: Tensor,
                          A: Tensor,
                          B: Tensor,
                          C: Tensor,
                          D: Optional[Tensor] = None,
                          delta_bias: Optional[Tensor] = None,
                          delta_softplus: bool = False,
                          method: str = DEFAULT_EXPORT_METHOD,
                          chunk_size: Optional[int] = None) -> Tensor:
    """The selective scan in ONNX-exportable tensor ops (module docstring).

    Args:
        u, delta, A, B, C, D, delta_bias, delta_softplus: As
            :func:`~.selective_scan.selective_scan_fn`.
        method (str): One of :data:`EXPORT_METHODS`. Defaults to
            ``'unrolled'``.
        chunk_size (int, optional): Steps per chunk ``T`` of the chunked
            methods; None: :func:`export_chunk_size` (``'unrolled'``) or
            ``sqrt(L)`` (``'loop-chunked'``). Ignored by ``'loop'``.

    Returns:
        Tensor: r(B D L) in ``u``'s dtype, computed in float32 (float64 when
        any input is float64).
    """
    if method not in EXPORT_METHODS:
        raise ValueError(f'selective_scan_export: method must be one of '
                         f'{EXPORT_METHODS}, got {method!r}')
    if chunk_size is not None and (not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise ValueError('chunk_size must be a positive int or None, but '
                         f'got chunk_size={chunk_size!r}')
    x, dt, A_c, B_c, C_c = _prepare(u, delta, A, B, C, delta_bias,
                                    delta_softplus)
    if method == 'unrolled':
        y = _scan_unrolled(x, dt, A_c, B_c, C_c, chunk_size)
    elif method == 'loop':
        y = _scan_loop(x, dt, A_c, B_c, C_c)
    else:
        y = _scan_loop_chunked(x, dt, A_c, B_c, C_c, chunk_size)
    return _finish(y, x, D, u.dtype)

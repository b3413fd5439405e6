"""Mamba's S6 selective scan: C++ CPU kernel, chunked pure-PyTorch path, CUDA
kernels, and the dispatch between them.

The selective scan of Mamba (Gu & Dao, 2023, Algorithm 2) with the shape
contract of ``state-spaces/mamba:mamba_ssm/ops/selective_scan_interface.py``
(``selective_scan_fn``), restricted to real ``A`` and without the ``z`` gate,
i.e. the signature VMamba's ``selective_scan_cuda_core`` exposes::

    u: r(B D L)       delta: r(B D L)       A: r(D N)
    B: r(B G N L) or r(B N L) (G = 1)       C: r(B G N L) or r(B N L)
    D: r(D) or None   delta_bias: r(D) or None
    out: r(B D L), in u's dtype

Per batch ``b``, channel ``d``, state ``n`` and time ``t`` (``h_{-1} = 0``,
channel ``d`` reads group ``g = d // (D / G)`` of ``B`` and ``C``)::

    dt_t = softplus(delta_t + delta_bias)    (or delta_t + delta_bias)
    h_t  = exp(dt_t * A[d, n]) * h_{t-1} + dt_t * B[g, n, t] * u_t
    y_t  = sum_n C[g, n, t] * h_t + D[d] * u_t

:func:`selective_scan_fn` is the public entry point and the one place the
implementation is chosen (:func:`selective_path`), by its ``impl`` argument
(``SS2D(scan_impl=...)`` passes it on):

======================  ================================================
``impl``                runs
======================  ================================================
``'auto'`` (default)    CPU: ``cpp``, else ``pytorch`` (warning once);
                        CUDA: ``cuda`` when installed, else ``triton``
                        when ``triton`` imports, else ``pytorch``;
                        float64 never takes a CUDA/Triton kernel
``'cpp'``               densekit's C++ kernel (:func:`selective_scan_cpp`,
                        ``densekit/ops/csrc/selective_scan_cpu.cpp``)
``'cuda'``              ``mamba_ssm``'s ``selective_scan_cuda`` or
                        VMamba's ``selective_scan_cuda_core``
``'triton'``            :func:`densekit.ops.selective_scan_triton.
                        selective_scan_triton` (JIT-compiled, nothing to
                        build; CPU tensors under ``TRITON_INTERPRET=1``)
``'pytorch'``           :func:`selective_scan_chunked`, any device,
                        traceable (also taken while tracing)
``'reference'``         :func:`selective_scan_ref`, the sequential loop
======================  ================================================

Discovery is cached (no import is attempted per call) and the active path
is logged once. While ``torch.onnx.export`` runs, every ``impl`` takes
:func:`~.selective_scan_export.selective_scan_export` (standard ONNX
ops). ``impl=None`` means :func:`default_impl`, ``'auto'`` unless
an entry point called :func:`set_default_impl`: ``tools/train.py`` and
``tools/test.py`` do so from a config's ``selective_scan_impl`` key or the
environment variable ``DENSEKIT_SELECTIVE_SCAN`` (which wins), the only
places either is read.

How the chunked path works (a two-level scan, Blelloch 1990, Sec. 1.4, with
sequential sweeps at both levels; :func:`_segment_states`): time is cut into
chunks of ``T`` steps, and every Python-level step below is one tensor
operation over all chunks at once.

1. A loop over the ``T`` offsets runs the recurrence from a zero state in
   every chunk, keeping only each chunk's end state.
2. A loop over the ``L / T`` chunks carries the true state across chunk
   boundaries, with the chunk's decay ``exp(A * sum(dt))``.
3. A second loop over the ``T`` offsets reruns every chunk in place from its
   carried-in state.

No step divides by a decay or exponentiates a positive number: the only
``exp`` calls are ``exp(dt * A)`` and ``exp(A * sum(dt))``, products the
recurrence itself forms, so the scan is finite and as accurate as the
sequential loop for any ``|A| * dt`` (the closed form ``exp(S_t) *
cumsum(exp(-S_s) * x_s)``, ``S = cumsum(dt * A)``, overflows once ``|S|``
passes about 88 in float32). The backward pass
(:class:`_ChunkedSelectiveScan`) runs the same scan backwards in time on the
adjoint ``g_t = C_t dy_t + exp(dt_{t+1} A) g_{t+1}``
(:func:`_segment_adjoints`) after recomputing the states, as mamba's CUDA
kernel does, so only the inputs are kept between forward and backward.
"""
import functools
import logging
import math
import threading
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor

from densekit.ops import BUILD_HINT, load_ext
from densekit.ops.scan_inputs import check_scan_inputs as _check_inputs
from densekit.ops.selective_scan_triton import (selective_scan_triton,
                                                triton_available,
                                                triton_interpreted)

# read by the tools' entry points only (set_default_impl), never here
ENV_VAR = 'DENSEKIT_SELECTIVE_SCAN'
# the values of selective_scan_fn(impl=...) / SS2D(scan_impl=...)
IMPLS = ('auto', 'reference', 'pytorch', 'cpp', 'triton', 'cuda')
PATHS = IMPLS  # former name
# Steps per chunk of the C++ kernel: the backward pass recomputes a chunk's
# states into two (CPP_CHUNK, N) buffers (8 KiB at N = 16, in L1) from the
# state saved at its start (forward memory B * D * N * L / CPP_CHUNK).
CPP_CHUNK = 64
# Elements of one (batch, segment, D, N) work buffer (8 MiB in float32); the
# chunked path keeps 2 of them alive in the forward pass and 3 in the
# backward pass. On a 2-core Xeon (2 MiB L2 per core), B=1, D=192, N=16,
# L=1600/6400, 2**21 was as fast as 2**22 and 5-20% faster than 2**20; chunks
# of 16-32 steps (the default is ~25) were within noise of each other.
SEGMENT_ELEMENTS = 1 << 21
# Decays are clamped below at exp(-60) ~ 1e-26 (only when some dt * A can go
# below -60; chunk decays always): this keeps decays and their products with
# the states normal floats (float32 denormals start near exp(-87) and made
# the scan 10-100x slower on x86). What it keeps instead of ~0 is below the
# float64 rounding error (2e-16 ~ exp(-36)) relative to the state. This
# assumes decaying steps (A <= 0, dt >= 0, always true in Mamba).
LOG_DECAY_MIN = -60.0
CUDA_INSTALL_HINT = (
    'install mamba_ssm (`pip install mamba-ssm --no-build-isolation`, needs '
    'a CUDA toolkit matching torch) or build VMamba\'s kernel (`cd '
    'kernels/selective_scan && pip install .` in the VMamba repository), or '
    "use impl='auto' (the Triton kernel, else the pure PyTorch path)")

_warned_no_ext = []

_logged_paths = set()
_default_impl = ['auto']
_workspace = threading.local()


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------
def _compute_dtype(*tensors: Optional[Tensor]) -> torch.dtype:
    """float64 when any input is float64, else float32.

    fp16/bf16 are computed in float32 (a float32 state, as mamba's
    ``selective_scan_fn`` does), and no input is ever rounded down: a
    float64 ``u`` with float32 ``A``/``D``/``delta_bias`` (the casts of the
    official SS2D applied to a float64 model) is computed in float64, and so
    is a float32 ``u`` with a float64 ``A``.
    """
    wide = any(t is not None and t.dtype == torch.float64 for t in tensors)
    return torch.float64 if wide else torch.float32


def plan_segments(batch: int, dim: int, state: int, length: int,
                  chunk_size: Optional[int] = None) -> Tuple[int, int, int]:
    """Chunk size ``T``, chunks per segment ``K`` and number of segments.

    Segments hold at most ``SEGMENT_ELEMENTS // (batch * dim * state)``
    steps (at least one chunk), split L evenly, and ``T`` defaults to about
    ``sqrt(segment length)``, which balances the loop over the ``T`` offsets
    of a chunk against the loop over the ``K`` chunks of a segment.

    Returns:
        tuple[int, int, int]: ``(T, K, num_segments)``; ``T * K *
        num_segments >= length`` (the tail is padded).
    """
    max_steps = max(1, SEGMENT_ELEMENTS // (batch * dim * state))
    num_seg = -(-length // max_steps)
    seg_len = -(-length // num_seg)
    chunk = min(chunk_size or max(1, round(math.sqrt(seg_len))), length)
    seg_chunks = -(-seg_len // chunk)
    num_seg = -(-length // (chunk * seg_chunks))
    return chunk, seg_chunks, num_seg


def _exp_decay(x: Tensor, clamp: bool) -> Tensor:
    """``exp(max(x, LOG_DECAY_MIN))`` (or ``exp(x)``) in place."""
    if clamp:
        x.clamp_min_(LOG_DECAY_MIN)
    return x.exp_()


def _needs_clamp(dt: Tensor, A: Tensor) -> bool:
    """Whether some ``dt * A`` can fall below ``LOG_DECAY_MIN`` (the clamp
    costs a pass over a work buffer, so it is skipped when it cannot)."""
    return bool(dt.abs().amax() * A.abs().amax() > -LOG_DECAY_MIN)


def _work_buffers(like: Tensor, count: int,
                  shape: Sequence[int]) -> List[Tensor]:
    """``count`` uninitialised work buffers of ``shape``.

    On CPU, buffers of at most ``SEGMENT_ELEMENTS`` elements are kept per
    thread and dtype between calls (at most 3 x 8 MiB in float32): the page
    faults of first writes to fresh memory made a forward pass at L=1600,
    D=192, N=16 take 12.5 ms instead of 7.6 ms. Other devices have caching
    allocators.
    """
    numel = math.prod(shape)
    if like.device.type != 'cpu' or numel > SEGMENT_ELEMENTS:
        return [like.new_empty(shape) for _ in range(count)]
    cache = _workspace.__dict__.setdefault('buffers', {})
    buffers = cache.get(like.dtype, [])
    if len(buffers) < count or buffers[0].numel() < numel:
        size = max([numel] + [b.numel() for b in buffers])
        buffers = [like.new_empty(size) for _ in range(max(count,
                                                            len(buffers)))]
        cache[like.dtype] = buffers
    return [b[:numel].view(shape) for b in buffers[:count]]


# --------------------------------------------------------------------------
# The chunked scan on one segment (time-major work buffers)
# --------------------------------------------------------------------------
def _segment_states(h: Tensor, a: Tensor, dt: Tensor, A: Tensor,
                    h0: Optional[Tensor]) -> Tensor:
    """States ``h_t = a_t h_{t-1} + b_t`` of one segment, in place.

    Args:
        h (Tensor): (b, K, T, D, N); on entry ``b_t = dt * B * u``, on exit
            the states ``h_t``.
        a (Tensor): (b, K, T, D, N) the decays ``exp(dt * A)``; read only.
        dt (Tensor): (b, K, T, D) the step sizes.
        A (Tensor): (D, N).
        h0 (Tensor, optional): (b, D, N) state before the segment; None is 0.

    Returns:
        Tensor: (b, D, N) the state after the segment's last step.
    """
    num_chunks, chunk = h.shape[1], h.shape[2]
    # (1) every chunk's end state from a zero start, all chunks at once
    end = h[:, :, 0].clone()  # (b, K, D, N)
    for t in range(1, chunk):
        torch.addcmul(h[:, :, t], a[:, :, t], end, out=end)
    # (2) carry the state across chunks; a chunk decays by exp(A * sum(dt))
    decay = _exp_decay(dt.sum(2)[..., None] * A, clamp=True)  # (b, K, D, N)
    carries = torch.empty_like(decay)
    state = h0 if h0 is not None else torch.zeros_like(decay[:, 0])
    for k in range(num_chunks):
        carries[:, k] = state
        state = torch.addcmul(end[:, k], decay[:, k], state)
    # (3) rerun every chunk from its carried-in state, all chunks at once
    h[:, :, 0].addcmul_(a[:, :, 0], carries)
    for t in range(1, chunk):
        h[:, :, t].addcmul_(a[:, :, t], h[:, :, t - 1])
    return state


def _segment_adjoints(g: Tensor, a: Tensor, dt: Tensor, A: Tensor,
                      r_in: Optional[Tensor]) -> Tensor:
    """Adjoint states ``g_t = dL/dh_t`` of one segment, in place.

    ``g_t = c_t + a_{t+1} g_{t+1}`` with ``c_t = C_t dy_t`` runs backwards in
    time, in the same three steps as :func:`_segment_states`.

    Args:
        g (Tensor): (b, K, T, D, N); on entry ``c_t``, on exit ``g_t``.
        a (Tensor): (b, K, T, D, N) ``exp(dt * A)``; read only.
        dt (Tensor): (b, K, T, D).
        A (Tensor): (D, N).
        r_in (Tensor, optional): (b, D, N) ``a g`` at the first step after
            the segment; None is 0.

    Returns:
        Tensor: (b, D, N) ``a_s g_s`` at the segment's first step ``s``, the
        ``r_in`` of the previous segment.
    """
    num_chunks, chunk = g.shape[1], g.shape[2]
    # (1) every chunk's first adjoint from a zero end, all chunks at once
    first = g[:, :, -1].clone()  # (b, K, D, N)
    for t in range(chunk - 2, -1, -1):
        torch.addcmul(g[:, :, t], a[:, :, t + 1], first, out=first)
    # (2) carry r_k = a g at the first step after chunk k, backwards
    decay = _exp_decay(dt.sum(2)[..., None] * A, clamp=True)  # (b, K, D, N)
    carries = torch.empty_like(decay)
    r = r_in if r_in is not None else torch.zeros_like(decay[:, 0])
    for k in range(num_chunks - 1, -1, -1):
        carries[:, k] = r
        # a_0 g_0 of chunk k = a_0 (first_k + prod_{t >= 1} a_t r_k)
        r = torch.addcmul(decay[:, k] * r, a[:, k, 0], first[:, k])
    # (3) rerun every chunk backwards from its carried-in adjoint
    g[:, :, -1].add_(carries)
    for t in range(chunk - 2, -1, -1):
        g[:, :, t].addcmul_(a[:, :, t + 1], g[:, :, t + 1])
    return r


def _contract(x: Tensor, w: Tensor, groups: int) -> Tensor:
    """sum_n x[b, l, d, n] * w[b, l, g(d), n] -> (b, l, D)."""
    b, length, dim, state = x.shape
    # (1, N) @ (N, D / G) per (b, l, g): 3-5x faster than (D / G, N) @ (N, 1)
    out = torch.bmm(
        w.reshape(b * length * groups, 1, state),
        x.reshape(b * length * groups, dim // groups, state).transpose(1, 2))
    return out.view(b, length, dim)


def _outer(v: Tensor, w: Tensor, groups: int, out: Tensor) -> Tensor:
    """out[b, l, d, n] = v[b, l, d] * w[b, l, g(d), n]."""
    b, length, dim = v.shape
    torch.mul(
        v.view(b, length, groups, dim // groups, 1),
        w.view(b, length, groups, 1, w.shape[-1]),
        out=out.view(b, length, groups, dim // groups, w.shape[-1]))
    return out


def _group_sum(v: Tensor, x: Tensor, groups: int) -> Tensor:
    """sum_{d in g} v[b, l, d] * x[b, l, d, n] -> (b, l, G, N)."""
    b, length, dim, state = x.shape
    out = torch.bmm(
        v.reshape(b * length * groups, 1, dim // groups),
        x.reshape(b * length * groups, dim // groups, state))
    return out.view(b, length, groups, state)


def _chunked_scan_forward(u: Tensor, dt: Tensor, A: Tensor, B: Tensor,
                          C: Tensor, chunk: int,
                          seg_chunks: int) -> Tuple[Tensor, Tensor]:
    """Forward of :class:`_ChunkedSelectiveScan`: ``y (b, D, L)`` and the
    state entering each segment, ``starts (b, num_segments, D, N)``."""
    b, dim, length = u.shape
    groups, state = B.shape[1], B.shape[2]
    seg_len = chunk * seg_chunks
    num_seg = -(-length // seg_len)
    padded = num_seg * seg_len
    pad = padded - length
    # time-major inputs, zero-padded at the end (dt = 0 keeps the state)
    dt_t = F.pad(dt, (0, pad)).transpose(1, 2).contiguous()
    clamp = _needs_clamp(dt, A)
    dtu_t = F.pad(dt * u, (0, pad)).transpose(1, 2).contiguous()
    b_t = F.pad(B, (0, pad)).permute(0, 3, 1, 2).contiguous()
    c_t = F.pad(C, (0, pad)).permute(0, 3, 1, 2).contiguous()
    shape = (b, seg_chunks, chunk, dim, state)
    flat = (b, seg_len, dim, state)
    h, a = _work_buffers(u, 2, shape)
    y = u.new_empty(b, padded, dim)
    starts = u.new_empty(b, num_seg, dim, state)
    h0 = None
    for s in range(num_seg):
        sl = slice(s * seg_len, (s + 1) * seg_len)
        if h0 is None:
            starts[:, s].zero_()
        else:
            starts[:, s] = h0
        _outer(dtu_t[:, sl], b_t[:, sl], groups, h.view(flat))
        _exp_decay(torch.mul(dt_t[:, sl, :, None], A, out=a.view(flat)),
                   clamp)
        h0 = _segment_states(h, a, dt_t[:, sl].view(shape[:-1]), A, h0)
        y[:, sl] = _contract(h.view(flat), c_t[:, sl], groups)
    return y[:, :length].transpose(1, 2).contiguous(), starts


class _ChunkedSelectiveScan(torch.autograd.Function):
    """``y_t = sum_n C_t h_t`` of the S6 recurrence, without D, bias, softplus.

    Inputs share one floating dtype: ``u, dt: (b, D, L)`` (``dt`` the final
    step size), ``A: (D, N)``, ``B, C: (b, G, N, L)``, plus ``chunk`` (T) and
    ``seg_chunks`` (K) from :func:`plan_segments`; output ``(b, D, L)``.

    Call graph (per segment, forward in time, then backward in reverse)::

        forward():  _outer (dt u B) -> exp(dt A) -> _segment_states
                    -> _contract with C
        backward(): recompute the states as in forward() -> dC
                    -> _outer (dy C) -> _segment_adjoints -> dA, ddt, du, dB

    With ``x_t = a_t h_{t-1}`` and adjoints ``g_t``, the gradients are
    ``ddt = sum_n g x A + sum_n g B u``, ``dA = sum_{b,t} g x dt``,
    ``du = dt sum_n g B``, ``dB = sum_{d in g} g dt u`` and
    ``dC = sum_{d in g} dy h``.
    """

    @staticmethod
    def forward(ctx, u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor,
                chunk: int, seg_chunks: int) -> Tensor:
        y, starts = _chunked_scan_forward(u, dt, A, B, C, chunk, seg_chunks)
        ctx.save_for_backward(u, dt, A, B, C, starts)
        ctx.chunk, ctx.seg_chunks = chunk, seg_chunks
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        with torch.autocast(grad_y.device.type, enabled=False):
            return _ChunkedSelectiveScan._backward(ctx, grad_y)

    @staticmethod
    def _backward(ctx, grad_y: Tensor):
        u, dt, A, B, C, starts = ctx.saved_tensors
        chunk, seg_chunks = ctx.chunk, ctx.seg_chunks
        b, dim, length = u.shape
        groups, state = B.shape[1], B.shape[2]
        seg_len = chunk * seg_chunks
        num_seg = starts.shape[1]
        pad = num_seg * seg_len - length
        dt_t = F.pad(dt, (0, pad)).transpose(1, 2).contiguous()
        clamp = _needs_clamp(dt, A)
        u_t = F.pad(u, (0, pad)).transpose(1, 2).contiguous()
        dtu_t = dt_t * u_t
        b_t = F.pad(B, (0, pad)).permute(0, 3, 1, 2).contiguous()
        c_t = F.pad(C, (0, pad)).permute(0, 3, 1, 2).contiguous()
        gy_t = F.pad(grad_y.to(u.dtype), (0, pad))
        gy_t = gy_t.transpose(1, 2).contiguous()
        shape = (b, seg_chunks, chunk, dim, state)
        flat = (b, seg_len, dim, state)
        h, a, x = _work_buffers(u, 3, shape)
        hf, af, xf = h.view(flat), a.view(flat), x.view(flat)
        grad_dt = torch.empty_like(dt_t)
        grad_u = torch.empty_like(u_t)
        grad_b = torch.empty_like(b_t)
        grad_c = torch.empty_like(c_t)
        grad_a = torch.zeros_like(A)
        r = None
        for s in range(num_seg - 1, -1, -1):
            sl = slice(s * seg_len, (s + 1) * seg_len)
            dt_seg = dt_t[:, sl].view(shape[:-1])
            h0 = starts[:, s] if s > 0 else None
            # recompute the states h_t of this segment
            _outer(dtu_t[:, sl], b_t[:, sl], groups, hf)
            _exp_decay(torch.mul(dt_t[:, sl, :, None], A, out=af), clamp)
            _segment_states(h, a, dt_seg, A, h0)
            grad_c[:, sl] = _group_sum(gy_t[:, sl], hf, groups)
            # x = a_t * h_{t-1}
            torch.mul(af[:, 1:], hf[:, :-1], out=xf[:, 1:])
            if h0 is None:
                xf[:, 0].zero_()
            else:
                torch.mul(af[:, 0], h0, out=xf[:, 0])
            # adjoints g_t (in h's buffer), starting from C_t dy_t
            _outer(gy_t[:, sl], c_t[:, sl], groups, hf)
            r = _segment_adjoints(h, a, dt_seg, A, r)
            # through the decay exp(dt A): sum_n g a h_{t-1} (A or dt)
            xf.mul_(hf)
            grad_dt[:, sl] = torch.einsum('bldn,dn->bld', xf, A)
            grad_a += torch.einsum('bldn,bld->dn', xf, dt_t[:, sl])
            # through dt * B * u
            gbu = _contract(hf, b_t[:, sl], groups)  # (b, l, D)
            grad_u[:, sl] = gbu * dt_t[:, sl]
            grad_dt[:, sl] += gbu * u_t[:, sl]
            grad_b[:, sl] = _group_sum(dtu_t[:, sl], hf, groups)
        return (grad_u[:, :length].transpose(1, 2),
                grad_dt[:, :length].transpose(1, 2), grad_a,
                grad_b[:, :length].permute(0, 2, 3, 1),
                grad_c[:, :length].permute(0, 2, 3, 1), None, None)


# --------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------
def selective_scan_chunked(u: Tensor,
                           delta: Tensor,
                           A: Tensor,
                           B: Tensor,
                           C: Tensor,
                           D: Optional[Tensor] = None,
                           delta_bias: Optional[Tensor] = None,
                           delta_softplus: bool = False,
                           chunk_size: Optional[int] = None) -> Tensor:
    """The selective scan as a chunked two-level scan in pure PyTorch.

    Exact (no truncation or log-space approximation) and finite whenever the
    recurrence is, on any device; differentiable with respect to every
    tensor argument through a hand-written backward pass.

    Args:
        u (Tensor): r(B D L) input.
        delta (Tensor): r(B D L) step size before bias and softplus.
        A (Tensor): r(D N) state matrix (diagonal per channel); typically
            ``-exp(A_log)``.
        B (Tensor): r(B G N L) or r(B N L) input projection; channel ``d``
            reads group ``d // (D / G)``.
        C (Tensor): r(B G N L) or r(B N L) output projection.
        D (Tensor, optional): r(D) skip connection.
        delta_bias (Tensor, optional): r(D) added to ``delta`` (before the
            softplus when ``delta_softplus``).
        delta_softplus (bool): Apply softplus to ``delta + delta_bias``.
        chunk_size (int, optional): Steps per chunk ``T``. None picks about
            ``sqrt(segment length)`` (see below and :func:`plan_segments`),
            which balances the two loops over the ``T`` offsets against the
            loop over the chunks. Any positive value gives the same result
            up to rounding; ``L`` need not be a multiple (the tail is
            padded).

    Returns:
        Tensor: r(B D L) ``y`` in ``u``'s dtype. Computed in float64 when
        any input is float64, else in float32 (fp16/bf16 inputs get a
        float32 state, as in mamba's ``selective_scan_fn``); the inputs may
        mix dtypes (e.g. fp16 ``u``/``delta``/``B``/``C`` with float32
        ``A``/``D``/``delta_bias``, the official SS2D's casts).

    Note:
        Chunk size and memory: time is processed in segments of ``K``
        chunks of ``T`` steps, with at most ``SEGMENT_ELEMENTS = 2**21``
        elements ``B * K * T * D * N`` per segment (at least one chunk) and
        ``T`` about ``sqrt(K * T)``; for B=1, D=192, N=16 a segment is about
        640 steps, ``T`` = 25. The forward pass keeps 2 work buffers of one
        segment (states and decays; 16 MiB in float32 at most), the backward
        pass 3 (24 MiB), reused between calls on CPU; on top come time-major
        copies of the inputs, O(B * L * (D + G * N)). Between forward and
        backward only the inputs and one (B, D, N) state per segment are
        kept; the backward pass recomputes the states.

        Cost: 2 passes of ``T`` in-place ``addcmul_`` over a segment, ``K``
        small steps across chunks, ``exp(dt * A)`` once, and one batched
        matmul with ``C``: about 15x (L=1600) to 18x (L=6400) faster than
        the loop over L in the forward pass at B=1, D=192, N=16 on 2 CPU
        threads (``tools/analysis/benchmark_selective_scan.py``).

    Examples:
        >>> u, delta = torch.randn(2, 8, 100), torch.rand(2, 8, 100)
        >>> A = -torch.rand(8, 4)
        >>> B, C = torch.randn(2, 2, 4, 100), torch.randn(2, 2, 4, 100)
        >>> selective_scan_chunked(u, delta, A, B, C).shape
        torch.Size([2, 8, 100])
    """
    _check_inputs(u, delta, A, B, C, D, delta_bias)
    _check_chunk_size(chunk_size)
    batch, dim, length = u.shape
    chunk, seg_chunks, _ = plan_segments(batch, dim, A.shape[1], length,
                                         chunk_size)
    x, dt, A, B, C = _prepare_inputs(u, delta, A, B, C, D, delta_bias,
                                     delta_softplus)
    # autocast would run the inner matmuls in half precision
    args = (x, dt, A, B, C, chunk, seg_chunks)
    with torch.autocast(u.device.type, enabled=False):
        if torch.jit.is_tracing():
            # jit.trace (e.g. mmengine's FLOP counter) cannot trace a
            # custom autograd.Function; the plain forward traces fine
            y = _chunked_scan_forward(*args)[0]
        else:
            y = _ChunkedSelectiveScan.apply(*args)
    return _add_skip(y, x, D, u.dtype)


def _check_chunk_size(chunk_size: Optional[int]) -> None:
    if chunk_size is not None and (not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise ValueError(f'chunk_size must be a positive int or None, but '
                         f'got chunk_size={chunk_size!r}')


def _prepare_inputs(u: Tensor, delta: Tensor, A: Tensor, B: Tensor,
                    C: Tensor, D: Optional[Tensor],
                    delta_bias: Optional[Tensor],
                    delta_softplus: bool) -> Tuple[Tensor, ...]:
    """``(u, dt, A, B, C)`` in the compute dtype (:func:`_compute_dtype`
    of all inputs, ``D`` included), ``dt`` the final step size (bias and
    softplus applied, differentiably), ``B``/``C`` 4-dim."""
    dtype = _compute_dtype(u, delta, A, B, C, D, delta_bias)
    dt = delta.to(dtype)
    if delta_bias is not None:
        dt = dt + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    if B.dim() == 3:
        B = B.unsqueeze(1)
    if C.dim() == 3:
        C = C.unsqueeze(1)
    return u.to(dtype), dt, A.to(dtype), B.to(dtype), C.to(dtype)


def _add_skip(y: Tensor, x: Tensor, D: Optional[Tensor],
              dtype: torch.dtype) -> Tensor:
    """``y + D x`` (when D is given), cast to the input dtype."""
    if D is not None:
        y = y + D.to(y.dtype)[:, None] * x
    return y.to(dtype)


# --------------------------------------------------------------------------
# The C++ CPU kernel
# --------------------------------------------------------------------------
class _CppSelectiveScan(torch.autograd.Function):
    """``y_t = sum_n C_t h_t`` by densekit's C++ kernel (``densekit._ext``);
    the contract of :class:`_ChunkedSelectiveScan` with ``chunk`` the
    kernel's checkpoint interval. Between forward and backward it keeps the
    inputs and the state entering every chunk."""

    @staticmethod
    def forward(ctx, u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor,
                chunk: int) -> Tensor:
        ext = load_ext()[0]
        save = any(ctx.needs_input_grad[:5])
        y, starts = ext.selective_scan_fwd(u, dt, A, B, C, chunk, save)
        if save:
            ctx.save_for_backward(u, dt, A, B, C, starts)
        ctx.chunk = chunk
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        u, dt, A, B, C, starts = ctx.saved_tensors
        du, ddt, dA, dB, dC = load_ext()[0].selective_scan_bwd(
            u, dt, A, B, C, starts, grad_y, ctx.chunk)
        return du, ddt, dA, dB, dC, None


def selective_scan_cpp(u: Tensor,
                       delta: Tensor,
                       A: Tensor,
                       B: Tensor,
                       C: Tensor,
                       D: Optional[Tensor] = None,
                       delta_bias: Optional[Tensor] = None,
                       delta_softplus: bool = False,
                       chunk_size: Optional[int] = None) -> Tensor:
    """The selective scan by densekit's C++ CPU kernel.

    Same arguments, result and gradients as :func:`selective_scan_chunked`
    (``chunk_size`` here is the backward pass's recompute interval, default
    :data:`CPP_CHUNK`); CPU tensors only. Time runs sequentially per channel
    with the states in SIMD registers, channels in parallel over torch's
    intra-op threads. The kernel has a float32 and a float64 instance; the
    compute dtype is chosen as in :func:`selective_scan_chunked` (float64
    when any input is float64, else float32, so fp16/bf16 are computed in
    float32 and returned in ``u``'s dtype).

    Raises:
        RuntimeError: The extension is not built (the message says how to
            build it), or the inputs are not on the CPU.
    """
    ext, reason = load_ext()
    if ext is None:
        raise RuntimeError(f"densekit's C++ selective scan is not built "
                           f'({reason}); {BUILD_HINT}')
    _check_inputs(u, delta, A, B, C, D, delta_bias)
    _check_chunk_size(chunk_size)
    if u.device.type != 'cpu':
        raise RuntimeError(f'selective_scan_cpp runs on the CPU, but the '
                           f'inputs are on {u.device}')
    x, dt, A, B, C = _prepare_inputs(u, delta, A, B, C, D, delta_bias,
                                     delta_softplus)
    with torch.autocast('cpu', enabled=False):
        y = _CppSelectiveScan.apply(x, dt, A, B, C,
                                    chunk_size or CPP_CHUNK)
    return _add_skip(y, x, D, u.dtype)


def _log_path_once(path: str) -> None:
    if path not in _logged_paths:
        _logged_paths.add(path)
        print_log(
            f'selective scan: {path} (choose with SS2D(scan_impl=...), '
            f'selective_scan_fn(impl=...), or for the tools {ENV_VAR} / a '
            "config's selective_scan_impl: one of " + ', '.join(IMPLS) + ')',
            logger='current', level=logging.INFO)


@functools.lru_cache(maxsize=None)
def _import_cuda_scan():
    """``(path name, scan function)`` of an installed CUDA kernel, or
    ``(None, None)``; the import is attempted once."""
    try:
        import selective_scan_cuda  # noqa: F401
        from mamba_ssm.ops import selective_scan_interface  # noqa: F401
        return 'cuda (mamba_ssm)', _selective_scan_mamba
    except (ImportError, OSError):
        pass
    try:
        import selective_scan_cuda_core  # noqa: F401
        return 'cuda (selective_scan_cuda_core)', _selective_scan_core
    except (ImportError, OSError):
        return None, None


def _float32(x: Optional[Tensor]) -> Optional[Tensor]:
    return None if x is None else x.float()


def _selective_scan_mamba(u, delta, A, B, C, D=None, delta_bias=None,
                          delta_softplus=False):
    """``mamba_ssm``'s autograd function; A, D, delta_bias in float32."""
    from mamba_ssm.ops.selective_scan_interface import \
        selective_scan_fn as mamba_scan
    return mamba_scan(u, delta, _float32(A), B, C, _float32(D), None,
                      _float32(delta_bias), delta_softplus)


class _CoreScan(torch.autograd.Function):
    """VMamba's ``selective_scan_cuda_core`` kernel (nrows = 1)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, delta_softplus):
        import selective_scan_cuda_core
        ctx.delta_softplus = delta_softplus
        out, x, *_ = selective_scan_cuda_core.fwd(u, delta, A, B, C, D,
                                                  delta_bias, delta_softplus,
                                                  1)
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, x)
        return out

    @staticmethod
    def backward(ctx, dout):
        import selective_scan_cuda_core
        u, delta, A, B, C, D, delta_bias, x = ctx.saved_tensors
        du, ddelta, dA, dB, dC, dD, ddelta_bias, *_ = \
            selective_scan_cuda_core.bwd(u, delta, A, B, C, D, delta_bias,
                                         dout.contiguous(), x,
                                         ctx.delta_softplus, 1)
        return du, ddelta, dA, dB, dC, dD, ddelta_bias, None


def _selective_scan_core(u, delta, A, B, C, D=None, delta_bias=None,
                         delta_softplus=False):
    B = B.unsqueeze(1) if B.dim() == 3 else B
    C = C.unsqueeze(1) if C.dim() == 3 else C
    if D is None:  # the core kernel expects a D tensor
        D = u.new_zeros(u.shape[1], dtype=torch.float32)
    return _CoreScan.apply(u.contiguous(), delta.contiguous(), A.float(),
                           B.contiguous(), C.contiguous(), D.float(),
                           _float32(delta_bias), delta_softplus)


def set_default_impl(impl: str) -> None:
    """The implementation :func:`selective_scan_fn` uses when called with
    ``impl=None`` (SS2D modules built without ``scan_impl``): one of
    :data:`IMPLS`. The tools' entry points set it from a config's
    ``selective_scan_impl`` key or ``DENSEKIT_SELECTIVE_SCAN``
    (:func:`densekit.engine.config_setup.apply_selective_scan_impl`);
    library code passes ``impl`` instead."""
    _default_impl[0] = check_impl(impl)


def default_impl() -> str:
    """What ``impl=None`` means now (``'auto'`` unless an entry point
    called :func:`set_default_impl`)."""
    return _default_impl[0]


def check_impl(impl: str) -> str:
    """``impl`` normalised, or ``ValueError`` listing :data:`IMPLS`."""
    name = str(impl).strip().lower()
    if name not in IMPLS:
        raise ValueError(f'selective scan implementation must be one of '
                         f'{IMPLS}, got {impl!r}')
    return name


def available_impls(device: Union[str, torch.device] = 'cpu') -> dict:
    """Which implementations run on ``device`` here: ``{name: 'yes' |
    'no (why)'}`` over :data:`IMPLS` (without ``'auto'``)."""
    device = torch.device(device)
    ext, reason = load_ext()
    cuda_name = _import_cuda_scan()[0]
    on_cuda = device.type == 'cuda'
    triton_ok = triton_available()
    return {
        'reference': 'yes',
        'pytorch': 'yes',
        'cpp': ('yes' if ext is not None and not on_cuda else
                'no (CPU only)' if on_cuda else f'no ({reason})'),
        'triton': ('yes' if triton_ok and (on_cuda or triton_interpreted())
                   else 'no (triton not importable)' if not triton_ok else
                   'no (CPU tensors need TRITON_INTERPRET=1)'),
        'cuda': (f'yes: {cuda_name}' if cuda_name and on_cuda else
                 'no (CUDA only)' if not on_cuda else
                 'no (mamba_ssm / selective_scan_cuda_core not installed)'),
    }


def selective_path(u: Tensor, *others: Optional[Tensor],
                   impl: Optional[str] = None) -> str:
    """Which implementation :func:`selective_scan_fn` runs for ``u``.

    ``impl`` (default: :func:`default_impl`, normally ``'auto'``):

    * ``'auto'``: CPU inputs take the C++ kernel when the extension is
      built (else the chunked path, warning once how to build it); CUDA
      inputs take ``mamba_ssm`` / VMamba's kernel when installed, else the
      Triton kernel when ``triton`` imports, else the chunked path. Inputs
      of which any (``u`` or ``others``) is float64 never take a CUDA or
      Triton kernel (no float64 there; the C++ and chunked paths compute
      them in float64).
    * ``'cpp'``, ``'cuda'``, ``'triton'``: that kernel, or ``RuntimeError``
      with the fix when it cannot run these inputs;
    * ``'pytorch'``: the chunked pure-PyTorch path (any device, traceable);
    * ``'reference'``: the sequential loop :func:`selective_scan_ref`.

    Discovery is cached: no import is attempted per call.

    Returns:
        str: ``'cpp-cpu'``, ``'pytorch-chunked'``, ``'reference'``,
        ``'triton'``, ``'cuda (mamba_ssm)'`` or
        ``'cuda (selective_scan_cuda_core)'``.
    """
    choice = check_impl(impl if impl is not None else default_impl())
    if choice == 'pytorch':
        return 'pytorch-chunked'
    if choice == 'reference':
        return 'reference'
    wide = _compute_dtype(u, *others) == torch.float64
    if choice == 'cpp' or (choice == 'auto' and u.device.type == 'cpu'):
        ext, reason = load_ext()
        if choice == 'cpp' and (ext is None or u.device.type != 'cpu'):
            raise RuntimeError(
                "selective scan impl='cpp' but " +
                (f'the inputs are on {u.device}' if ext is not None else
                 f"densekit's C++ extension is not built ({reason})") +
                f"; {BUILD_HINT}, or use impl='auto'")
        if ext is not None:
            return 'cpp-cpu'
        if not _warned_no_ext:
            _warned_no_ext.append(True)
            print_log(
                f"selective scan: densekit's C++ CPU kernel is not built "
                f'({reason}); using the slower pure-PyTorch path. To build '
                f'it: {BUILD_HINT}', logger='current', level=logging.WARNING)
        return 'pytorch-chunked'
    if choice == 'triton':
        if not triton_available():
            raise RuntimeError("selective scan impl='triton' but triton is "
                               'not importable; pip install triton')
        if wide:
            raise RuntimeError("selective scan impl='triton' but the inputs "
                               'are float64; use impl=\'pytorch\' or '
                               "'cpp' for float64")
        return 'triton'
    name = _import_cuda_scan()[0] if u.is_cuda else None
    if choice == 'cuda' and name is None:
        raise RuntimeError(
            "selective scan impl='cuda' but " +
            (f'the inputs are on {u.device}' if not u.is_cuda else
             'no CUDA selective scan kernel is importable') +
            f'; {CUDA_INSTALL_HINT}')
    if wide:
        if choice == 'cuda':
            raise RuntimeError(
                f"selective scan impl='cuda' but the inputs are float64, "
                f'which the CUDA kernels ({name}) do not support; cast the '
                "model to float32/fp16/bf16, or use impl='auto' (float64 "
                'then takes the pure PyTorch path)')
        return 'pytorch-chunked'
    if name is not None:
        return name
    if u.is_cuda and triton_available():
        return 'triton'
    return 'pytorch-chunked'


def selective_scan_fn(u: Tensor,
                      delta: Tensor,
                      A: Tensor,
                      B: Tensor,
                      C: Tensor,
                      D: Optional[Tensor] = None,
                      delta_bias: Optional[Tensor] = None,
                      delta_softplus: bool = False,
                      impl: Optional[str] = None) -> Tensor:
    """Mamba's selective scan; signature and shapes of ``mamba_ssm``'s.

    Runs the implementation :func:`selective_path` picks for ``impl``
    (densekit's C++ kernel for CPU inputs; ``mamba_ssm`` /
    ``selective_scan_cuda_core``, else the Triton kernel, for CUDA inputs;
    the chunked pure-PyTorch path otherwise, and under ``torch.jit.trace``;
    :func:`~.selective_scan_export.selective_scan_export` under
    ``torch.onnx.export``) and logs the active path once.

    Args:
        u (Tensor): r(B D L).
        delta (Tensor): r(B D L).
        A (Tensor): r(D N).
        B (Tensor): r(B G N L) or r(B N L), G dividing D.
        C (Tensor): r(B G N L) or r(B N L).
        D (Tensor, optional): r(D).
        delta_bias (Tensor, optional): r(D).
        delta_softplus (bool): ``delta = softplus(delta + delta_bias)``.
        impl (str, optional): One of :data:`IMPLS`; None: the process
            default (:func:`default_impl`, ``'auto'``).

    Returns:
        Tensor: r(B D L) in ``u``'s dtype; computed in float64 when any
        input is float64, else with a float32 state (fp16/bf16 inputs).
    """
    _check_inputs(u, delta, A, B, C, D, delta_bias)
    if _onnx_exporting():
        # standard ONNX ops only (selective_scan_export.py): the kernels
        # cannot be traced, the chunked path's out= buffers not translated
        from .selective_scan_export import selective_scan_export
        return selective_scan_export(u, delta, A, B, C, D, delta_bias,
                                     delta_softplus)
    path = selective_path(u, delta, A, B, C, D, delta_bias, impl=impl)
    if path not in ('pytorch-chunked', 'reference') and _exporting():
        path = 'pytorch-chunked'  # a traced graph cannot hold a kernel
    _log_path_once(path)
    if path == 'cpp-cpu':
        return selective_scan_cpp(u, delta, A, B, C, D, delta_bias,
                                  delta_softplus)
    if path == 'pytorch-chunked':
        return selective_scan_chunked(u, delta, A, B, C, D, delta_bias,
                                      delta_softplus)
    if path == 'reference':
        return selective_scan_ref(u, delta, A, B, C, D, delta_bias,
                                  delta_softplus)
    if path == 'triton':
        return selective_scan_triton(u, delta, A, B, C, D, delta_bias,
                                     delta_softplus)
    scan = _import_cuda_scan()[1]
    return scan(u, delta, A, B, C, D, delta_bias=delta_bias,
                delta_softplus=delta_softplus)


def _onnx_exporting() -> bool:
    """``torch.onnx.export`` is tracing the model."""
    onnx = getattr(torch, 'onnx', None)
    return bool(onnx is not None and getattr(onnx, 'is_in_onnx_export',
                                             lambda: False)())


def _exporting() -> bool:
    """Tracing (``torch.jit.trace``) or an ONNX export in progress."""
    if torch.jit.is_tracing():
        return True
    onnx = getattr(torch, 'onnx', None)
    return bool(onnx is not None and getattr(onnx, 'is_in_onnx_export',
                                             lambda: False)())


def selective_scan_ref(u: Tensor,
                       delta: Tensor,
                       A: Tensor,
                       B: Tensor,
                       C: Tensor,
                       D: Optional[Tensor] = None,
                       delta_bias: Optional[Tensor] = None,
                       delta_softplus: bool = False) -> Tensor:
    """The sequential reference: mamba's ``selective_scan_ref``
    (``state-spaces/mamba:mamba_ssm/ops/selective_scan_interface.py``) for
    real ``A`` without ``z``, a Python loop over L. What every fast path
    is tested against.

    Args: as :func:`selective_scan_fn` (without ``impl``).

    Returns:
        Tensor: r(B D L) in ``u``'s dtype, computed in
        :func:`_compute_dtype` (float64 when any input is float64, else
        float32).
    """
    _check_inputs(u, delta, A, B, C, D, delta_bias)
    dtype_in = u.dtype
    dtype = _compute_dtype(u, delta, A, B, C, D, delta_bias)
    u, delta = u.to(dtype), delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    dim = u.shape[1]
    B = (B.unsqueeze(1) if B.dim() == 3 else B).to(dtype)
    C = (C.unsqueeze(1) if C.dim() == 3 else C).to(dtype)
    B = B.repeat_interleave(dim // B.shape[1], dim=1)  # (b, D, N, L)
    C = C.repeat_interleave(dim // C.shape[1], dim=1)
    delta_a = torch.exp(torch.einsum('bdl,dn->bdln', delta, A.to(dtype)))
    delta_b_u = torch.einsum('bdl,bdnl,bdl->bdln', delta, B, u)
    x = u.new_zeros(u.shape[0], dim, A.shape[1])
    ys = []
    # unbind, not [..., i]: autograd then stacks one gradient instead of
    # adding L full-size ones (quadratic in L)
    for decay, inp, c in zip(delta_a.unbind(2), delta_b_u.unbind(2),
                             C.unbind(3)):
        x = decay * x + inp
        ys.append((x * c).sum(-1))
    y = torch.stack(ys, dim=2)
    if D is not None:
        y = y + u * D.to(dtype)[:, None]
    return y.to(dtype_in)

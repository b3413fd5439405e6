"""Mamba's S6 selective scan as Triton kernels (forward and backward).

A GPU path with nothing to compile ahead of time: Triton JIT-compiles the two
kernels on first use, so any CUDA (or ROCm) GPU with ``pip install triton``
runs the scan without ``mamba_ssm`` or VMamba's extension. Under Triton's
interpreter (``TRITON_INTERPRET=1``) the same kernels run on CPU tensors,
which is how the parity tests exercise them without a GPU (slowly: for
correctness only).

Contract: that of
:func:`densekit.models.layers.selective_scan.selective_scan_fn` (mamba's
``selective_scan_fn`` for real ``A`` without ``z``)::

    u: r(B D L)       delta: r(B D L)       A: r(D N)
    B: r(B G N L) or r(B N L) (G = 1)       C: r(B G N L) or r(B N L)
    D: r(D) or None   delta_bias: r(D) or None
    out: r(B D L), in u's dtype

    dt_t = softplus(delta_t + delta_bias)    (or delta_t + delta_bias)
    h_t  = exp(dt_t * A[d, n]) * h_{t-1} + dt_t * B[g, n, t] * u_t
    y_t  = sum_n C[g, n, t] * h_t + D[d] * u_t

Inputs may be float32, float16 or bfloat16 (mixed too); the state and every
accumulation are float32 (float64 when ``u`` is float64); ``y`` and the
gradients come back in their inputs' dtypes.

Design (call graph)::

    selective_scan_triton() -> _TritonSelectiveScan.apply()
        forward():  _fwd_kernel          grid (B, G * blocks per group)
        backward(): _bwd_kernel          same grid
                    -> partial sums reduced in torch (dA, dB, dC, dD,
                       ddelta_bias)

* One program owns ``BLOCK_D`` channels of one group of one batch element,
  with the ``(BLOCK_D, BLOCK_N)`` state in registers (``BLOCK_N`` is N
  rounded up to a power of two, masked), and walks time sequentially.
  Blocks never straddle a group, so every program reads one ``B_t``/``C_t``
  vector per step.
* Forward: time runs in chunks of :data:`CHUNK` steps; when a gradient is
  needed the state entering every chunk is saved, ``(B, D, L / CHUNK, N)``
  in the accumulation dtype (as the C++ CPU kernel does).
* Backward: chunks are visited last to first. Each chunk's states are
  recomputed from its saved start into a per-program scratch buffer
  ``(CHUNK + 1, BLOCK_D, BLOCK_N)`` (slot 0 the chunk's start state), then
  the adjoint ``g_t = C_t dy_t + exp(dt_{t+1} A) g_{t+1}`` runs backwards
  through the chunk, carried across chunk boundaries in registers, giving
  per step ``du``, ``ddelta`` (through softplus) and per-program partial sums
  of ``dB``/``dC`` over the block's channels, plus ``dA``, ``dD`` and
  ``ddelta_bias`` accumulated over time. Partial buffers are in the
  accumulation dtype and are summed in torch (over channel blocks of a group
  and over the batch): no atomics, so results are deterministic.

Interpreter: ``TRITON_INTERPRET=1`` must be set before ``triton`` is first
imported (triton builds its own library, ``tl.zeros``, ``tl.sum``, in one
mode per process); the kernels here are built on first use in the mode then
in force, and a mismatch raises ``RuntimeError`` saying so.

``triton`` is imported lazily: importing this module never needs it;
:func:`triton_available` says whether it can be used and
:func:`selective_scan_triton` raises ``RuntimeError`` with the fix when it
cannot.
"""
import functools
import os
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .scan_inputs import check_scan_inputs

# Steps per chunk: the backward pass recomputes one chunk's states from the
# state saved at its start, as the C++ kernel's CPP_CHUNK does. Forward
# memory for the saved states is B * D * N * L / CHUNK.
CHUNK = 64
# Largest channel block of one program. Smaller blocks give more programs
# (the scan is sequential in time, so parallelism comes only from batch and
# channels) but more dB/dC partial sums (B * (D / BLOCK_D) * N * L floats in
# the backward pass). Not tuned on a GPU yet.
BLOCK_D_MAX = 16
INSTALL_HINT = ('install Triton (`pip install triton`; it ships with the '
                'CUDA builds of torch), or use another selective scan path')


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """Whether ``triton`` (and ``triton.language``) can be imported; cached."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except ImportError:
        return False
    return True


def triton_interpreted() -> bool:
    """Whether Triton kernels run in its interpreter (on CPU tensors):
    ``TRITON_INTERPRET=1`` when triton was imported; False without
    triton."""
    return triton_available() and _interpret()


def _interpret() -> bool:
    """Whether ``triton.jit`` would build interpreted kernels now
    (``TRITON_INTERPRET``, read when a kernel is decorated)."""
    try:
        from triton import knobs  # triton >= 3.4 reads the variable here
        return bool(knobs.runtime.interpret)
    except (ImportError, AttributeError):
        return os.environ.get('TRITON_INTERPRET', '0') == '1'


@functools.lru_cache(maxsize=None)
def _kernels(interpret: bool):
    """``(forward kernel, backward kernel)``, built once per interpreter mode.

    ``triton.jit`` decides at decoration time whether a kernel is compiled or
    interpreted (``TRITON_INTERPRET``), so the kernels are defined here, after
    the caller has read the mode, and not at import time.
    """
    # kernel bodies resolve these names in module globals (closures over
    # locals need triton >= 3.3)
    global triton, tl, _softplus
    import triton
    import triton.language as tl
    _check_library_mode(interpret)

    @triton.jit
    def _softplus(x):
        """``(softplus(x), exp(-|x|))``: ``max(x, 0) + log1p(exp(-|x|))``
        with Goldberg's log1p (``log(w) * e / (w - 1)``, ``w = 1 + e``)."""
        e = tl.exp(-tl.abs(x))
        w = 1. + e
        log1p = tl.where(w == 1., e, tl.log(w) * (e / (w - 1.)))
        return tl.maximum(x, 0.) + log1p, e

    @triton.jit
    def _fwd_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr,
                    y_ptr, starts_ptr, dim, length, state, dim_per_group,
                    blocks_per_group, num_chunks, stride_bb, stride_bg,
                    stride_bn, stride_bl, stride_cb, stride_cg, stride_cn,
                    stride_cl, HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr,
                    SOFTPLUS: tl.constexpr, SAVE: tl.constexpr,
                    CHUNK: tl.constexpr, BLOCK_D: tl.constexpr,
                    BLOCK_N: tl.constexpr, ACC: tl.constexpr):
        pid_b = tl.program_id(0).to(tl.int64)
        pid = tl.program_id(1)
        group = pid // blocks_per_group
        local = (pid % blocks_per_group) * BLOCK_D + tl.arange(0, BLOCK_D)
        mask_d = local < dim_per_group
        chan = group * dim_per_group + local
        offs_n = tl.arange(0, BLOCK_N)
        mask_n = offs_n < state
        mask_dn = mask_d[:, None] & mask_n[None, :]
        A = tl.load(A_ptr + chan[:, None] * state + offs_n[None, :],
                    mask=mask_dn, other=0.).to(ACC)
        if HAS_D:
            skip = tl.load(D_ptr + chan, mask=mask_d, other=0.).to(ACC)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + chan, mask=mask_d, other=0.).to(ACC)
        row = (pid_b * dim + chan) * length  # (b, d, 0) of u, delta, y
        b_vec = B_ptr + pid_b * stride_bb + group * stride_bg + \
            offs_n * stride_bn
        c_vec = C_ptr + pid_b * stride_cb + group * stride_cg + \
            offs_n * stride_cn
        starts = starts_ptr + ((pid_b * dim + chan)[:, None] * num_chunks
                               ) * state + offs_n[None, :]
        h = tl.zeros((BLOCK_D, BLOCK_N), ACC)
        for c in range(0, num_chunks):
            if SAVE:
                tl.store(starts + c * state, h, mask=mask_dn)
            t_end = tl.minimum(c * CHUNK + CHUNK, length)
            for t in range(c * CHUNK, t_end):
                u = tl.load(u_ptr + row + t, mask=mask_d, other=0.).to(ACC)
                dt = tl.load(delta_ptr + row + t, mask=mask_d,
                             other=0.).to(ACC)
                if HAS_BIAS:
                    dt += bias
                if SOFTPLUS:
                    dt, _ = _softplus(dt)
                b_t = tl.load(b_vec + t * stride_bl, mask=mask_n,
                              other=0.).to(ACC)
                c_t = tl.load(c_vec + t * stride_cl, mask=mask_n,
                              other=0.).to(ACC)
                h = tl.exp(dt[:, None] * A) * h + \
                    (dt * u)[:, None] * b_t[None, :]
                y = tl.sum(h * c_t[None, :], axis=1)
                if HAS_D:
                    y += skip * u
                tl.store(y_ptr + row + t, y.to(y_ptr.dtype.element_ty),
                         mask=mask_d)

    @triton.jit
    def _bwd_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr,
                    dy_ptr, starts_ptr, scratch_ptr, du_ptr, ddelta_ptr,
                    dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr, dim, length,
                    state, dim_per_group, blocks_per_group, num_chunks,
                    stride_bb, stride_bg, stride_bn, stride_bl, stride_cb,
                    stride_cg, stride_cn, stride_cl, HAS_D: tl.constexpr,
                    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                    CHUNK: tl.constexpr, BLOCK_D: tl.constexpr,
                    BLOCK_N: tl.constexpr, ACC: tl.constexpr):
        pid_b = tl.program_id(0).to(tl.int64)
        pid = tl.program_id(1)
        prog = pid_b * tl.num_programs(1) + pid  # index of partial buffers
        group = pid // blocks_per_group
        idx_d = tl.arange(0, BLOCK_D)
        local = (pid % blocks_per_group) * BLOCK_D + idx_d
        mask_d = local < dim_per_group
        chan = group * dim_per_group + local
        offs_n = tl.arange(0, BLOCK_N)
        mask_n = offs_n < state
        mask_dn = mask_d[:, None] & mask_n[None, :]
        A = tl.load(A_ptr + chan[:, None] * state + offs_n[None, :],
                    mask=mask_dn, other=0.).to(ACC)
        if HAS_D:
            skip = tl.load(D_ptr + chan, mask=mask_d, other=0.).to(ACC)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + chan, mask=mask_d, other=0.).to(ACC)
        row = (pid_b * dim + chan) * length
        b_vec = B_ptr + pid_b * stride_bb + group * stride_bg + \
            offs_n * stride_bn
        c_vec = C_ptr + pid_b * stride_cb + group * stride_cg + \
            offs_n * stride_cn
        starts = starts_ptr + ((pid_b * dim + chan)[:, None] * num_chunks
                               ) * state + offs_n[None, :]
        # this program's (CHUNK + 1, BLOCK_D, BLOCK_N) states of one chunk
        tile = BLOCK_D * BLOCK_N
        scratch = scratch_ptr + prog * (CHUNK + 1) * tile + \
            idx_d[:, None] * BLOCK_N + offs_n[None, :]
        # (B, G, blocks per group, N, L) partial sums over the block
        part_n = prog * state * length + offs_n * length
        r = tl.zeros((BLOCK_D, BLOCK_N), ACC)  # exp(dt_{t+1} A) g_{t+1}
        dA_acc = tl.zeros((BLOCK_D, BLOCK_N), ACC)
        dD_acc = tl.zeros((BLOCK_D, ), ACC)
        dbias_acc = tl.zeros((BLOCK_D, ), ACC)
        for ci in range(0, num_chunks):
            c = num_chunks - 1 - ci
            t0 = c * CHUNK
            t_end = tl.minimum(t0 + CHUNK, length)
            # (1) recompute the chunk's states from the saved start state
            h = tl.load(starts + c * state, mask=mask_dn, other=0.)
            tl.store(scratch, h)
            for t in range(t0, t_end):
                u = tl.load(u_ptr + row + t, mask=mask_d, other=0.).to(ACC)
                dt = tl.load(delta_ptr + row + t, mask=mask_d,
                             other=0.).to(ACC)
                if HAS_BIAS:
                    dt += bias
                if SOFTPLUS:
                    dt, _ = _softplus(dt)
                b_t = tl.load(b_vec + t * stride_bl, mask=mask_n,
                              other=0.).to(ACC)
                h = tl.exp(dt[:, None] * A) * h + \
                    (dt * u)[:, None] * b_t[None, :]
                tl.store(scratch + (t - t0 + 1) * tile, h)
            tl.debug_barrier()  # states written by all threads before reads
            # (2) the adjoint backwards through the chunk
            for tt in range(0, t_end - t0):
                t = t_end - 1 - tt
                u = tl.load(u_ptr + row + t, mask=mask_d, other=0.).to(ACC)
                x = tl.load(delta_ptr + row + t, mask=mask_d,
                            other=0.).to(ACC)
                if HAS_BIAS:
                    x += bias
                dt = x
                if SOFTPLUS:
                    dt, e = _softplus(x)
                dy = tl.load(dy_ptr + row + t, mask=mask_d, other=0.).to(ACC)
                b_t = tl.load(b_vec + t * stride_bl, mask=mask_n,
                              other=0.).to(ACC)
                c_t = tl.load(c_vec + t * stride_cl, mask=mask_n,
                              other=0.).to(ACC)
                h_t = tl.load(scratch + (t - t0 + 1) * tile)
                h_prev = tl.load(scratch + (t - t0) * tile)
                tl.store(dC_ptr + part_n + t,
                         tl.sum(dy[:, None] * h_t, axis=0), mask=mask_n)
                g = r + dy[:, None] * c_t[None, :]
                a = tl.exp(dt[:, None] * A)
                gx = g * a * h_prev  # through the decay exp(dt A)
                gb = tl.sum(g * b_t[None, :], axis=1)  # through dt B u
                ddt = tl.sum(gx * A, axis=1) + gb * u
                du = dt * gb
                if HAS_D:
                    du += skip * dy
                    dD_acc += dy * u
                dA_acc += gx * dt[:, None]
                tl.store(dB_ptr + part_n + t,
                         tl.sum(g * (dt * u)[:, None], axis=0), mask=mask_n)
                r = a * g
                if SOFTPLUS:  # softplus'(x) = sigmoid(x), e = exp(-|x|)
                    ddt *= tl.where(x >= 0, 1. / (1. + e), e / (1. + e))
                if HAS_BIAS:
                    dbias_acc += ddt
                tl.store(du_ptr + row + t, du.to(du_ptr.dtype.element_ty),
                         mask=mask_d)
                tl.store(ddelta_ptr + row + t,
                         ddt.to(ddelta_ptr.dtype.element_ty), mask=mask_d)
            tl.debug_barrier()  # reads done before the next chunk's writes
        # (B, D, N) and (B, D) partial sums over time
        tl.store(dA_ptr + (pid_b * dim + chan)[:, None] * state +
                 offs_n[None, :], dA_acc, mask=mask_dn)
        if HAS_D:
            tl.store(dD_ptr + pid_b * dim + chan, dD_acc, mask=mask_d)
        if HAS_BIAS:
            tl.store(dbias_ptr + pid_b * dim + chan, dbias_acc, mask=mask_d)

    return _fwd_kernel, _bwd_kernel


def _library_interpreted() -> Optional[bool]:
    """Whether Triton's own library (``tl.zeros``, ``tl.sum``, ...) was
    built for the interpreter, which ``triton`` decides when first imported;
    None when this Triton has no interpreter to tell."""
    try:
        import triton.language as tl
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:
        return None
    return isinstance(tl.zeros, InterpretedFunction)


def _check_library_mode(interpret: bool) -> None:
    """``RuntimeError`` unless kernels built now (``interpret``) match the
    mode of Triton's library: ``TRITON_INTERPRET`` must not change after
    ``triton`` is first imported."""
    if _library_interpreted() in (None, interpret):
        return
    now, then = ('1', 'unset') if interpret else ('unset', '1')
    raise RuntimeError(
        f'TRITON_INTERPRET is {now} but was {then} when triton was first '
        f'imported in this process, and triton does not switch modes after '
        f'that; set TRITON_INTERPRET before anything imports triton (e.g. '
        f'in the environment of the process)')


def _next_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _launch_config(dim: int, groups: int, state: int) -> dict:
    """Block sizes, warps and programs per group for the kernels."""
    dim_per_group = dim // groups
    block_n = _next_pow2(state)
    # tiles of at most 256 states, about 2 per thread: ptxas (sm_90) gave
    # the backward kernel ~250 registers at 16 x 16 with 1 warp, 96 with 4
    block_d = min(_next_pow2(dim_per_group), BLOCK_D_MAX,
                  max(1, 256 // block_n))
    return dict(
        BLOCK_D=block_d,
        BLOCK_N=block_n,
        num_warps=max(1, min(8, block_d * block_n // 64)),
        dim_per_group=dim_per_group,
        blocks_per_group=-(-dim_per_group // block_d))


def _bc_strides(x: Tensor) -> Tuple[int, int, int, int]:
    """(batch, group, state, time) element strides of B or C, 3-dim or 4."""
    if x.dim() == 3:
        return x.stride(0), 0, x.stride(1), x.stride(2)
    return tuple(x.stride())


class _TritonSelectiveScan(torch.autograd.Function):
    """The whole scan, D skip, ``delta_bias`` and softplus included.

    Inputs are those of :func:`selective_scan_triton` (u and delta
    contiguous) plus ``chunk``; between forward and backward it keeps the
    inputs and the state entering every chunk.
    """

    @staticmethod
    def forward(ctx, u: Tensor, delta: Tensor, A: Tensor, B: Tensor,
                C: Tensor, D: Optional[Tensor], delta_bias: Optional[Tensor],
                delta_softplus: bool, chunk: int) -> Tensor:
        fwd_kernel = _kernels(_interpret())[0]
        batch, dim, length = u.shape
        groups = 1 if B.dim() == 3 else B.shape[1]
        state = A.shape[1]
        acc = torch.float64 if u.dtype == torch.float64 else torch.float32
        cfg = _launch_config(dim, groups, state)
        num_chunks = -(-length // chunk)
        save = any(ctx.needs_input_grad[:7])
        y = torch.empty_like(u)
        starts = (u.new_empty(batch, dim, num_chunks, state, dtype=acc)
                  if save else y)
        grid = (batch, groups * cfg['blocks_per_group'])
        with _device_of(u):
            fwd_kernel[grid](
                u, delta, A, B, C, u if D is None else D,
                u if delta_bias is None else delta_bias, y, starts, dim,
                length, state, cfg['dim_per_group'],
                cfg['blocks_per_group'], num_chunks, *_bc_strides(B),
                *_bc_strides(C), HAS_D=D is not None,
                HAS_BIAS=delta_bias is not None,
                SOFTPLUS=bool(delta_softplus), SAVE=save, CHUNK=chunk,
                BLOCK_D=cfg['BLOCK_D'], BLOCK_N=cfg['BLOCK_N'],
                ACC=_tl_dtype(acc), num_warps=cfg['num_warps'])
        if save:
            ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, starts)
        ctx.delta_softplus, ctx.chunk = bool(delta_softplus), chunk
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: Tensor):
        u, delta, A, B, C, D, delta_bias, starts = ctx.saved_tensors
        bwd_kernel = _kernels(_interpret())[1]
        batch, dim, length = u.shape
        groups = 1 if B.dim() == 3 else B.shape[1]
        state = A.shape[1]
        acc = starts.dtype
        cfg = _launch_config(dim, groups, state)
        programs = groups * cfg['blocks_per_group']
        grad_y = grad_y.contiguous()
        du = torch.empty_like(u)
        ddelta = torch.empty_like(delta)
        scratch = u.new_empty(batch * programs, ctx.chunk + 1,
                              cfg['BLOCK_D'], cfg['BLOCK_N'], dtype=acc)
        dA = u.new_empty(batch, dim, state, dtype=acc)
        dB = u.new_empty(batch, groups, cfg['blocks_per_group'], state,
                         length, dtype=acc)
        dC = torch.empty_like(dB)
        dD = u.new_empty(batch, dim, dtype=acc) if D is not None else dA
        dbias = (u.new_empty(batch, dim, dtype=acc)
                 if delta_bias is not None else dA)
        with _device_of(u):
            bwd_kernel[(batch, programs)](
                u, delta, A, B, C, u if D is None else D,
                u if delta_bias is None else delta_bias, grad_y, starts,
                scratch, du, ddelta, dA, dB, dC, dD, dbias, dim, length,
                state, cfg['dim_per_group'], cfg['blocks_per_group'],
                starts.shape[2], *_bc_strides(B), *_bc_strides(C),
                HAS_D=D is not None, HAS_BIAS=delta_bias is not None,
                SOFTPLUS=ctx.delta_softplus, CHUNK=ctx.chunk,
                BLOCK_D=cfg['BLOCK_D'], BLOCK_N=cfg['BLOCK_N'],
                ACC=_tl_dtype(acc), num_warps=cfg['num_warps'])
        dB = dB.sum(2).to(B.dtype).view(B.shape)
        dC = dC.sum(2).to(C.dtype).view(C.shape)
        dA = dA.sum(0).to(A.dtype)
        dD = dD.sum(0).to(D.dtype) if D is not None else None
        dbias = (dbias.sum(0).to(delta_bias.dtype)
                 if delta_bias is not None else None)
        return du, ddelta, dA, dB, dC, dD, dbias, None, None


def _tl_dtype(dtype: torch.dtype):
    import triton.language as tl
    return tl.float64 if dtype == torch.float64 else tl.float32


def _device_of(x: Tensor):
    """Launch on ``x``'s GPU (Triton uses the current CUDA device)."""
    if x.is_cuda:
        return torch.cuda.device(x.device)
    import contextlib
    return contextlib.nullcontext()


def selective_scan_triton(u: Tensor,
                          delta: Tensor,
                          A: Tensor,
                          B: Tensor,
                          C: Tensor,
                          D: Optional[Tensor] = None,
                          delta_bias: Optional[Tensor] = None,
                          delta_softplus: bool = False) -> Tensor:
    """The selective scan by Triton kernels; ``selective_scan_fn``'s
    signature, semantics and gradients.

    Args:
        u (Tensor): r(B D L) input.
        delta (Tensor): r(B D L) step size before bias and softplus.
        A (Tensor): r(D N) state matrix (diagonal per channel).
        B (Tensor): r(B G N L) or r(B N L), G dividing D; channel ``d``
            reads group ``d // (D / G)``.
        C (Tensor): r(B G N L) or r(B N L).
        D (Tensor, optional): r(D) skip connection.
        delta_bias (Tensor, optional): r(D) added to ``delta`` (before the
            softplus when ``delta_softplus``).
        delta_softplus (bool): ``dt = softplus(delta + delta_bias)``.

    Returns:
        Tensor: r(B D L) ``y`` in ``u``'s dtype; float32 state and
        accumulation (float64 for float64 ``u``). Differentiable with
        respect to every tensor argument (first order only).

    Raises:
        RuntimeError: Triton is not installed (the message says how to get
            it), or the inputs are on the CPU without ``TRITON_INTERPRET=1``.
        ValueError: Shapes or devices do not match the contract.

    Note:
        Between forward and backward it keeps the inputs and one
        (B, D, N) state per :data:`CHUNK` steps; the backward pass
        recomputes the states chunk by chunk.

    Examples:
        >>> # on a GPU, or on CPU tensors with TRITON_INTERPRET=1
        >>> u, delta = torch.randn(2, 8, 100), torch.rand(2, 8, 100)
        >>> A = -torch.rand(8, 4)
        >>> B, C = torch.randn(2, 2, 4, 100), torch.randn(2, 2, 4, 100)
        >>> selective_scan_triton(u, delta, A, B, C).shape
        torch.Size([2, 8, 100])
    """
    check_scan_inputs(u, delta, A, B, C, D, delta_bias)
    tensors = dict(u=u, delta=delta, A=A, B=B, C=C, D=D,
                   delta_bias=delta_bias)
    devices = {k: v.device for k, v in tensors.items() if v is not None}
    if len(set(devices.values())) > 1:
        raise ValueError(f'selective_scan_triton: all tensors must be on one '
                         f'device, but got {devices}')
    if not triton_available():
        raise RuntimeError(f'selective_scan_triton needs Triton, which is '
                           f'not importable; {INSTALL_HINT}')
    if u.device.type == 'cpu' and not _interpret():
        raise RuntimeError(
            'selective_scan_triton runs on GPU tensors; CPU tensors run only '
            "under Triton's interpreter (set TRITON_INTERPRET=1 before the "
            'first call; for correctness checks, it is slow). On the CPU use '
            'selective_scan_cpp or selective_scan_chunked instead')
    return _TritonSelectiveScan.apply(u.contiguous(), delta.contiguous(),
                                      A.contiguous(), B, C,
                                      None if D is None else D.contiguous(),
                                      None if delta_bias is None else
                                      delta_bias.contiguous(),
                                      delta_softplus, CHUNK)


__all__ = ['selective_scan_triton', 'triton_available', 'triton_interpreted',
           'CHUNK']

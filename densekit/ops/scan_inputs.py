"""Argument checks shared by every selective-scan implementation (the
pure-PyTorch paths in :mod:`densekit.models.layers.selective_scan`, the C++
and Triton kernels), so each rejects bad shapes with the same message.
"""
from typing import Optional

from torch import Tensor

__all__ = ['check_scan_inputs']


def _shape(x: Optional[Tensor]) -> str:
    return 'None' if x is None else str(tuple(x.shape))


def check_scan_inputs(u: Tensor, delta: Tensor, A: Tensor, B: Tensor,
                      C: Tensor, D: Optional[Tensor],
                      delta_bias: Optional[Tensor]) -> None:
    """Raise ``ValueError``/``TypeError`` naming the argument that is off."""
    got = (f'got u{_shape(u)}, delta{_shape(delta)}, A{_shape(A)}, '
           f'B{_shape(B)}, C{_shape(C)}, D{_shape(D)}, '
           f'delta_bias{_shape(delta_bias)}')
    if u.dim() != 3:
        raise ValueError(f'u must be (batch, D, L), but {got}')
    batch, dim, length = u.shape
    if min(batch, dim, length) < 1:
        raise ValueError(f'u must be (batch, D, L) with batch, D and L >= 1, '
                         f'but {got}')
    if tuple(delta.shape) != tuple(u.shape):
        raise ValueError(f'delta must have the shape of u (batch, D, L) = '
                         f'{tuple(u.shape)}, but {got}')
    if A.dim() != 2 or A.shape[0] != dim or A.shape[1] < 1:
        raise ValueError(f'A must be (D, N) with D = {dim} from u and N >= 1, '
                         f'but {got}')
    if A.is_complex():
        raise TypeError('A must be real; complex A (mamba\'s c(D N)) is not '
                        f'supported by selective_scan, but got A.dtype='
                        f'{A.dtype}')
    state = A.shape[1]
    for name, x in (('B', B), ('C', C)):
        if x.dim() == 3:
            ok = tuple(x.shape) == (batch, state, length)
        elif x.dim() == 4:
            ok = (x.shape[0] == batch and tuple(x.shape[2:]) == (state, length)
                  and x.shape[1] > 0 and dim % x.shape[1] == 0)
        else:
            ok = False
        if not ok:
            raise ValueError(
                f'{name} must be (batch, G, N, L) with G dividing D, or '
                f'(batch, N, L); here batch={batch}, D={dim}, N={state}, '
                f'L={length}, but {got}')
    if B.dim() == 4 and C.dim() == 4 and B.shape[1] != C.shape[1]:
        raise ValueError(f'B and C must have the same number of groups G, '
                         f'but {got}')
    for name, x in (('D', D), ('delta_bias', delta_bias)):
        if x is not None and tuple(x.shape) != (dim, ):
            raise ValueError(f'{name} must be ({dim},) (one value per channel '
                             f'of u) or None, but {got}')

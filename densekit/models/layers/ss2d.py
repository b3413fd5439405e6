"""SS2D: the 2D selective-scan operator of Mamba YOLO's ODSS block.

Mamba YOLO (Wang et al., arXiv:2406.05835, section "ODSSBlock": SS2D with
its scan expanding / S6 block / scan merge steps), taken from VMamba (Liu et
al. 2024, "2D-Selective-Scan"). Data flow for a (B, C, H, W) input,
``D = ssm_ratio * C``::

    in_proj (1x1) -> split x, z                     (B, D, H, W) each
    x -> depthwise 3x3 conv -> GELU
      -> cross_scan                                 (B, 4, D, L)
      -> per route k: x_proj_weight[k] gives (dt, B, C), dt_projs_weight[k]
         lifts dt from rank R to D
      -> selective scan, A = -exp(A_logs), skip D = Ds, softplus(dt + bias)
      -> cross_merge (sum of the 4 routes)          (B, D, L)
      -> out_norm (LayerNorm over D)
    y * GELU(z) -> out_proj (1x1)                   (B, C, H, W)

Parameter names, shapes and the initialisation follow the official module
(``HZAI-ZJNU/Mamba-YOLO``, ``ultralytics/nn/modules/mamba_yolo.py``, class
``SS2D`` with ``forward_type='v2'``, ``ssm_rank_ratio == ssm_ratio``), so
official weights load after key renaming only
(the backbones' ``convert_mamba_yolo``).
"""
import math
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from densekit.ops.ss2d_scan import ss2d_scan_available, ss2d_scan_cpp
from .cross_scan import NUM_DIRECTIONS, cross_merge, cross_scan
from .selective_scan import (_exporting, check_impl, default_impl,
                             selective_scan_fn)


class SS2D(BaseModule):
    """2D selective scan over four routes with gated in/out projections.

    Args:
        d_model (int): Input and output channels C.
        d_state (int): SSM state size N per channel. Defaults to 16.
        ssm_ratio (float): Inner channels ``D = int(ssm_ratio * d_model)``.
            Defaults to 2.0.
        dt_rank (int | str): Rank R of the step-size projection; ``'auto'``
            is ``ceil(d_model / 16)``. Defaults to 'auto'.
        d_conv (int): Kernel of the depthwise conv before the scan; values
            below 2 disable it. Defaults to 3.
        conv_bias (bool): Bias of the depthwise conv. Defaults to True.
        bias (bool): Bias of ``in_proj``/``out_proj``. Defaults to False.
        dropout (float): Dropout after ``out_proj``. Defaults to 0.
        scan_impl (str, optional): The selective scan implementation
            (``impl`` of :func:`~.selective_scan.selective_scan_fn`:
            ``'auto'``, ``'cpp'``, ``'cuda'``, ``'triton'``, ``'pytorch'``,
            ``'reference'``); settable afterwards (``module.scan_impl``).
            Defaults to None: the process default (``'auto'``).
        fused_scan (bool): Where the scan runs densekit's C++ kernel (CPU
            tensors, ``scan_impl`` auto / cpp), run the whole cross-scan,
            scan and cross-merge as one op
            (:func:`densekit.ops.ss2d_scan.ss2d_scan_cpp`: no cross-scan
            copies, step size and skip inside, routes merged into the
            LayerNorm's layout; same results to rounding). Settable
            afterwards. Defaults to True.

    Note:
        Initialisation is the official one (VMamba's "simple" init): ``Ds``
        ones, ``A_logs`` zeros (A = -1 for every state), ``dt_projs_weight``
        and ``dt_projs_bias`` standard normal, ``x_proj_weight`` as
        ``nn.Linear``. The official module accepts an ``initialize`` argument
        but ignores it, so this is what the published models trained with.
    """

    def __init__(self,
                 d_model: int,
                 *,
                 d_state: int = 16,
                 ssm_ratio: float = 2.0,
                 dt_rank: Union[int, str] = 'auto',
                 d_conv: int = 3,
                 conv_bias: bool = True,
                 bias: bool = False,
                 dropout: float = 0.0,
                 scan_impl: Optional[str] = None,
                 fused_scan: bool = True,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        # which selective scan runs (selective_scan_fn's ``impl``); None:
        # the process default, 'auto' unless a tool set it
        self.scan_impl = None if scan_impl is None else check_impl(scan_impl)
        self.fused_scan = fused_scan
        if dt_rank != 'auto' and not (isinstance(dt_rank, int)
                                      and dt_rank > 0):
            raise ValueError(
                f"SS2D: dt_rank must be 'auto' or a positive int, but got "
                f'{dt_rank!r}')
        d_inner = int(ssm_ratio * d_model)
        self.d_model = d_model
        self.d_inner = d_inner
        self.d_state = d_state
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == 'auto' \
            else dt_rank
        k = NUM_DIRECTIONS

        self.in_proj = nn.Conv2d(d_model, 2 * d_inner, 1, bias=bias)
        self.act = nn.GELU()
        self.conv2d = nn.Conv2d(
            d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2,
            groups=d_inner, bias=conv_bias) if d_conv > 1 else None
        # per route: (dt_rank + 2 N) x D projection producing dt, B and C
        self.x_proj_weight = nn.Parameter(
            torch.empty(k, self.dt_rank + 2 * d_state, d_inner))
        bound = 1 / math.sqrt(d_inner)  # nn.Linear's default init
        nn.init.uniform_(self.x_proj_weight, -bound, bound)
        self.dt_projs_weight = nn.Parameter(
            torch.randn(k, d_inner, self.dt_rank))
        self.dt_projs_bias = nn.Parameter(torch.randn(k, d_inner))
        self.A_logs = nn.Parameter(torch.zeros(k * d_inner, d_state))
        self.Ds = nn.Parameter(torch.ones(k * d_inner))
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Conv2d(d_inner, d_model, 1, bias=bias)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def scan(self, x: Tensor) -> Tensor:
        """Cross-scan, selective scan, cross-merge and ``out_norm``.

        Dtypes follow the official ``cross_selective_scan``: ``u``, ``delta``,
        ``B`` and ``C`` stay in the dtype of ``x`` (the model's), ``A``,
        ``D`` and the ``delta`` bias are taken in float32, and the scan
        returns ``x``'s dtype (computed with a float32 state for fp16/bf16,
        as mamba's kernels do), so ``out_norm`` runs in the model's dtype.
        While training, ``u``/``delta``/``B``/``C`` are cast to float32
        first (the official ``force_fp32 = self.training``). float64 is
        never lowered: in a float64 model ``A``, ``D`` and the bias stay
        float64 (the official ``.to(torch.float)`` would round them to
        float32; the official CUDA kernels have no float64 at all).

        Args:
            x (Tensor): (B, D, H, W), D = ``self.d_inner``.

        Returns:
            Tensor: (B, D, H, W) in ``x``'s dtype, the sum of the four
            routes, normalised over D.
        """
        batch, dim, height, width = x.shape
        length = height * width
        k, rank, n = NUM_DIRECTIONS, self.dt_rank, self.d_state
        # float32, or float64 for a float64 model (never lower)
        param_dtype = torch.promote_types(x.dtype, torch.float32)
        A = -torch.exp(self.A_logs.to(param_dtype))  # (K * D, N)
        Ds = self.Ds.to(param_dtype)
        bias = self.dt_projs_bias.reshape(-1).to(param_dtype)
        if self._use_fused_scan(x):
            # the projections are pointwise: computed in map order, each
            # route's inputs are a permutation the op applies when reading
            xf = x.flatten(2)  # (B, D, L)
            x_dbl = torch.einsum('bdl,kcd->bkcl', xf, self.x_proj_weight)
            dts, bs, cs = torch.split(x_dbl, [rank, n, n], dim=2)
            dts = torch.einsum('bkrl,kdr->bkdl', dts, self.dt_projs_weight)
            y = ss2d_scan_cpp(xf, dts, A, bs, cs, Ds, bias, height,
                              width)  # (B, L, D), float32 / float64
        else:
            xs = cross_scan(x)  # (B, K, D, L)
            x_dbl = torch.einsum('bkdl,kcd->bkcl', xs, self.x_proj_weight)
            dts, bs, cs = torch.split(x_dbl, [rank, n, n], dim=2)
            dts = torch.einsum('bkrl,kdr->bkdl', dts, self.dt_projs_weight)
            scan_inputs = (xs.reshape(batch, k * dim, length),
                           dts.reshape(batch, k * dim, length),
                           bs.contiguous(), cs.contiguous())  # (B,K,N,L)
            if self.training:  # official force_fp32 (forward_type 'v2')
                scan_inputs = tuple(t.to(param_dtype) for t in scan_inputs)
            us, dts, bs, cs = scan_inputs
            ys = selective_scan_fn(
                us, dts, A, bs, cs, D=Ds, delta_bias=bias,
                delta_softplus=True,
                impl=self.scan_impl)  # (B, K * D, L), dtype of us
            y = cross_merge(ys.reshape(batch, k, dim, length), height, width)
            y = y.transpose(1, 2)  # (B, L, D)
        # y is float32 while training a low-precision model (and from the
        # fused op), where the norm would otherwise see mixed dtypes
        # (autocast casts it anyway)
        y = y.to(self.out_norm.weight.dtype)
        y = self.out_norm(y).to(x.dtype)  # (B, L, D)
        return y.transpose(1, 2).reshape(batch, dim, height, width)

    def _use_fused_scan(self, x: Tensor) -> bool:
        """The fused op runs where the C++ scan would: CPU tensors,
        ``scan_impl`` auto / cpp, not while tracing or exporting."""
        if not self.fused_scan or x.device.type != 'cpu' or \
                not ss2d_scan_available() or _exporting():
            return False
        impl = self.scan_impl if self.scan_impl is not None else \
            default_impl()
        return impl in ('auto', 'cpp')

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (Tensor): (B, C, H, W), any H and W.

        Returns:
            Tensor: (B, C, H, W).
        """
        x, z = self.in_proj(x).chunk(2, dim=1)
        if self.conv2d is not None:
            x = self.conv2d(x)
        y = self.scan(self.act(x)) * self.act(z)
        return self.dropout(self.out_proj(y))

"""CBNetV2: a composite of identical backbones (Dense Higher-Level
Composition).

Liang et al., "CBNet: A Composite Backbone Network Architecture for Object
Detection" (IEEE TIP 2022, CBNetV2); official code ``VDIGPKU/CBNetV2`` (an
mmdet 2.14 fork, Apache-2.0): ``mmdet/models/backbones/cbnet.py``
(``CBResNet``, ``CBRes2Net``, ``CBSwinTransformer``). Published (COCO
val2017): Faster R-CNN Dual-ResNet50 1x 40.8 box AP, 69M params; Mask R-CNN
Dual-Swin-T 3x 50.2 box / 44.5 mask AP, 76M params.

densekit's :class:`CBNet` is one wrapper for any backbone whose stages it can
walk one by one (:func:`stage_access` says which): densekit
:class:`~densekit.models.backbones.BaseBackbone` subclasses, mmdet's
``ResNet`` family (``ResNetV1d``, ``ResNeXt``, densekit's ``WideResNet``) and
mmdet's ``SwinTransformer``.

Units. Every backbone is seen as *units* ``0..U-1``: unit 0 is the stem
(ResNet's conv1/norm1/relu/maxpool or deep stem, Swin's patch embedding,
a BaseBackbone's ``stages[0]``), units ``1..U-1`` its stages (ResNet's
``layer1..4``, Swin's ``stages[0..3]``, a BaseBackbone's ``stages[1:]``).
Each unit maps the map entering it to (the map entering the next unit, the
map it emits); the two differ only for Swin, whose stages downsample at
their end and normalise what they emit.

Composition. With ``d = cb_del_stages``, backbone ``k+1`` (``k >= 0``)

* drops units ``0..d`` (the stem and the first ``d`` stages) and reuses
  backbone ``k``'s maps there (the official ``del_layers``);
* before each of its units ``u >= d + 1`` adds to the map entering ``u``::

      sum_{t >= u} interpolate(norm_ut(conv1x1_ut(o_t^k)), size, 'nearest')

  where ``o_t^k`` is what unit ``t`` of backbone ``k`` emitted (higher or
  equal level), the 1x1 conv maps its channels to those entering ``u`` and
  ``size`` is the spatial size of the map entering ``u``.

The official classes count ``cb_del_stages`` differently: ``CBResNet``'s
``cb_del_stages=1`` drops the stem and ``layer1`` (densekit's 1 too), while
``CBSwinTransformer``'s default ``cb_del_stages=1`` drops only the patch
embedding (densekit's 0). With ``cb_zero_init`` the last layer of every link
(the norm, or the conv without norm) starts at zero, so that at init each
backbone computes what a single backbone computes from the maps it reuses:
with identical copies (pretrained) the lead's outputs equal one backbone's.
"""
import copy
import math
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor

from densekit.registry import MODELS
from .base_backbone import BaseBackbone

#: The wrapper's name in errors.
_OWNER = 'densekit.CBNet'


def _is_pretrained(init_cfg) -> bool:
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return any(isinstance(c, dict) and c.get('type') == 'Pretrained'
               for c in cfgs)


class _StageAccess:
    """How :class:`CBNet` walks one backbone family unit by unit.

    Methods take the backbone module as an argument (an access object holds
    no module, so deep copies of the wrapper, e.g. EMA, stay consistent).
    """

    def default_norm_cfg(self, backbone: nn.Module) -> Optional[dict]:
        """Norm of the links when ``cb_norm_cfg='auto'``: BN."""
        return dict(type='BN')

    def num_units(self, backbone: nn.Module) -> int:
        raise NotImplementedError

    def out_units(self, backbone: nn.Module) -> Tuple[int, ...]:
        """Unit index of each returned output, in ``out_indices`` order."""
        raise NotImplementedError

    def in_channels(self, backbone: nn.Module, unit: int) -> int:
        """Channels of the map entering ``unit`` (``unit >= 1``)."""
        raise NotImplementedError

    def out_channels(self, backbone: nn.Module, unit: int) -> int:
        """Channels of the map ``unit`` emits."""
        raise NotImplementedError

    def feature_info(self, backbone: nn.Module) -> List[dict]:
        raise NotImplementedError

    def run(self, backbone: nn.Module, unit: int,
            x: Tensor) -> Tuple[Tensor, Tensor]:
        """Args: x (Tensor): the (N, C, H, W) map entering ``unit`` (the
        images for unit 0).

        Returns:
            tuple[Tensor, Tensor]: (map entering ``unit + 1``, map ``unit``
            emits), both (N, C, H, W).
        """
        raise NotImplementedError

    def finish(self, backbone: nn.Module, outs: Tuple[Tensor, ...],
               image: Tensor) -> Tuple[Tensor, ...]:
        """The returned maps from the units' outputs; unchanged here."""
        return outs

    def drop(self, backbone: nn.Module, unit: int) -> None:
        """Replace ``unit``'s modules (and its output norm) by
        ``nn.Identity`` so its parameters are gone but the backbone's own
        ``train``/``_freeze_stages``/``init_weights`` still run."""
        raise NotImplementedError


class _BaseBackboneAccess(_StageAccess):
    """densekit :class:`BaseBackbone`: unit ``u`` is ``stages[u]`` run by
    :meth:`BaseBackbone.forward_stage`; outputs go through
    :meth:`BaseBackbone.forward_stage_output`."""

    def num_units(self, backbone):
        return len(backbone.stages)

    def out_units(self, backbone):
        return tuple(backbone.out_indices)

    def in_channels(self, backbone, unit):
        return backbone.stage_channels[unit - 1]

    def out_channels(self, backbone, unit):
        return backbone.stage_channels[unit]

    def feature_info(self, backbone):
        return backbone.feature_info

    def run(self, backbone, unit, x):
        x = backbone.forward_stage(unit, x)
        out = backbone.forward_stage_output(unit, x) \
            if unit in backbone.out_indices else x
        return x, out

    def finish(self, backbone, outs, image):
        """Maps shorter than ceil(H / stride) zero-padded at the bottom and
        right, as ``BaseBackbone`` subclasses whose stages return short maps
        do in their ``forward`` (ResNetViT's stride-4 skip); a no-op for the
        others."""
        size = image.shape[2:]
        padded = []
        for out, info in zip(outs, backbone.feature_info):
            pad_h = math.ceil(size[0] / info['stride']) - out.shape[2]
            pad_w = math.ceil(size[1] / info['stride']) - out.shape[3]
            if pad_h > 0 or pad_w > 0:
                out = F.pad(out, (0, max(pad_w, 0), 0, max(pad_h, 0)))
            padded.append(out)
        return tuple(padded)

    def drop(self, backbone, unit):
        backbone.stages[unit] = nn.Identity()
        if isinstance(getattr(backbone, f'norm{unit}', None), nn.Module):
            setattr(backbone, f'norm{unit}', nn.Identity())


class _ResNetAccess(_StageAccess):
    """mmdet ``ResNet`` (and subclasses): unit 0 is the stem
    (``conv1``/``norm1``/``relu`` or the deep ``stem``, then ``maxpool``),
    unit ``u`` is ``res_layers[u - 1]``."""

    def default_norm_cfg(self, backbone):
        return dict(backbone.norm_cfg)  # the official: the ResNet's norm

    def num_units(self, backbone):
        return len(backbone.res_layers) + 1

    def out_units(self, backbone):
        return tuple(i + 1 for i in backbone.out_indices)

    def out_channels(self, backbone, unit):
        if unit == 0:
            return backbone.stem_channels
        return backbone.base_channels * 2**(unit - 1) * \
            backbone.block.expansion

    def in_channels(self, backbone, unit):
        return self.out_channels(backbone, unit - 1)

    def feature_info(self, backbone):
        info = getattr(backbone, 'feature_info', None)
        if info is not None:
            return list(info)
        info, stride = [], 4  # stride-2 stem conv and stride-2 max pool
        for i in range(len(backbone.res_layers)):
            stride *= backbone.strides[i]
            if i in backbone.out_indices:
                info.append(dict(channels=self.out_channels(backbone, i + 1),
                                 stride=stride))
        return info

    def run(self, backbone, unit, x):
        if unit == 0:
            if backbone.deep_stem:
                x = backbone.stem(x)
            else:
                x = backbone.relu(backbone.norm1(backbone.conv1(x)))
            x = backbone.maxpool(x)
        else:
            x = getattr(backbone, backbone.res_layers[unit - 1])(x)
        return x, x

    def drop(self, backbone, unit):
        if unit > 0:
            setattr(backbone, backbone.res_layers[unit - 1], nn.Identity())
        elif backbone.deep_stem:
            backbone.stem = nn.Identity()
        else:
            backbone.conv1 = nn.Identity()
            setattr(backbone, backbone.norm1_name, nn.Identity())


class _SwinAccess(_StageAccess):
    """mmdet ``SwinTransformer``: unit 0 is the patch embedding (+ absolute
    position embedding and dropout), unit ``u`` is ``stages[u - 1]``; a unit
    emits its pre-downsampling tokens, through ``norm{u-1}`` for outputs,
    and passes the downsampled ones on."""

    def default_norm_cfg(self, backbone):
        return None  # the official: a 1x1 conv with bias, no norm

    def num_units(self, backbone):
        return len(backbone.stages) + 1

    def out_units(self, backbone):
        return tuple(i + 1 for i in backbone.out_indices)

    def out_channels(self, backbone, unit):
        return backbone.num_features[max(unit - 1, 0)]

    def in_channels(self, backbone, unit):
        # a stage's input already has its own width (the previous stage
        # ends with the patch merging)
        return backbone.num_features[unit - 1]

    def feature_info(self, backbone):
        info = []
        stride = _stride_of(backbone.patch_embed.projection)
        for i in range(len(backbone.stages)):
            if i > 0:  # the previous stage's patch merging
                stride *= _stride_of(backbone.stages[i - 1].downsample.sampler)
            if i in backbone.out_indices:
                info.append(dict(channels=backbone.num_features[i],
                                 stride=stride))
        return info

    @staticmethod
    def _to_map(tokens: Tensor, hw: Sequence[int]) -> Tensor:
        n, _, c = tokens.shape
        return tokens.transpose(1, 2).reshape(n, c, *hw)

    def run(self, backbone, unit, x):
        if unit == 0:
            tokens, hw = backbone.patch_embed(x)
            if backbone.use_abs_pos_embed:
                tokens = tokens + backbone.absolute_pos_embed
            tokens = backbone.drop_after_pos(tokens)
            x = self._to_map(tokens, hw)
            return x, x
        i = unit - 1
        tokens = x.flatten(2).transpose(1, 2)
        down, down_hw, out, out_hw = backbone.stages[i](tokens, x.shape[2:])
        if i in backbone.out_indices:
            out = getattr(backbone, f'norm{i}')(out)
        return self._to_map(down, down_hw), self._to_map(out, out_hw)

    def drop(self, backbone, unit):
        if unit == 0:
            backbone.patch_embed = nn.Identity()
            if backbone.use_abs_pos_embed:
                del backbone.absolute_pos_embed
                backbone.use_abs_pos_embed = False
            return
        backbone.stages[unit - 1] = nn.Identity()
        if isinstance(getattr(backbone, f'norm{unit - 1}', None), nn.Module):
            setattr(backbone, f'norm{unit - 1}', nn.Identity())


def _stride_of(layer: nn.Module) -> int:
    stride = layer.stride
    return int(stride[0] if isinstance(stride, (tuple, list)) else stride)


def stage_access(backbone: nn.Module) -> _StageAccess:
    """The unit-by-unit access for ``backbone``'s family.

    Raises:
        ValueError: when the backbone has none of the known structures,
            naming its type and what is missing.
    """
    if isinstance(backbone, BaseBackbone):
        return _BaseBackboneAccess()
    has = {name: hasattr(backbone, name) for name in (
        'stages', 'patch_embed', 'num_features', 'drop_after_pos',
        'res_layers', 'maxpool', 'block')}
    if has['stages'] and has['patch_embed'] and has['num_features'] and \
            has['drop_after_pos']:
        return _SwinAccess()
    if has['res_layers'] and has['maxpool'] and has['block']:
        return _ResNetAccess()
    raise ValueError(
        f'{_OWNER}: backbone {type(backbone).__name__!r} exposes neither '
        '`stages` (densekit BaseBackbone) nor mmdet ResNet\'s `res_layers` '
        '(+ `maxpool`, `block`) nor mmdet SwinTransformer\'s `patch_embed` + '
        '`stages` (+ `num_features`, `drop_after_pos`), so its stages cannot '
        'be composed; wrap a densekit backbone, mmdet ResNet (or a subclass) '
        'or mmdet SwinTransformer')


@MODELS.register_module()
class CBNet(BaseModule):
    """Composite backbone: ``num_backbones`` copies of one backbone linked by
    Dense Higher-Level Composition (CBNetV2); see the module docstring for
    the units and links.

    Args:
        backbone (dict | nn.Module): The backbone config (every copy is
            built from it: independent copies, same config) or a built
            module (deep-copied). Any densekit backbone, mmdet ``ResNet``
            (and subclasses) or ``SwinTransformer``; a pretrained
            ``init_cfg`` in it goes into every copy.
        num_backbones (int): Copies, >= 1. Defaults to 2 (the "Dual-"
            models).
        cb_del_stages (int): Stages after the stem that backbones ``2..n``
            drop and take from the previous backbone (the stem is always
            dropped); in ``0..U-2`` for a backbone of ``U`` units. ResNet's
            official value is 1, Swin's official default is densekit's 0.
        cb_zero_init (bool): Start every link's last layer at zero.
        cb_norm_cfg (dict | None | str): Norm after each link's 1x1 conv;
            ``'auto'``: the official choice, the backbone's ``norm_cfg`` for
            mmdet ResNet, BN for densekit backbones, none (conv with bias)
            for Swin.
        cb_norm_eval (bool): Keep the links' BatchNorms in eval mode, as the
            official ``train()`` does (their running statistics stay at
            their initial 0/1: a learned per-channel affine).
        cb_same_width_identity (bool): Use ``nn.Identity`` instead of a 1x1
            conv for links between equal widths, as the official
            ``CBSwinTransformer``. Such links are not zero at init, so the
            lead then differs from a single backbone from the start.

    Forward returns a tuple with one tuple of maps per backbone, **lead
    last**: ``outs[k][i]`` is backbone ``k``'s output ``i``, (N, C_i, H / s_i,
    W / s_i) with C_i, s_i as in :attr:`feature_info` (the inner
    backbone's). Wrap the neck in :class:`densekit.CBFPN` (it runs on every
    backbone in training and on the lead only at test).

    Examples:
        >>> import torch
        >>> cb = CBNet(backbone=dict(type='mmdet.ResNet', depth=18,
        ...                          base_channels=8, stem_channels=8))
        >>> outs = cb(torch.rand(1, 3, 64, 64))
        >>> len(outs), [tuple(o.shape) for o in outs[-1]]
        (2, [(1, 8, 16, 16), (1, 16, 8, 8), (1, 32, 4, 4), (1, 64, 2, 2)])
    """

    def __init__(self,
                 *,
                 backbone: Union[dict, nn.Module],
                 num_backbones: int = 2,
                 cb_del_stages: int = 1,
                 cb_zero_init: bool = True,
                 cb_norm_cfg: Union[dict, None, str] = 'auto',
                 cb_norm_eval: bool = True,
                 cb_same_width_identity: bool = False) -> None:
        super().__init__()
        if not isinstance(num_backbones, int) or num_backbones < 1:
            raise ValueError(f'{_OWNER}: num_backbones must be an int >= 1, '
                             f'but got {num_backbones!r}')
        self.num_backbones = num_backbones
        self.cb_del_stages = cb_del_stages
        self.cb_zero_init = cb_zero_init
        self.cb_norm_eval = cb_norm_eval
        self.backbones = nn.ModuleList()
        for k in range(num_backbones):
            if isinstance(backbone, nn.Module):
                self.backbones.append(
                    backbone if k == 0 else copy.deepcopy(backbone))
            else:
                self.backbones.append(MODELS.build(copy.deepcopy(backbone)))
        first = self.backbones[0]
        self._access = stage_access(first)
        num_units = self._access.num_units(first)
        if not isinstance(cb_del_stages, int) or \
                not 0 <= cb_del_stages <= num_units - 2:
            raise ValueError(
                f'{_OWNER}: cb_del_stages must be in 0..{num_units - 2} for '
                f'{type(first).__name__} (a stem and {num_units - 1} '
                f'stages), but got {cb_del_stages!r}')
        self.num_units = num_units
        self.out_units = self._access.out_units(first)
        for other in self.backbones[1:]:
            for unit in range(cb_del_stages + 1):
                self._access.drop(other, unit)
        if cb_norm_cfg == 'auto':
            cb_norm_cfg = self._access.default_norm_cfg(first)
        elif cb_norm_cfg is not None and not isinstance(cb_norm_cfg, dict):
            raise TypeError(f"{_OWNER}: cb_norm_cfg must be a dict, None or "
                            f"'auto', but got {cb_norm_cfg!r}")
        # links[f'unit{u}'][t - u]: backbone k's unit-t output -> the map
        # entering unit u of backbone k + 1
        self.links = nn.ModuleDict()
        if num_backbones > 1:
            for unit in range(cb_del_stages + 1, num_units):
                c_in = self._access.in_channels(first, unit)
                self.links[f'unit{unit}'] = nn.ModuleList(
                    self._make_link(self._access.out_channels(first, src),
                                    c_in, cb_norm_cfg,
                                    cb_same_width_identity)
                    for src in range(unit, num_units))

    @staticmethod
    def _make_link(c_src: int, c_dst: int, norm_cfg: Optional[dict],
                   same_width_identity: bool) -> nn.Module:
        if same_width_identity and c_src == c_dst:
            return nn.Identity()
        layers = [('conv', nn.Conv2d(c_src, c_dst, 1,
                                     bias=norm_cfg is None))]
        if norm_cfg is not None:
            layers.append(('norm', build_norm_layer(norm_cfg, c_dst)[1]))
        return nn.Sequential(OrderedDict(layers))

    # ------------------------------------------------------------ contract
    @property
    def out_indices(self) -> Tuple[int, ...]:
        return tuple(self.backbones[0].out_indices)

    @property
    def feature_info(self) -> List[dict]:
        """The inner backbone's: ``[dict(channels, stride)]`` per output."""
        return self._access.feature_info(self.backbones[0])

    @property
    def out_channels(self) -> List[int]:
        return [info['channels'] for info in self.feature_info]

    @property
    def out_strides(self) -> List[int]:
        return [info['stride'] for info in self.feature_info]

    # -------------------------------------------------------------- forward
    def _feed(self, unit: int, prev_outs: Dict[int, Tensor],
              x: Tensor) -> Tensor:
        """Composite input of ``unit``: the sum of the linked higher-level
        outputs of the previous backbone, resized to ``x``'s size."""
        for src, link in enumerate(self.links[f'unit{unit}'], start=unit):
            feed = link(prev_outs[src])
            if feed.shape[2:] != x.shape[2:]:
                feed = F.interpolate(feed, size=x.shape[2:], mode='nearest')
            x = x + feed
        return x

    def forward(self, x: Tensor) -> Tuple[Tuple[Tensor, ...], ...]:
        """Args: x (Tensor): images, (N, C_in, H, W).

        Returns:
            tuple[tuple[Tensor]]: ``num_backbones`` tuples (lead last), each
            with one (N, C_i, H / s_i, W / s_i) map per ``out_indices``
            entry.
        """
        results = []
        prev_next: Dict[int, Tensor] = {}
        prev_outs: Dict[int, Tensor] = {}
        last_out = max(self.out_units)
        for k, backbone in enumerate(self.backbones):
            lead = k == self.num_backbones - 1
            # assisting backbones feed every unit of the next one
            stop = last_out + 1 if lead else self.num_units
            nexts: Dict[int, Tensor] = {}
            outs: Dict[int, Tensor] = {}
            h = x
            for unit in range(stop):
                if k > 0 and unit <= self.cb_del_stages:
                    nexts[unit], outs[unit] = prev_next[unit], prev_outs[unit]
                else:
                    if k > 0:
                        h = self._feed(unit, prev_outs, h)
                    nexts[unit], outs[unit] = self._access.run(
                        backbone, unit, h)
                h = nexts[unit]
            results.append(self._access.finish(
                backbone, tuple(outs[u] for u in self.out_units), x))
            prev_next, prev_outs = nexts, outs
        return tuple(results)

    # ----------------------------------------------------- init and train
    def init_weights(self) -> None:
        """Every copy gets its ``init_cfg``: copy 0 runs its own
        ``init_weights`` (random, or the checkpoint); with a pretrained
        ``init_cfg`` the other copies take copy 0's freshly loaded weights
        (the same checkpoint, as the official loads it into each, read
        once), otherwise they initialise themselves independently. Then
        the links' last layers are zeroed (``cb_zero_init``)."""
        first = self.backbones[0]
        if hasattr(first, 'init_weights'):
            first.init_weights()
        pretrained = _is_pretrained(getattr(first, 'init_cfg', None))
        for other in self.backbones[1:]:
            if pretrained:
                other.load_state_dict(first.state_dict(), strict=False)
            elif hasattr(other, 'init_weights'):
                other.init_weights()
        if self.cb_zero_init:
            for links in self.links.values():
                for link in links:
                    if isinstance(link, nn.Sequential):
                        for param in link[-1].parameters():
                            nn.init.zeros_(param)
        self._is_init = True

    def train(self, mode: bool = True) -> 'CBNet':
        """Train mode; each copy re-freezes its ``frozen_stages`` and keeps
        ``norm_eval`` itself, the links' BatchNorms stay in eval mode with
        ``cb_norm_eval``."""
        super().train(mode)
        if mode and self.cb_norm_eval:
            for m in self.links.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

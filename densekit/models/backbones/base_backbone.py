"""The small base every densekit backbone derives from.

A backbone declares its *feature contract*: for every output it returns, the
number of channels and the stride relative to the input image. Necks and heads
read (and check) that contract instead of repeating channel numbers, and the
cross-task tests check every registered backbone honours it.
"""
from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from densekit.models.utils.checkpoint import load_pretrained


class BaseBackbone(BaseModule):
    """Multi-scale feature extractor with mmdet's backbone conventions.

    Subclasses build ``self.stages`` (an ``nn.ModuleList``; stage 0 is the
    stem) and fill ``self.stage_channels``/``self.stage_strides`` for each
    stage, then call :meth:`_check_indices`; ``forward`` returns the stages
    listed in ``out_indices``, from high to low resolution, each through its
    per-output norm ``norm{i}`` where the backbone adds one, and stops after
    the last one needed.

    Variants: ``arch_settings`` maps each variant name to its complete
    settings, ``arch_aliases`` maps other accepted names to those;
    :meth:`resolve_arch` looks a name up (case-insensitively) or completes
    a dict with ``arch_defaults``.

    Args:
        out_indices (Sequence[int]): Stages whose outputs are returned.
        frozen_stages (int): Stages ``0..frozen_stages`` are frozen (eval mode,
            no gradients). -1 freezes nothing.
        norm_eval (bool): Keep every BatchNorm in eval mode during training.
    """

    def __init__(self,
                 *,
                 out_indices: Sequence[int],
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.stages = nn.ModuleList()
        self.stage_channels: List[int] = []
        self.stage_strides: List[int] = []

    #: variant name -> its complete settings (see :meth:`resolve_arch`)
    arch_settings: Dict[str, dict] = {}
    #: other accepted names -> a key of :attr:`arch_settings`
    arch_aliases: Dict[str, str] = {}
    #: what an ``arch`` dict starts from
    arch_defaults: Dict[str, Any] = {}
    #: keys an ``arch`` dict must give (after the defaults)
    arch_required: Tuple[str, ...] = ()
    #: keys of an ``arch`` dict holding one value per stage
    arch_per_stage: Tuple[str, ...] = ()

    @classmethod
    def resolve_arch(cls, arch: Union[str, Mapping]) -> dict:
        """The settings of ``arch``: a name (or alias) of
        :attr:`arch_settings`, case-insensitive, or a dict completed with
        :attr:`arch_defaults` and checked (:attr:`arch_required`,
        :attr:`arch_per_stage` lengths equal to ``depths``).

        Raises:
            ValueError: Naming the class, the accepted names and the
                problem.
        """
        name = cls.__name__
        if isinstance(arch, Mapping):
            settings = dict(cls.arch_defaults)
            settings.update(arch)
            missing = set(cls.arch_required) - set(settings)
            if missing:
                raise ValueError(
                    f'{name}: an arch dict needs {sorted(missing)}')
            if 'depths' in settings:
                n = len(settings['depths'])
                for key in cls.arch_per_stage:
                    if key in settings and len(settings[key]) != n:
                        raise ValueError(
                            f'{name}: {key} needs {n} values (one per '
                            f'stage), but got {settings[key]}')
            return cls._complete_arch(settings)
        lookup = {k.lower(): k for k in cls.arch_settings}
        lookup.update({k.lower(): v for k, v in cls.arch_aliases.items()})
        key = lookup.get(arch.lower()) if isinstance(arch, str) else None
        if key is None:
            aliases = f' (or {sorted(cls.arch_aliases)})' \
                if cls.arch_aliases else ''
            raise ValueError(
                f'{name}: arch must be one of {sorted(cls.arch_settings)}'
                f'{aliases} or a dict, but got {arch!r}')
        return dict(cls.arch_settings[key])

    @classmethod
    def _complete_arch(cls, settings: dict) -> dict:
        """Backbone-specific completion/checks of an ``arch`` dict after
        :meth:`resolve_arch`'s; unchanged here."""
        return settings

    def _check_indices(self) -> None:
        """Validate ``out_indices``/``frozen_stages`` once stages are built,
        then freeze stages ``0..frozen_stages``."""
        num_stages = len(self.stages)
        bad = [i for i in self.out_indices if not 0 <= i < num_stages]
        if bad or not self.out_indices:
            raise ValueError(
                f'{type(self).__name__}: out_indices must be a non-empty '
                f'subset of 0..{num_stages - 1}, but got {self.out_indices}')
        if not -1 <= self.frozen_stages < num_stages:
            raise ValueError(
                f'{type(self).__name__}: frozen_stages must be in '
                f'-1..{num_stages - 1}, but got {self.frozen_stages}')
        self._freeze_stages()

    def _add_output_norms(self, build) -> None:
        """Add the per-output norm ``norm{i} = build(i)`` for every ``i`` in
        ``out_indices`` (after :meth:`_check_indices`), frozen with their
        stages; :meth:`forward_stage_output` applies them."""
        for i in self.out_indices:
            self.add_module(f'norm{i}', build(i))
        self._freeze_stages()

    @property
    def feature_info(self) -> List[dict]:
        """Contract of the returned features: ``[dict(channels, stride)]``."""
        return [
            dict(channels=self.stage_channels[i],
                 stride=self.stage_strides[i]) for i in self.out_indices
        ]

    @property
    def out_channels(self) -> List[int]:
        return [info['channels'] for info in self.feature_info]

    @property
    def out_strides(self) -> List[int]:
        return [info['stride'] for info in self.feature_info]

    def _freeze_stages(self) -> None:
        """Stages ``0..frozen_stages``, and their per-output norms
        ``norm{i}`` where a backbone has them, in eval mode without
        gradients."""
        for i in range(self.frozen_stages + 1):
            for module in (self.stages[i], getattr(self, f'norm{i}', None)):
                if module is None:
                    continue
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    #: Regexes of keys an ImageNet checkpoint may lack (the per-output
    #: norms dense prediction adds); see :meth:`init_weights`.
    pretrained_optional_keys: Tuple[str, ...] = (r'norm\d+\.', )

    def convert_pretrained(self, state_dict: Dict[str, Tensor]
                           ) -> Dict[str, Tensor]:
        """Map a checkpoint's state dict onto this class's keys; backbones
        with released weights in another layout override it (their
        ``convert_*`` function). Defaults to no change."""
        return state_dict

    def init_weights(self) -> None:
        """Random init, or ``init_cfg=dict(type='Pretrained',
        checkpoint=...)`` loaded through :meth:`convert_pretrained` with a
        report of missing/unexpected keys; more missing keys than the
        per-output norms (``init_cfg.allow_missing`` /
        ``init_cfg.max_missing`` widen it) raise ``ValueError`` instead of
        training from scratch in silence
        (:func:`densekit.models.utils.load_pretrained`)."""
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            load_pretrained(self, cfg, self.convert_pretrained,
                            self.pretrained_optional_keys)
            self._is_init = True
        else:
            super().init_weights()
        self._freeze_stages()

    def train(self, mode: bool = True) -> 'BaseBackbone':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward_stage(self, index: int, x: Tensor) -> Tensor:
        """Run stage ``index`` on its input: ``self.stages[index](x)``.

        Backbones with work between stages (input padding before the stem,
        a pooling between two stages) override it, so that stage-by-stage
        callers (:class:`densekit.models.backbones.CBNet`) see the same
        maps as :meth:`forward`.

        Args:
            index (int): Stage index, 0 is the stem.
            x (Tensor): The previous stage's raw output (the image for 0).

        Returns:
            Tensor: The stage's raw output, (N, C_index, H_index, W_index).
        """
        return self.stages[index](x)

    #: whether the per-output norms ``norm{i}`` (where a backbone adds
    #: them) apply; backbones with an ``out_norm`` argument set it
    out_norm: bool = True

    def forward_stage_output(self, index: int, x: Tensor) -> Tensor:
        """The map returned for stage ``index`` (in ``out_indices``) from the
        stage's raw (N, C, H, W) output ``x``: through its per-output norm
        ``norm{index}`` when the backbone has one and :attr:`out_norm` (a plain
        ``nn.LayerNorm`` normalises the channels, channels-last; a
        ``LayerNorm2d`` takes the map as it is), else
        unchanged. Shapes are unchanged."""
        norm = getattr(self, f'norm{index}', None) if self.out_norm else None
        if norm is None:
            return x
        if type(norm) is nn.LayerNorm:  # not channels-first subclasses
            return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()
        return norm(x)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Args: x (Tensor): images, (N, 3, H, W).

        Returns:
            tuple[Tensor]: one (N, C_i, H / s_i, W / s_i) map per
            ``out_indices`` entry, with C_i, s_i as in :attr:`feature_info`.
        """
        outs = []
        last = max(self.out_indices)
        for i in range(last + 1):  # the stages after the last output: unused
            x = self.forward_stage(i, x)
            if i in self.out_indices:
                outs.append(self.forward_stage_output(i, x))
        return tuple(outs)

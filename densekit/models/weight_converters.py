"""Every weight converter behind one table, for
``tools/model_converters/convert.py NAME SRC DST``.

Each family's mapping is a pure function next to its model with one
signature, ``convert_<name>(state_dict, *, with_head=False, **options) ->
dict`` (timm's ``checkpoint_filter_fn`` is the model: safe to apply twice,
densekit keys come back unchanged), and every one of them refuses keys it
does not know with :class:`~densekit.models.utils.checkpoint.
UnconvertedKeysError`. A :class:`WeightConverter` entry of
:data:`CONVERTERS` adds what the command needs around it: how to read the
source file, what the weights look like (scale, class count), which
densekit model to check them against, and the family's own options.

Families (``with_head``: keep the ImageNet classifier; it does not apply to
the detector and anomaly families, whose heads are part of the model):

==================  ============================================  ==========
name                source                                         target
==================  ============================================  ==========
mamba_yolo          HZAI-ZJNU/Mamba-YOLO (ultralytics model.{i})  detector
yolov8_ultralytics  ultralytics YOLOv8 DetectionModel             detector
yolov8_mmyolo       open-mmlab/mmyolo YOLOv8                      detector
focalnet            microsoft/FocalNet ImageNet                   backbone
edgenext            mmaaz60/EdgeNeXt ImageNet                     backbone
hornet              raoyongming/HorNet ImageNet                   backbone
smt                 AFeng-x/SMT ImageNet                          backbone
transnext           DaiShiResearch/TransNeXt ImageNet             backbone
resnet_vit          google-research/vision_transformer npz        backbone
efficientad         nelson1425/EfficientAD run, anomalib ckpt     model
==================  ============================================  ==========

A backbone checked against a task config (``--config``) is written with the
``backbone.`` prefix, so the same file works as the config's ``load_from``
(any task: detector, segmentor, ...) and as
``init_cfg=dict(type='Pretrained', checkpoint=...)`` (the converters strip
the prefix again).
"""
import argparse
import os.path as osp
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import (Callable, Dict, List, Mapping, Optional, Sequence, Tuple,
                    Type)

import numpy as np
import torch.nn as nn
from torch import Tensor

from densekit.models.utils.checkpoint import read_checkpoint_file

__all__ = [
    'WeightConverter', 'BackboneConverter', 'DetectorConverter',
    'EfficientADConverter', 'Description', 'CONVERTERS', 'REPO_ROOT'
]

#: the repository (configs/ lives there), for the default configs of --check
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@dataclass
class Description:
    """What converted weights look like.

    Attributes:
        text (str): e.g. ``'n (stem 16, stage-4 256 channels, ...)'``.
        key (tuple): compared between the checkpoint and a config's model
            (scale dimensions, class count); None: nothing to compare.
        meta (dict): stored in the output's ``meta``.
        settings (str): config settings the weights need, printed after
            saving (e.g. ``model=dict(model_size='S')``).
    """
    text: str = ''
    key: Optional[tuple] = None
    meta: dict = field(default_factory=dict)
    settings: str = ''


class WeightConverter:
    """One family: read, convert, describe, check.

    Args:
        name (str): The command's family name (``convert_<name>``).
        convert (callable): ``convert_<name>(state_dict, *, with_head,
            **options) -> dict``.
        source (str): Where the weights come from, and their licence.
        load_hint (str): Said when the file cannot be read safely (e.g. the
            one-line export of a pickled model).
    """
    target = 'model'

    def __init__(self, name: str, convert: Callable, source: str,
                 load_hint: str = '') -> None:
        self.name = name
        self.convert_fn = convert
        self.source = source
        self.load_hint = load_hint

    # ---------------------------------------------------------------- CLI
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The family's own options (none by default)."""

    def converter_options(self, args: argparse.Namespace) -> dict:
        """Keyword arguments of ``convert_<name>`` from the options."""
        return {}

    # --------------------------------------------------------------- steps
    def read(self, path: str, unsafe: bool, args: argparse.Namespace):
        """The source file's content (``weights_only`` unless ``unsafe``)."""
        return read_checkpoint_file(path, unsafe)

    def convert(self, checkpoint, with_head: bool,
                options: dict) -> Dict[str, Tensor]:
        return self.convert_fn(checkpoint, with_head=with_head, **options)

    def describe(self, state_dict: Mapping[str, Tensor], checkpoint,
                 args: argparse.Namespace) -> Description:
        """What the converted weights look like (nothing by default)."""
        return Description()

    def default_model(self, state_dict: Mapping[str, Tensor],
                      description: Description, with_head: bool,
                      args: argparse.Namespace) -> Optional[nn.Module]:
        """The densekit model ``--check`` compares with (without
        ``--config``); None when it cannot be inferred."""
        return None

    def model_name(self, model: nn.Module, description: Description,
                   args: argparse.Namespace) -> str:
        """How messages name the :meth:`default_model`."""
        arch = getattr(args, 'arch', None)
        return type(model).__name__ + (f' {arch}' if arch else '')

    def config_target(self, model: nn.Module) -> Tuple[nn.Module, str]:
        """The part of a config's model the weights load into, and the
        prefix of its keys in the model."""
        return model, ''

    def model_options(self, module: nn.Module) -> dict:
        """Converter options the target model implies (focal windows, GF
        sizes, the token grid); checked configs convert with them."""
        return {}

    def optional_keys(self, with_head: bool) -> Sequence[str]:
        """Regexes of model keys the source may lack."""
        return ()


class BackboneConverter(WeightConverter):
    """An ImageNet backbone family: ``convert_<name>`` gives the backbone's
    keys (``with_head``: the classifier's ``backbone.*`` + ``head.*``).

    Args:
        backbone (type): The densekit backbone class.
        classifier (callable, optional): ``classifier(arch, num_classes,
            **model_options) -> nn.Module``.
        optional (Sequence[str]): Model keys an ImageNet file lacks without
            the head (the per-output norms).
        arch_required (bool): ``--check`` needs ``--arch``.
    """
    target = 'backbone'

    def __init__(self, name: str, convert: Callable, source: str, *,
                 backbone: Type[nn.Module],
                 classifier: Optional[Callable] = None,
                 optional: Sequence[str] = (r'norm\d+\.', ),
                 head_optional: Sequence[str] = (),
                 load_hint: str = '') -> None:
        super().__init__(name, convert, source, load_hint)
        self.backbone = backbone
        self.classifier = classifier
        self.optional = tuple(optional)
        self.head_optional = tuple(head_optional)

    def add_arguments(self, parser):
        archs = getattr(self.backbone, 'arch_settings', None)
        parser.add_argument(
            '--arch', choices=sorted(archs) if archs else None,
            help=f'check against this densekit {self.backbone.__name__} '
            '(or its classifier with --with-head)')

    def describe(self, state_dict, checkpoint, args):
        arch = getattr(args, 'arch', None)
        return Description(meta=dict(arch=arch) if arch else {})

    def default_model(self, state_dict, description, with_head, args):
        arch = getattr(args, 'arch', None)
        if arch is None:
            return None
        options = self.converter_options(args)
        if with_head:
            if self.classifier is None:
                return None
            num_classes = state_dict['head.weight'].shape[0] \
                if 'head.weight' in state_dict else 0
            return self.classifier(arch, num_classes=num_classes, **options)
        return self.backbone(arch=arch, **options)

    def config_target(self, model):
        backbone = getattr(model, 'backbone', model)
        if not isinstance(backbone, self.backbone):
            raise TypeError(
                f"the config's backbone is {type(backbone).__name__}, the "
                f'{self.name} converter gives {self.backbone.__name__} '
                'weights')
        return backbone, 'backbone.' if backbone is not model else ''

    def optional_keys(self, with_head):
        return self.head_optional if with_head else self.optional


class DetectorConverter(WeightConverter):
    """A whole-detector family (its scale and class count are read back).

    Args:
        arch_of (callable): ``state_dict -> (key, text, meta)``.
        default_config (callable): ``meta -> config path`` of the inferred
            scale (``--check`` builds it with the inferred class count).
    """
    target = 'detector'

    def __init__(self, name, convert, source, *, arch_of: Callable,
                 default_config: Callable, load_hint: str = '') -> None:
        super().__init__(name, convert, source, load_hint)
        self.arch_of = arch_of
        self.default_config = default_config

    def describe(self, state_dict, checkpoint, args):
        key, text, meta = self.arch_of(state_dict)
        return Description(text=text, key=key, meta=meta)

    def default_model(self, state_dict, description, with_head, args):
        path = self.default_config(description.meta)
        if path is None or not osp.isfile(path):
            return None
        overrides = {}
        if description.meta.get('num_classes') is not None:
            overrides['model.bbox_head.num_classes'] = \
                description.meta['num_classes']
        return build_config_model(path, overrides)

    def model_name(self, model, description, args):
        path = osp.relpath(self.default_config(description.meta), REPO_ROOT)
        classes = description.meta.get('num_classes')
        return f'{path}' + (f' with {classes} classes' if classes else '')


class EfficientADConverter(WeightConverter):
    """EfficientAD: an anomalib checkpoint (a file) or a nelson1425 run (a
    directory with ``teacher_final.pth``, ``student_final.pth`` and
    ``autoencoder_final.pth``, or those named by options)."""
    target = 'model'
    _PARTS = ('teacher', 'student', 'autoencoder')
    # EfficientAD's defaults of the arguments efficientad_model_args gives
    _MODEL_DEFAULTS = dict(out_channels=384, padding=False, pad_maps=True,
                           map_postprocess='nelson1425')
    _HPARAMS = ('model_size', 'teacher_out_channels', 'padding', 'pad_maps')

    def add_arguments(self, parser):
        for part in self._PARTS:
            parser.add_argument(
                f'--{part}', metavar='FILE',
                help=f'nelson1425 {part} file (default: SRC/{part}_final.pth '
                'when SRC is a directory)')
        parser.add_argument('--size', choices=('S', 'M'),
                            help="nelson1425's --model_size (small S, medium "
                            'M); checked against the weights')

    def converter_options(self, args):
        return dict(size=getattr(args, 'size', None))

    def read(self, path, unsafe, args):
        named = {p: getattr(args, p, None) for p in self._PARTS}
        if osp.isdir(path) or any(named.values()):
            base = path if osp.isdir(path) else osp.dirname(path)
            return {p: read_checkpoint_file(
                named[p] or osp.join(base, f'{p}_final.pth'), unsafe)
                for p in self._PARTS}
        return read_checkpoint_file(path, unsafe)

    def describe(self, state_dict, checkpoint, args):
        from densekit.models.anomaly_detectors.efficient_ad_convert import (
            efficientad_model_args, efficientad_source)
        source = efficientad_source(checkpoint)
        meta: dict = dict(source=source)
        hparams = None
        if source == 'anomalib':
            hparams = checkpoint.get('hyper_parameters') \
                if isinstance(checkpoint, Mapping) else None
            if isinstance(hparams, Mapping):
                meta['anomalib_hyper_parameters'] = {
                    k: _plain(hparams[k]) for k in self._HPARAMS
                    if k in hparams}
            else:
                hparams = None
                meta['note'] = ("no hyper_parameters: anomalib's defaults "
                                'padding=False, pad_maps=True assumed')
        args_ = efficientad_model_args(state_dict, source, hparams)
        meta.update(model_size=args_['model_size'],
                    out_channels=args_['out_channels'], model_args=args_,
                    has_teacher_stats=bool(state_dict['has_teacher_stats']),
                    has_quantiles=bool(state_dict['has_quantiles']))
        text = (f'EfficientAD-{args_["model_size"]} ({source}), '
                f'{args_["out_channels"]} teacher channels, teacher '
                f'statistics {"set" if meta["has_teacher_stats"] else "unset"}'
                f', quantiles {"set" if meta["has_quantiles"] else "unset"}')
        if 'note' in meta:
            text += f'; {meta["note"]}'
        parts = [f'model_size={args_["model_size"]!r}'] + [
            f'{k}={args_[k]!r}' for k, default in self._MODEL_DEFAULTS.items()
            if k in args_ and args_[k] != default]
        return Description(text=text,
                           key=(args_['model_size'], args_['out_channels']),
                           meta=meta,
                           settings=f'model=dict({", ".join(parts)})')

    def model_name(self, model, description, args):
        return f'EfficientAD-{description.meta["model_size"]}'

    def default_model(self, state_dict, description, with_head, args):
        from densekit.models.anomaly_detectors.efficient_ad import EfficientAD
        return EfficientAD(allow_random_teacher=True,
                           **description.meta['model_args'])


def _plain(value):
    """A meta value ``weights_only`` loads (enums, paths -> str)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(getattr(value, 'value', value))


def build_config_model(path: str, overrides: Optional[dict] = None
                       ) -> nn.Module:
    """The model a densekit config builds (``overrides`` as
    ``--cfg-options``)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from densekit.registry import MODELS
    cfg = Config.fromfile(path)
    if overrides:
        cfg.merge_from_dict(overrides)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return MODELS.build(cfg.model)


# ---------------------------------------------------------------------------
# the families
# ---------------------------------------------------------------------------
_ULTRALYTICS_EXPORT = (
    'ultralytics .pt files pickle the whole model with its classes. Export '
    'a plain state dict where ultralytics is installed: python -c "import '
    "torch; from ultralytics import YOLO; torch.save(YOLO('best.pt').model."
    "float().state_dict(), 'best_sd.pth')\" (or rerun with --unsafe-load, "
    'which needs that package importable and runs pickled code)')
_MAMBA_EXPORT = (
    'Mamba YOLO .pt files pickle the whole ultralytics model. Export a '
    'plain state dict in the official environment: python -c "import '
    "torch; c = torch.load('best.pt', weights_only=False); m = c.get('ema') "
    "or c['model']; torch.save(m.float().state_dict(), 'best_sd.pth')\" (or "
    'rerun with --unsafe-load, the official code on PYTHONPATH)')


def _mamba_arch(state_dict):
    from densekit.models.backbones.mamba_yolo import mamba_yolo_arch_of
    arch, stem, depths = mamba_yolo_arch_of(state_dict)
    classes = _num_classes(state_dict)
    text = (f'{arch if arch is not None else "no official scale"} (stem '
            f'{stem} channels, stage depths {"-".join(map(str, depths))}'
            + (f', {classes} classes' if classes is not None else '') + ')')
    return (stem, depths, classes), text, dict(
        arch=arch, stem=stem, depths=list(depths), num_classes=classes)


def _yolov8_arch(state_dict):
    from densekit.models.detectors.yolov8_convert import (describe_yolov8_arch,
                                                          yolov8_arch_of)
    arch = yolov8_arch_of(state_dict)
    key = (arch['stem'], arch['last_channels'], arch['depths'],
           arch['neck_depth'], arch['num_classes'], arch['reg_max'])
    meta = dict(arch, depths=list(arch['depths']))
    return key, describe_yolov8_arch(arch), meta


def _num_classes(state_dict) -> Optional[int]:
    weight = state_dict.get('bbox_head.cls_towers.0.2.weight')
    return None if weight is None else int(weight.shape[0])


def _config_of(pattern: str, name_key: str):
    def default_config(meta):
        name = meta.get(name_key)
        return None if name is None else osp.join(
            REPO_ROOT, 'configs', 'det', pattern.format(str(name).lower()))
    return default_config


class _FocalNetConverter(BackboneConverter):

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            '--focal-window', type=int,
            help='first focal kernel of the target model (e.g. 9 for the '
            'official detection fine-tunes); kernels are zero-padded / '
            'cropped around the centre')

    def converter_options(self, args):
        window = getattr(args, 'focal_window', None)
        return {} if window is None else dict(focal_windows=window)

    def model_options(self, module):
        return dict(focal_windows=module.focal_windows)


def _gf_size(text: str) -> Tuple[int, int]:
    h, w = (int(v) for v in text.split(','))
    return h, w


class _HorNetConverter(BackboneConverter):

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            '--use-ema', action='store_true',
            help="convert checkpoint['model_ema'] instead of "
            "checkpoint['model']")
        parser.add_argument(
            '--gf-sizes', nargs=2, type=_gf_size, metavar='H,W',
            help='resize the GF complex weights of stages 2 and 3 to these '
            'sizes (e.g. 24,13 12,7)')

    def converter_options(self, args):
        options = dict(use_ema=bool(getattr(args, 'use_ema', False)))
        if getattr(args, 'gf_sizes', None):
            options['gf_sizes'] = [None, None] + list(args.gf_sizes)
        return options

    def model_options(self, module):
        return dict(gf_sizes=module.gf_sizes)

    def default_model(self, state_dict, description, with_head, args):
        options = self.converter_options(args)
        arch = getattr(args, 'arch', None)
        if arch is None:
            return None
        kwargs = {'gf_sizes': options['gf_sizes']} if 'gf_sizes' in \
            options else {}
        if with_head:
            num_classes = state_dict['head.weight'].shape[0] \
                if 'head.weight' in state_dict else 1000
            return self.classifier(arch, num_classes=num_classes, **kwargs)
        return self.backbone(arch=arch, **kwargs)


class _EdgeNeXtConverter(BackboneConverter):

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            '--use-ema', action='store_true',
            help="convert checkpoint['model_ema'] instead of "
            "checkpoint['model']")

    def converter_options(self, args):
        return dict(use_ema=bool(getattr(args, 'use_ema', False)))

    def default_model(self, state_dict, description, with_head, args):
        arch = getattr(args, 'arch', None)
        if arch is None:
            return None
        return self.classifier(arch) if with_head else self.backbone(
            arch=arch)


class _ResNetViTConverter(BackboneConverter):
    """The npz of google-research/vision_transformer; the token grid (and
    the hybrid / pure ViT choice) come from the options or the config."""

    def add_arguments(self, parser):
        parser.add_argument(
            '--img-size', type=int, default=224,
            help='training size of the model (grid = size // 16; a config '
            "gives its backbone's). Defaults to 224")
        parser.add_argument('--pure-vit', action='store_true',
                            help='ViT-B_16.npz for ResNetViT(hybrid=False)')

    def converter_options(self, args):
        size = getattr(args, 'img_size', 224)
        return dict(grid_size=(size // 16, size // 16),
                    vit_stage=0 if getattr(args, 'pure_vit', False) else 4)

    def model_options(self, module):
        return dict(grid_size=module.stages[-1].grid_size,
                    vit_stage=len(module.stages) - 1)

    def read(self, path, unsafe, args):
        if path.endswith('.npz'):
            if not osp.isfile(path):
                raise FileNotFoundError(f'checkpoint {path} does not exist')
            with np.load(path) as npz:
                return {k: npz[k] for k in npz.files}
        return read_checkpoint_file(path, unsafe)

    def describe(self, state_dict, checkpoint, args):
        return Description(meta=dict(
            img_size=getattr(args, 'img_size', 224),
            hybrid=not getattr(args, 'pure_vit', False)))

    def default_model(self, state_dict, description, with_head, args):
        return self.backbone(img_size=description.meta['img_size'],
                             hybrid=description.meta['hybrid'])


def _build_table() -> Dict[str, WeightConverter]:
    from densekit.models.anomaly_detectors.efficient_ad_convert import \
        convert_efficientad
    from densekit.models.backbones.edgenext import (EdgeNeXt,
                                                    EdgeNeXtClassifier,
                                                    convert_edgenext)
    from densekit.models.backbones.focalnet import (FocalNet, convert_focalnet,
                                                    focalnet_classifier)
    from densekit.models.backbones.hornet import (HorNet, convert_hornet,
                                                  hornet_classifier)
    from densekit.models.backbones.mamba_yolo import convert_mamba_yolo
    from densekit.models.backbones.resnet_vit import (ResNetViT,
                                                      convert_resnet_vit)
    from densekit.models.backbones.smt import SMT, convert_smt, smt_classifier
    from densekit.models.backbones.transnext import (TransNeXt,
                                                     convert_transnext,
                                                     transnext_classifier)
    from densekit.models.detectors.yolov8_convert import (
        convert_yolov8_mmyolo, convert_yolov8_ultralytics)
    entries: List[WeightConverter] = [
        DetectorConverter(
            'mamba_yolo', convert_mamba_yolo,
            'HZAI-ZJNU/Mamba-YOLO (on ultralytics, AGPL-3.0)',
            arch_of=_mamba_arch,
            default_config=_config_of('mamba_yolo_{}_coco.py', 'arch'),
            load_hint=_MAMBA_EXPORT),
        DetectorConverter(
            'yolov8_ultralytics', convert_yolov8_ultralytics,
            'ultralytics/ultralytics YOLOv8 (AGPL-3.0, weights too)',
            arch_of=_yolov8_arch,
            default_config=_config_of('yolov8_{}_coco.py', 'scale'),
            load_hint=_ULTRALYTICS_EXPORT),
        DetectorConverter(
            'yolov8_mmyolo', convert_yolov8_mmyolo,
            'open-mmlab/mmyolo YOLOv8 (GPL-3.0)', arch_of=_yolov8_arch,
            default_config=_config_of('yolov8_{}_coco.py', 'scale')),
        _FocalNetConverter(
            'focalnet', convert_focalnet, 'microsoft/FocalNet (MIT)',
            backbone=FocalNet, classifier=focalnet_classifier),
        _EdgeNeXtConverter(
            'edgenext', convert_edgenext, 'mmaaz60/EdgeNeXt (MIT)',
            backbone=EdgeNeXt, classifier=EdgeNeXtClassifier),
        _HorNetConverter(
            'hornet', convert_hornet, 'raoyongming/HorNet (MIT)',
            backbone=HorNet, classifier=hornet_classifier),
        BackboneConverter(
            'smt', convert_smt, 'AFeng-x/SMT (MIT)', backbone=SMT,
            classifier=smt_classifier,
            optional=(r'.*num_batches_tracked$', ),
            head_optional=(r'.*num_batches_tracked$', )),
        BackboneConverter(
            'transnext', convert_transnext,
            'DaiShiResearch/TransNeXt (Apache-2.0)', backbone=TransNeXt,
            classifier=transnext_classifier, optional=()),
        _ResNetViTConverter(
            'resnet_vit', convert_resnet_vit,
            'google-research/vision_transformer imagenet21k npz '
            '(Apache-2.0)', backbone=ResNetViT, optional=()),
        EfficientADConverter(
            'efficientad', convert_efficientad,
            'nelson1425/EfficientAD run or open-edge-platform/anomalib '
            '(Apache-2.0) checkpoint'),
    ]
    return OrderedDict((e.name, e) for e in entries)


class _LazyTable(Mapping):
    """:data:`CONVERTERS`, built on first use (the families import every
    backbone)."""

    def __init__(self) -> None:
        self._table: Optional[Dict[str, WeightConverter]] = None

    def _get(self) -> Dict[str, WeightConverter]:
        if self._table is None:
            self._table = _build_table()
        return self._table

    def __getitem__(self, name: str) -> WeightConverter:
        return self._get()[name]

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


#: name -> :class:`WeightConverter`, in the command's order
CONVERTERS: Mapping[str, WeightConverter] = _LazyTable()

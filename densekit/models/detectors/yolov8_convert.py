"""YOLOv8 checkpoints of ultralytics and of mmyolo -> densekit's YOLOv8
(:class:`~densekit.models.backbones.YOLOv8CSPDarknet`,
:class:`~densekit.models.necks.YOLOv8PAFPN`,
:class:`~densekit.models.dense_heads.YOLOv8Head` in a
:class:`~densekit.models.detectors.YOLODetector`), any scale n-x, any number
of classes, and back.

Sources:

* ultralytics/ultralytics (AGPL-3.0; its released ``yolov8{n,s,m,l,x}.pt``
  are AGPL-3.0 too: check the terms before redistributing converted
  weights). ``DetectionModel`` is ``model = nn.Sequential`` over the layers
  of ``ultralytics/cfg/models/v8/yolov8.yaml``, so the keys are
  ``model.{layer}.*``; ``Conv`` is ``conv`` (no bias) + ``bn``, ``C2f`` is
  ``cv1``, ``cv2``, ``m.{j}.cv1/cv2`` (``Bottleneck``), ``SPPF`` ``cv1``,
  ``cv2``, and ``Detect`` (layer 22) ``cv2.{level}`` (box branch),
  ``cv3.{level}`` (class branch, the v8 "legacy" form) and ``dfl.conv``
  (a frozen ``arange(reg_max)`` 1x1 conv). A ``.pt`` file pickles the
  whole model with ultralytics' classes; export a plain state dict in an
  environment with ultralytics (one line)::

      python -c "import torch; from ultralytics import YOLO; \\
          torch.save(YOLO('yolov8n.pt').model.float().state_dict(), \\
          'yolov8n_sd.pth')"

* open-mmlab/mmyolo (GPL-3.0 code; released weights under its README's
  terms): ``YOLOv8CSPDarknet`` (``backbone.stem``, ``backbone.stage{1-4}``
  = [ConvModule, CSPLayerWithTwoConv (+ SPPFBottleneck)]),
  ``YOLOv8PAFPN`` (``neck.top_down_layers`` / ``downsample_layers`` /
  ``bottom_up_layers``; its ``reduce_layers`` / ``out_layers`` are
  identities) and ``YOLOv8HeadModule`` (``bbox_head.head_module.reg_preds``
  / ``cls_preds``). The modules inside have densekit's names already
  (``main_conv``, ``final_conv``, ``blocks.{j}.conv1``, ...). Its
  checkpoints are mmengine ``{'state_dict': ...}`` files holding the EMA
  weights.

Layer map (ultralytics ``model.{i}`` / mmyolo -> densekit):

======================  ==========================  =====================
ultralytics             mmyolo                      densekit
======================  ==========================  =====================
0 Conv                  backbone.stem               backbone.stages.0
1/3/5/7 Conv            backbone.stage{k}.0         backbone.stages.{k}.0
2/4/6/8 C2f             backbone.stage{k}.1         backbone.stages.{k}.1
9 SPPF                  backbone.stage4.2           backbone.stages.4.2
12 / 15 C2f             neck.top_down_layers.0 / 1  neck.top_down_p4 / p3
16 / 19 Conv            neck.downsample_layers.0/1  neck.downsample_p3/p4
18 / 21 C2f             neck.bottom_up_layers.0/1   neck.bottom_up_p4 / p5
22 Detect cv2 / cv3     bbox_head.head_module.      bbox_head.reg_towers /
                        reg_preds / cls_preds       cls_towers
======================  ==========================  =====================

Every source key is mapped or refused (:class:`UnconvertedKeysError`): an
ultralytics YOLO11 / -seg / -pose / P6 model, a Mamba YOLO, or the other
source's file stops the conversion instead of loading half a model. The
scale and class count are read back from the converted weights
(:func:`yolov8_arch_of`).

Inputs are the same in all three: RGB in [0, 1] (``mean=0, std=255,
bgr_to_rgb=True`` in densekit's configs), boxes decoded from 16-bin
distributions as (left, top, right, bottom) distances times the stride.
mmyolo's class tower is ``max(P3 channels, num_classes)`` wide where
ultralytics and densekit use ``max(P3 channels, min(num_classes, 100))``:
an mmyolo model with more than 100 classes and a narrower P3 (n, s at 150+
classes) does not fit densekit's head, and the ``--config`` check says so.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from densekit.models.layers.yolo_scaling import (YOLOV8_SCALES, make_divisible,
                                                 make_round)
from densekit.models.utils.checkpoint import (UnconvertedKeysError,
                                              unwrap_state_dict)

__all__ = [
    'convert_yolov8_ultralytics', 'convert_yolov8_mmyolo',
    'export_yolov8_ultralytics', 'export_yolov8_mmyolo', 'yolov8_arch_of',
    'describe_yolov8_arch', 'ULTRALYTICS_LAYOUT', 'MMYOLO_LAYOUT'
]

# leaf parameters: ConvModule / ultralytics Conv, and a plain nn.Conv2d
_CONV_BN = (r'conv\.weight|bn\.(?:weight|bias|running_mean|running_var|'
            r'num_batches_tracked)')
_PLAIN = r'weight|bias'

# inner module names: (source, densekit, leaf); {j} is an index
_C2F_ULTRALYTICS = [('cv1.', 'main_conv.', _CONV_BN),
                    ('cv2.', 'final_conv.', _CONV_BN),
                    ('m.{j}.cv1.', 'blocks.{j}.conv1.', _CONV_BN),
                    ('m.{j}.cv2.', 'blocks.{j}.conv2.', _CONV_BN)]
_C2F_MMYOLO = [(d, d, leaf) for _, d, leaf in _C2F_ULTRALYTICS]
_SPPF_ULTRALYTICS = [('cv1.', 'conv1.', _CONV_BN),
                     ('cv2.', 'conv2.', _CONV_BN)]
_SPPF_MMYOLO = [(d, d, leaf) for _, d, leaf in _SPPF_ULTRALYTICS]
_CONV = [('', '', _CONV_BN)]


def _towers(reg: str, cls: str) -> List[Tuple[str, str, str]]:
    """Two conv-bn-act layers and a plain 1x1 conv per level and branch."""
    rules = []
    for src, dst in ((reg, 'reg_towers.'), (cls, 'cls_towers.')):
        rules += [(f'{src}{{j}}.{k}.', f'{dst}{{j}}.{k}.', _CONV_BN)
                  for k in (0, 1)]
        rules.append((f'{src}{{j}}.2.', f'{dst}{{j}}.2.', _PLAIN))
    return rules


def _layout(modules: Sequence[Tuple[str, str, list]]
            ) -> List[Tuple[str, str, str]]:
    """(source prefix, densekit prefix, inner rules) -> full-key rules."""
    return [(src + s, dst + d, leaf) for src, dst, inner in modules
            for s, d, leaf in inner]


#: ``model.{layer}.`` of ``yolov8.yaml`` -> densekit, as full-key rules
#: ``(source, densekit, leaf regex)``; layers 10, 11, 13, 14, 17, 20 are
#: Upsample / Concat (no parameters)
ULTRALYTICS_LAYOUT = _layout(
    [('model.0.', 'backbone.stages.0.', _CONV)]
    + [m for k, (conv, c2f) in enumerate(((1, 2), (3, 4), (5, 6), (7, 8)),
                                         start=1)
       for m in ((f'model.{conv}.', f'backbone.stages.{k}.0.', _CONV),
                 (f'model.{c2f}.', f'backbone.stages.{k}.1.',
                  _C2F_ULTRALYTICS))]
    + [('model.9.', 'backbone.stages.4.2.', _SPPF_ULTRALYTICS),
       ('model.12.', 'neck.top_down_p4.', _C2F_ULTRALYTICS),
       ('model.15.', 'neck.top_down_p3.', _C2F_ULTRALYTICS),
       ('model.16.', 'neck.downsample_p3.', _CONV),
       ('model.18.', 'neck.bottom_up_p4.', _C2F_ULTRALYTICS),
       ('model.19.', 'neck.downsample_p4.', _CONV),
       ('model.21.', 'neck.bottom_up_p5.', _C2F_ULTRALYTICS),
       ('model.22.', 'bbox_head.', _towers('cv2.', 'cv3.'))])
_ULTRALYTICS_DFL = 'model.22.dfl.conv.weight'

#: mmyolo's YOLOv8 keys -> densekit, as full-key rules
MMYOLO_LAYOUT = _layout(
    [('backbone.stem.', 'backbone.stages.0.', _CONV)]
    + [m for k in range(1, 5)
       for m in ((f'backbone.stage{k}.0.', f'backbone.stages.{k}.0.', _CONV),
                 (f'backbone.stage{k}.1.', f'backbone.stages.{k}.1.',
                  _C2F_MMYOLO))]
    + [('backbone.stage4.2.', 'backbone.stages.4.2.', _SPPF_MMYOLO),
       ('neck.top_down_layers.0.', 'neck.top_down_p4.', _C2F_MMYOLO),
       ('neck.top_down_layers.1.', 'neck.top_down_p3.', _C2F_MMYOLO),
       ('neck.downsample_layers.0.', 'neck.downsample_p3.', _CONV),
       ('neck.downsample_layers.1.', 'neck.downsample_p4.', _CONV),
       ('neck.bottom_up_layers.0.', 'neck.bottom_up_p4.', _C2F_MMYOLO),
       ('neck.bottom_up_layers.1.', 'neck.bottom_up_p5.', _C2F_MMYOLO),
       ('bbox_head.head_module.', 'bbox_head.',
        _towers('reg_preds.', 'cls_preds.'))])

# densekit's own keys (the early return of a second conversion)
_DENSEKIT_KEY = re.compile(r'^(backbone\.stages\.|neck\.(top_down_p|'
                           r'bottom_up_p|downsample_p)|bbox_head\.'
                           r'(reg|cls)_towers\.)')


def _compile(pattern: str, leaf: str) -> 're.Pattern':
    body = re.escape(pattern).replace(r'\{j\}', r'(?P<j>\d+)')
    return re.compile(f'^{body}(?P<leaf>{leaf})$')


class _KeyMap:
    """Full-key rules compiled in both directions."""

    def __init__(self, rules: Sequence[Tuple[str, str, str]]) -> None:
        self.forward = [(_compile(src, leaf), dst) for src, dst, leaf in rules]
        self.backward = [(_compile(dst, leaf), src)
                         for src, dst, leaf in rules]

    @staticmethod
    def _apply(rules, key: str) -> Optional[str]:
        for pattern, template in rules:
            match = pattern.match(key)
            if match:
                index = match.groupdict().get('j')
                return template.replace('{j}', index or '') + \
                    match.group('leaf')
        return None

    def to_densekit(self, key: str) -> Optional[str]:
        return self._apply(self.forward, key)

    def to_source(self, key: str) -> Optional[str]:
        return self._apply(self.backward, key)


_ULTRALYTICS_MAP = _KeyMap(ULTRALYTICS_LAYOUT)
_MMYOLO_MAP = _KeyMap(MMYOLO_LAYOUT)
_WITH_HEAD = ('{}: with_head=True does not apply: the detection head is part '
              'of the detector and always converted (with_head keeps the '
              'classifier head of ImageNet backbone checkpoints)')


def _float32(value: Tensor) -> Tensor:
    """Released ultralytics weights are float16; densekit trains float32."""
    return value.float() if value.dtype in (torch.float16,
                                            torch.bfloat16) else value


def _is_fixed_dfl(value: Tensor) -> bool:
    """``Detect.dfl.conv.weight``: ``arange(reg_max)`` as (1, reg_max, 1,
    1), which :class:`YOLOv8Head` keeps as its ``proj`` buffer."""
    flat = value.detach().float().flatten()
    return value.dim() == 4 and value.shape[0] == 1 and torch.equal(
        flat, torch.arange(flat.numel(), dtype=flat.dtype))


def _convert(state_dict: Mapping[str, Tensor], key_map: _KeyMap, owner: str,
             layout: str, dropped: Sequence[str] = ()) -> Dict[str, Tensor]:
    converted: Dict[str, Tensor] = OrderedDict()
    unknown: List[str] = []
    for key, value in state_dict.items():
        if key in dropped:
            continue
        new_key = key_map.to_densekit(key)
        if new_key is None:
            unknown.append(key)
        else:
            converted[new_key] = _float32(value)
    if unknown:
        raise UnconvertedKeysError(owner, layout, unknown, len(state_dict))
    return converted


def convert_yolov8_ultralytics(checkpoint, *,
                               with_head: bool = False) -> Dict[str, Tensor]:
    """An ultralytics YOLOv8 ``DetectionModel`` -> densekit's YOLOv8
    detector keys (layer map in the module docstring).

    ``model.22.dfl.conv.weight`` (the frozen ``arange(reg_max)``) is dropped
    on purpose after checking it is that; float16 tensors become float32.
    Safe to run twice: densekit keys are returned unchanged.

    Args:
        checkpoint (dict | nn.Module): A ``model.{i}.*`` state dict (the
            export in the module docstring), ``{'ema'/'model': ...}`` (an
            unpickled ``.pt``: ``'ema'`` when set, else ``'model'``),
            ``{'state_dict': ...}``, or the ``DetectionModel``.
        with_head (bool): Must be False: the detection head is always
            converted (the common converter signature's argument).

    Returns:
        dict[str, Tensor]: ``backbone.*``, ``neck.*``, ``bbox_head.*``.

    Raises:
        ValueError: ``with_head=True``.
        UnconvertedKeysError: keys outside YOLOv8's layout (another
            ultralytics model, mmyolo keys, a DFL weight that is not the
            fixed ``arange``).
    """
    owner = 'convert_yolov8_ultralytics'
    if with_head:
        raise ValueError(_WITH_HEAD.format(owner))
    state_dict = unwrap_state_dict(checkpoint, owner,
                                   keys=('ema', 'model', 'state_dict'))
    if any(_DENSEKIT_KEY.match(k) for k in state_dict):
        return OrderedDict(state_dict)
    dfl = state_dict.get(_ULTRALYTICS_DFL)
    dropped = [_ULTRALYTICS_DFL] if dfl is not None and _is_fixed_dfl(dfl) \
        else []
    return _convert(state_dict, _ULTRALYTICS_MAP, owner,
                    'ultralytics YOLOv8 DetectionModel (model.{i}.*)',
                    dropped)


def convert_yolov8_mmyolo(checkpoint, *,
                          with_head: bool = False) -> Dict[str, Tensor]:
    """An mmyolo YOLOv8 detector -> densekit's YOLOv8 detector keys (layer
    map in the module docstring). mmyolo's head keeps the DFL projection as
    a non-persistent buffer, so every key maps. Safe to run twice.

    Args:
        checkpoint (dict | nn.Module): mmyolo's ``{'state_dict': ...}``
            checkpoint (EMA weights, as mmengine's ``EMAHook`` saves them),
            its state dict, or the model.
        with_head (bool): Must be False (see
            :func:`convert_yolov8_ultralytics`).

    Returns:
        dict[str, Tensor]: ``backbone.*``, ``neck.*``, ``bbox_head.*``.

    Raises:
        ValueError: ``with_head=True``.
        UnconvertedKeysError: keys outside mmyolo's YOLOv8 layout.
    """
    owner = 'convert_yolov8_mmyolo'
    if with_head:
        raise ValueError(_WITH_HEAD.format(owner))
    state_dict = unwrap_state_dict(checkpoint, owner)
    if any(_DENSEKIT_KEY.match(k) for k in state_dict):
        return OrderedDict(state_dict)
    return _convert(state_dict, _MMYOLO_MAP, owner,
                    'mmyolo YOLOv8 (backbone.stem/stage{k}, '
                    'neck.*_layers, bbox_head.head_module)')


def _export(state_dict: Mapping[str, Tensor], key_map: _KeyMap,
            owner: str, layout: str) -> Dict[str, Tensor]:
    state_dict = unwrap_state_dict(state_dict, owner)
    exported: Dict[str, Tensor] = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        new_key = key_map.to_source(key)
        if new_key is None:
            unknown.append(key)
        else:
            exported[new_key] = value
    if unknown:
        raise UnconvertedKeysError(owner, layout, unknown, len(state_dict))
    return exported


def export_yolov8_ultralytics(state_dict: Mapping[str, Tensor]
                              ) -> Dict[str, Tensor]:
    """densekit's YOLOv8 detector keys -> ultralytics' ``model.{i}.*``
    (with the fixed DFL weight), e.g. to load densekit-trained weights into
    ``YOLO('yolov8n.yaml').model`` of the same scale and ``nc``.

    Raises:
        UnconvertedKeysError: keys that are not densekit's YOLOv8.
    """
    exported = _export(state_dict, _ULTRALYTICS_MAP,
                       'export_yolov8_ultralytics', 'densekit YOLOv8')
    reg = exported.get('model.22.cv2.0.2.weight')
    if reg is not None:
        reg_max = reg.shape[0] // 4
        exported[_ULTRALYTICS_DFL] = torch.arange(
            reg_max, dtype=reg.dtype).view(1, reg_max, 1, 1)
    return exported


def export_yolov8_mmyolo(state_dict: Mapping[str, Tensor]
                         ) -> Dict[str, Tensor]:
    """densekit's YOLOv8 detector keys -> mmyolo's YOLOv8 keys.

    Raises:
        UnconvertedKeysError: keys that are not densekit's YOLOv8.
    """
    return _export(state_dict, _MMYOLO_MAP, 'export_yolov8_mmyolo',
                   'densekit YOLOv8')


def yolov8_arch_of(state_dict: Mapping[str, Tensor]) -> Dict[str, object]:
    """Scale and class count of a densekit-keyed YOLOv8 detector state
    dict (a converted checkpoint or a built model's).

    The stem width (n 16, s 32, m 48, l 64, x 80 channels), the stage-4
    width (n 256, s 512, m 576, l 512, x 640), the C2f depths of stages 1-4
    (n/s 1-2-2-1, m 2-4-4-2, l/x 3-6-6-3) and of the neck are compared with
    what :data:`YOLOV8_SCALES` builds.

    Args:
        state_dict (dict[str, Tensor]): ``backbone.*`` / ``neck.*`` /
            ``bbox_head.*`` keys.

    Returns:
        dict: ``scale`` ('n'...'x', or None when no scale matches),
        ``stem``, ``last_channels``, ``depths`` (tuple of 4), ``neck_depth``,
        ``num_classes`` and ``reg_max`` (None without a head).

    Raises:
        ValueError: no YOLOv8 stem (``backbone.stages.0.conv.weight``).
    """
    stem_key = 'backbone.stages.0.conv.weight'
    if stem_key not in state_dict:
        raise ValueError(f'yolov8_arch_of: no YOLOv8 stem weight {stem_key!r}'
                         f' in the state dict (first keys: '
                         f'{list(state_dict)[:3]})')

    def blocks(prefix: str) -> int:
        pattern = re.compile(rf'^{re.escape(prefix)}blocks\.(\d+)\.')
        return len({m.group(1) for m in map(pattern.match, state_dict) if m})

    last_key = 'backbone.stages.4.0.conv.weight'
    arch = dict(
        stem=int(state_dict[stem_key].shape[0]),
        last_channels=int(state_dict[last_key].shape[0])
        if last_key in state_dict else None,
        depths=tuple(blocks(f'backbone.stages.{k}.1.') for k in range(1, 5)),
        neck_depth=blocks('neck.top_down_p4.'),
        num_classes=None, reg_max=None, scale=None)
    cls_key, reg_key = ('bbox_head.cls_towers.0.2.weight',
                        'bbox_head.reg_towers.0.2.weight')
    if cls_key in state_dict:
        arch['num_classes'] = int(state_dict[cls_key].shape[0])
    if reg_key in state_dict:
        arch['reg_max'] = int(state_dict[reg_key].shape[0]) // 4
    for scale, args in YOLOV8_SCALES.items():
        widen, deepen = args['widen_factor'], args['deepen_factor']
        want = (make_divisible(64, widen),
                make_divisible(args['last_stage_out_channels'], widen),
                tuple(make_round(n, deepen) for n in (3, 6, 6, 3)))
        neck = make_round(3, deepen)
        if (arch['stem'], arch['last_channels'], arch['depths']) == want \
                and arch['neck_depth'] in (0, neck):
            arch['scale'] = scale
            break
    return arch


def describe_yolov8_arch(arch: Mapping[str, object]) -> str:
    """``'n (stem 16, stage-4 256 channels, C2f depths 1-2-2-1, 80
    classes)'`` for a :func:`yolov8_arch_of` result."""
    name = arch['scale'] or 'no YOLOv8 scale'
    classes = '' if arch['num_classes'] is None else \
        f', {arch["num_classes"]} classes'
    return (f'{name} (stem {arch["stem"]}, stage-4 {arch["last_channels"]} '
            f'channels, C2f depths {"-".join(map(str, arch["depths"]))}'
            f'{classes})')

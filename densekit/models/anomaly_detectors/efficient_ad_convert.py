"""EfficientAD checkpoints of the two public implementations -> the keys of
:class:`densekit.EfficientAD`.

Sources:

* nelson1425/EfficientAD (``common.py``, ``efficientad.py``; the README's
  "unofficial implementation" whose ``models/teacher_small.pth`` /
  ``teacher_medium.pth`` are the distilled teachers most users start from;
  check its LICENSE before redistributing converted weights). The networks
  are ``nn.Sequential`` modules, so the keys are layer indices
  (``'0.weight'``, ``'3.bias'`` ...). The teachers are plain state dicts; a
  training run saves ``teacher_final.pth``, ``student_final.pth`` and
  ``autoencoder_final.pth`` as whole pickled modules (``torch.save(module)``:
  readable only with ``weights_only=False``) and keeps the teacher mean /
  std and the map quantiles in memory only, so a converted run has no
  statistics.
* open-edge-platform/anomalib (Apache-2.0),
  ``src/anomalib/models/image/efficient_ad/torch_model.py``: named modules
  (``teacher.conv1``, ``ae.encoder.enconv1``, ``ae.decoder.deconv1`` ...),
  the teacher statistics in ``mean_std`` and the quantiles in ``quantiles``
  (``nn.ParameterDict`` entries); a Lightning checkpoint prefixes them with
  ``model.``. Its ``pretrained_teacher_{small,medium}.pth`` are plain
  state dicts of the PDN (``conv1.weight`` ...).

densekit's PDN and autoencoder use anomalib's parameter names, so the
anomalib and densekit layouts differ only in prefixes and in the statistics
buffers. :func:`convert_pdn`, :func:`convert_autoencoder` and
:func:`convert_anomalib_efficientad` return densekit keys unchanged (safe to
run twice).

Mapping of nelson1425's ``nn.Sequential`` indices (the ReLU, pooling and
upsampling layers between them hold no parameters):

=====================  ===========================================
PDN-S / PDN-M          ``0 3 6 8 [10 12]`` -> ``conv1 .. conv4 [conv5 conv6]``
autoencoder encoder    ``0 2 4 6 8 10`` -> ``encoder.enconv1 .. 6``
autoencoder decoder    ``12 16 20 24 28 32 36 38`` -> ``decoder.deconv1 .. 8``
decoder (a44786c)      ``12 15 18 21 24 27 30 32`` -> ``decoder.deconv1 .. 8``
=====================  ===========================================

nelson1425's ``common.py`` added a ``Dropout(0.2)`` after each of the first
six decoder ReLUs in commit b970d54 (2023-05-09), which moved the decoder
indices; ``autoencoder_final.pth`` files of the first version (a44786c,
2023-04-29) have the old ones. :func:`convert_autoencoder` tells the two
apart by the indices present.

Map post-processing differs between the sources (``EfficientAD``'s
``map_postprocess``); :func:`efficientad_model_args` gives the
:class:`EfficientAD` arguments a converted checkpoint needs.

Note:
    nelson1425's decoder resizes to sizes fixed for 256x256 inputs;
    densekit's (as anomalib's) derives them from the input. Both have
    dropout 0.2 after the first six decoder convolutions (the first
    nelson1425 version had none), so in eval mode at 256x256 the outputs
    are the same.
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from torch import Tensor

from densekit.models.layers.patch_description_network import PDN_SPECS
from densekit.models.utils.checkpoint import (UnconvertedKeysError,
                                              read_checkpoint_file,
                                              state_dict_problems,
                                              unwrap_state_dict)

__all__ = [
    'NELSON_PDN_CONVS', 'NELSON_AE_CONVS', 'NELSON_AE_CONVS_NO_DROPOUT',
    'convert_pdn', 'convert_autoencoder', 'convert_nelson_efficientad',
    'convert_anomalib_efficientad', 'convert_efficientad',
    'efficientad_source', 'efficientad_arch',
    'efficientad_model_args', 'teacher_state_dict', 'load_teacher_checkpoint'
]

# nn.Sequential index of conv{i + 1} in get_pdn_small / get_pdn_medium
NELSON_PDN_CONVS = (0, 3, 6, 8, 10, 12)
_NELSON_ENCODER_CONVS = (0, 2, 4, 6, 8, 10)


def _nelson_ae_convs(decoder_indices) -> 'OrderedDict[int, str]':
    return OrderedDict(
        [(idx, f'encoder.enconv{i + 1}')
         for i, idx in enumerate(_NELSON_ENCODER_CONVS)] +
        [(idx, f'decoder.deconv{i + 1}')
         for i, idx in enumerate(decoder_indices)])


# nn.Sequential index -> densekit name in get_autoencoder: the current
# common.py (since b970d54, 2023-05-09: Upsample, Conv, ReLU, Dropout per
# decoder stage) ...
NELSON_AE_CONVS = _nelson_ae_convs((12, 16, 20, 24, 28, 32, 36, 38))
# ... and the first version (a44786c, 2023-04-29: no Dropout)
NELSON_AE_CONVS_NO_DROPOUT = _nelson_ae_convs(
    (12, 15, 18, 21, 24, 27, 30, 32))
_NELSON_AE_LAYOUTS = (
    ('nelson1425 nn.Sequential autoencoder (with decoder dropout, since '
     '2023-05-09)', NELSON_AE_CONVS),
    ('nelson1425 nn.Sequential autoencoder (no decoder dropout, before '
     '2023-05-09)', NELSON_AE_CONVS_NO_DROPOUT),
)
# the inputs of both implementations are ImageNet-normalised RGB
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_ANOMALIB_QUANTILES = ('qa_st', 'qb_st', 'qa_ae', 'qb_ae')  # our order

_SEQUENTIAL_KEY = re.compile(r'^(\d+)\.(weight|bias)$')
_PDN_KEY = re.compile(r'^conv(\d+)\.(weight|bias)$')
_AE_KEY = re.compile(r'^(encoder\.enconv[1-6]|decoder\.deconv[1-8])\.'
                     r'(weight|bias)$')

StateDictLike = Union[Mapping[str, Tensor], nn.Module]


def _is_sequential(state_dict: Mapping[str, Tensor]) -> bool:
    return any(_SEQUENTIAL_KEY.match(k) for k in state_dict)


def _rename(state_dict: Mapping[str, Tensor], owner: str, layout: str,
            convert_key: Callable[[str], Optional[str]]) -> Dict[str, Tensor]:
    """Every key through ``convert_key`` (None: not in ``layout``); an
    :class:`UnconvertedKeysError` lists all unknown keys. (Not
    ``convert_state_dict_keys``: it keeps only ``backbone.`` keys when there
    are some.)"""
    converted: Dict[str, Tensor] = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        new_key = convert_key(key)
        if new_key is None:
            unknown.append(key)
        else:
            converted[new_key] = value
    if unknown:
        raise UnconvertedKeysError(owner, layout, unknown, len(state_dict))
    return converted


def convert_pdn(state_dict: StateDictLike,
                size: Optional[str] = None) -> Dict[str, Tensor]:
    """A PDN's weights in densekit's :class:`PatchDescriptionNetwork` keys.

    Args:
        state_dict (dict | nn.Module): nelson1425's ``nn.Sequential``
            (module or state dict, keys ``'0.weight'`` ...), or anomalib's /
            densekit's ``conv{i}.weight`` keys (returned unchanged); a
            ``{'state_dict': ...}`` wrapper is unwrapped.
        size (str, optional): ``'S'`` or ``'M'``; checked against the
            weights. Defaults to None (inferred).

    Returns:
        dict: ``conv{i}.weight`` / ``conv{i}.bias`` -> tensor.

    Raises:
        KeyError: keys that are in neither layout (the first 10 listed).
        ValueError: the convolutions are not those of PDN-S / PDN-M, or not
            those of ``size``.
    """
    if size is not None and size not in PDN_SPECS:
        raise ValueError(f'convert_pdn: size must be one of '
                         f'{sorted(PDN_SPECS)}, got {size!r}')
    state_dict = unwrap_state_dict(state_dict, 'convert_pdn')
    if _is_sequential(state_dict):
        layout = 'nelson1425 nn.Sequential PDN'
        index_to_conv = {idx: i + 1 for i, idx in enumerate(NELSON_PDN_CONVS)}

        def convert_key(key):
            match = _SEQUENTIAL_KEY.match(key)
            if not match or int(match.group(1)) not in index_to_conv:
                return None
            return f'conv{index_to_conv[int(match.group(1))]}.' \
                   f'{match.group(2)}'
    else:
        layout = 'anomalib / densekit PDN (conv1 ...)'

        def convert_key(key):
            return key if _PDN_KEY.match(key) else None

    converted = _rename(state_dict, 'convert_pdn', layout, convert_key)
    inferred = _pdn_size(converted)
    if size is not None and size != inferred:
        raise ValueError(f'convert_pdn: size={size!r} was asked, but the '
                         f'weights are those of PDN-{inferred}')
    return converted


def _pdn_size(converted: Mapping[str, Tensor]) -> str:
    """``'S'`` or ``'M'`` from a converted PDN state dict; ValueError when
    the convolutions match neither."""
    convs = sorted({int(_PDN_KEY.match(k).group(1)) for k in converted})
    for size, spec in PDN_SPECS.items():
        expected = list(range(1, len(spec['convs']) + 1))
        if convs != expected:
            continue
        lacking = [f'conv{i}.{p}' for i in expected
                   for p in ('weight', 'bias') if f'conv{i}.{p}' not in
                   converted]
        if lacking:
            raise ValueError(f'convert_pdn: the PDN-{size} weights lack '
                             f'{lacking}')
        first = spec['convs'][0][0]
        if converted['conv1.weight'].shape[0] != first:
            raise ValueError(
                f'convert_pdn: {len(convs)} convolutions (PDN-{size}) but '
                f'conv1 has {converted["conv1.weight"].shape[0]} output '
                f'channels; PDN-{size} has {first}')
        return size
    raise ValueError(
        f'convert_pdn: convolutions {["conv%d" % i for i in convs]} are '
        'neither PDN-S (conv1..conv4) nor PDN-M (conv1..conv6)')


def _nelson_ae_layout(state_dict: Mapping[str, Tensor]
                      ) -> Tuple[str, 'OrderedDict[int, str]']:
    """Which ``get_autoencoder`` version a Sequential state dict is: the
    decoder indices only one of them has decide (the current one ends at
    38, the first at 32)."""
    indices = {int(m.group(1)) for m in map(_SEQUENTIAL_KEY.match,
                                            state_dict) if m}
    shared = set(NELSON_AE_CONVS) & set(NELSON_AE_CONVS_NO_DROPOUT)
    found = [(layout, convs) for layout, convs in _NELSON_AE_LAYOUTS
             if indices & (set(convs) - shared)]
    if len(found) == 1:
        return found[0]
    names = '; '.join(
        f'{layout}: {sorted(convs)}' for layout, convs in _NELSON_AE_LAYOUTS)
    raise KeyError(
        'convert_autoencoder: the nn.Sequential indices '
        f'{sorted(indices)} are '
        + ('of both' if found else 'of neither')
        + f' nelson1425 autoencoder layout ({names})')


def convert_autoencoder(state_dict: StateDictLike) -> Dict[str, Tensor]:
    """The autoencoder's weights in densekit's
    :class:`EfficientADAutoencoder` keys.

    Args:
        state_dict (dict | nn.Module): nelson1425's ``get_autoencoder()``
            ``nn.Sequential`` of either version (indices, see the module
            docstring), or
            anomalib's / densekit's ``encoder.enconv{i}`` /
            ``decoder.deconv{i}`` keys (returned unchanged).

    Returns:
        dict: ``encoder.enconv1.weight`` ... ``decoder.deconv8.bias``.

    Raises:
        KeyError: keys in neither layout, or Sequential indices of neither
            (or both) nelson1425 versions.
        ValueError: some of the 14 convolutions are absent.
    """
    state_dict = unwrap_state_dict(state_dict, 'convert_autoencoder')
    if _is_sequential(state_dict):
        layout, convs = _nelson_ae_layout(state_dict)

        def convert_key(key):
            match = _SEQUENTIAL_KEY.match(key)
            if not match or int(match.group(1)) not in convs:
                return None
            return f'{convs[int(match.group(1))]}.{match.group(2)}'
    else:
        layout = 'anomalib / densekit autoencoder (encoder.enconv1 ...)'

        def convert_key(key):
            return key if _AE_KEY.match(key) else None

    converted = _rename(state_dict, 'convert_autoencoder', layout,
                        convert_key)
    lacking = [f'{name}.{p}' for name in NELSON_AE_CONVS.values()
               for p in ('weight', 'bias') if f'{name}.{p}' not in converted]
    if lacking:
        raise ValueError(f'convert_autoencoder: {len(lacking)} weights '
                         f'absent: {lacking}')
    return converted


def _assemble(teacher: Dict[str, Tensor], student: Dict[str, Tensor],
              autoencoder: Dict[str, Tensor], owner: str) -> Dict[str, Tensor]:
    """``teacher.`` / ``student.`` / ``autoencoder.`` keys plus the
    model's buffers at their unset values, after checking that the three
    networks fit together."""
    size_t, size_s = _pdn_size(teacher), _pdn_size(student)
    if size_t != size_s:
        raise ValueError(f'{owner}: the teacher is PDN-{size_t} but the '
                         f'student PDN-{size_s}')
    last = f'conv{len(PDN_SPECS[size_t]["convs"])}.weight'
    channels = teacher[last].shape[0]
    if student[last].shape[0] != 2 * channels:
        raise ValueError(
            f'{owner}: the student has {student[last].shape[0]} output '
            f'channels; a teacher with {channels} needs {2 * channels}')
    if autoencoder['decoder.deconv8.weight'].shape[0] != channels:
        raise ValueError(
            f'{owner}: the autoencoder has '
            f'{autoencoder["decoder.deconv8.weight"].shape[0]} output '
            f'channels, the teacher {channels}')
    state = OrderedDict()
    for prefix, part in (('teacher.', teacher), ('student.', student),
                         ('autoencoder.', autoencoder)):
        state.update((prefix + k, v) for k, v in part.items())
    state['input_mean'] = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
    state['input_std'] = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
    state['teacher_mean'] = torch.zeros(1, channels, 1, 1)
    state['teacher_std'] = torch.ones(1, channels, 1, 1)
    state['quantiles'] = torch.zeros(4)
    state['has_teacher_stats'] = torch.tensor(False)
    state['has_quantiles'] = torch.tensor(False)
    return state


def efficientad_arch(state_dict: Mapping[str, Tensor]) -> Tuple[str, int]:
    """``(model_size, out_channels)`` of a converted EfficientAD state dict,
    the :class:`EfficientAD` arguments it needs."""
    teacher = OrderedDict((k[len('teacher.'):], v)
                          for k, v in state_dict.items()
                          if k.startswith('teacher.'))
    size = _pdn_size(teacher)
    last = f'conv{len(PDN_SPECS[size]["convs"])}.weight'
    return size, int(teacher[last].shape[0])


def efficientad_model_args(state_dict: Mapping[str, Tensor],
                           source: str,
                           hyper_parameters: Optional[Mapping] = None
                           ) -> Dict[str, object]:
    """The :class:`EfficientAD` arguments that give a converted checkpoint
    its source's maps and scores.

    Args:
        state_dict (dict): A converted state dict.
        source (str): ``'nelson'`` (:func:`convert_nelson_efficientad`) or
            ``'anomalib'`` (:func:`convert_anomalib_efficientad`).
        hyper_parameters (dict, optional): anomalib's Lightning
            ``hyper_parameters`` (``padding``, ``pad_maps``); absent keys
            take anomalib's defaults (False, True).

    Returns:
        dict: ``model_size``, ``out_channels``, ``map_postprocess``
        (``'nelson1425'`` or ``'anomalib'``) and, for anomalib, ``padding``
        and ``pad_maps``.

    Examples:
        >>> efficientad_model_args(state, 'anomalib', {'padding': True})
        ... # doctest: +SKIP
        {'model_size': 'S', 'out_channels': 384, 'map_postprocess':
         'anomalib', 'padding': True, 'pad_maps': True}
    """
    if source not in ('nelson', 'anomalib'):
        raise ValueError(f"efficientad_model_args: source must be 'nelson' "
                         f"or 'anomalib', got {source!r}")
    size, channels = efficientad_arch(state_dict)
    args: Dict[str, object] = dict(model_size=size, out_channels=channels)
    if source == 'nelson':
        # efficientad.py: unpadded PDNs, maps normalised, then padded
        args['map_postprocess'] = 'nelson1425'
        return args
    hyper_parameters = hyper_parameters or {}
    args.update(map_postprocess='anomalib',
                padding=bool(hyper_parameters.get('padding', False)),
                pad_maps=bool(hyper_parameters.get('pad_maps', True)))
    return args


def convert_nelson_efficientad(teacher: StateDictLike,
                               student: StateDictLike,
                               autoencoder: StateDictLike,
                               size: Optional[str] = None
                               ) -> Dict[str, Tensor]:
    """A nelson1425/EfficientAD run -> a whole :class:`EfficientAD` state
    dict.

    Args:
        teacher, student, autoencoder (dict | nn.Module): The three
            networks (the modules of ``*_final.pth``, or state dicts).
        size (str, optional): ``'S'`` or ``'M'`` (``--model_size small``
            / ``medium``); checked against the weights. Defaults to None
            (inferred).

    Returns:
        dict: Every key of ``EfficientAD(model_size=size)``. The run saved
        no statistics: ``teacher_mean`` / ``teacher_std`` / ``quantiles``
        are 0 / 1 / 0 and ``has_teacher_stats`` / ``has_quantiles`` False,
        so ``EfficientADStatsHook`` recomputes them in ``tools/test.py``.
        ``input_mean`` / ``input_std`` are ImageNet's, as in
        ``efficientad.py``'s ``default_transform``.
    """
    converted_teacher = convert_pdn(teacher, size)
    converted_student = convert_pdn(student, size)
    return _assemble(converted_teacher, converted_student,
                     convert_autoencoder(autoencoder),
                     'convert_nelson_efficientad')


def convert_anomalib_efficientad(checkpoint) -> Dict[str, Tensor]:
    """An anomalib EfficientAd checkpoint -> a whole :class:`EfficientAD`
    state dict, statistics included.

    Args:
        checkpoint: A Lightning checkpoint (``{'state_dict': {'model.teacher
            .conv1.weight', ...}}``), its state dict, or the state dict of
            ``EfficientAdModel`` (no ``model.`` prefix). Keys outside
            ``model.`` (thresholds, metrics of the Lightning module) are
            dropped, and logged.

    Returns:
        dict: Every key of ``EfficientAD(model_size=...)`` (the size is
        inferred: :func:`efficientad_arch`). ``teacher_mean`` / ``teacher_std``
        are ``mean_std.mean`` / ``mean_std.std`` and ``quantiles`` the stack
        (qa_st, qb_st, qa_ae, qb_ae). The ``has_*`` flags follow anomalib's
        ``EfficientAdModel.is_set``: True when any of the values has a
        non-zero sum; unset statistics are written as densekit's defaults
        (mean 0, std 1 instead of anomalib's 0, quantiles 0).

    Raises:
        KeyError: keys under ``model.`` that anomalib's model does not have,
            or absent ``mean_std`` / ``quantiles`` entries.

    Note:
        anomalib pads and resizes the raw maps before normalising them (and
        takes its quantiles on those maps): the model needs
        ``map_postprocess='anomalib'`` to give anomalib's maps and scores,
        and to recompute the quantiles (``EfficientADStatsHook``) as anomalib
        does. anomalib's ``padding`` and ``pad_maps`` options are not stored
        in the weights: :func:`efficientad_model_args` reads them from the
        Lightning checkpoint's ``hyper_parameters``.
    """
    owner = 'convert_anomalib_efficientad'
    state_dict = unwrap_state_dict(checkpoint, owner)
    if 'teacher_mean' in state_dict and 'quantiles' in state_dict:
        return OrderedDict(state_dict)  # densekit's layout already
    if any(k.startswith('model.') for k in state_dict):
        dropped = [k for k in state_dict if not k.startswith('model.')]
        if dropped:
            # Lightning-module state (thresholds, normalisation metrics)
            print_log(f'{owner}: dropping {len(dropped)} keys outside '
                      f'model.: {dropped[:10]}', logger='current')
        state_dict = OrderedDict((k[len('model.'):], v)
                                 for k, v in state_dict.items()
                                 if k.startswith('model.'))
    parts = dict(teacher=OrderedDict(), student=OrderedDict(),
                 ae=OrderedDict(), mean_std=OrderedDict(),
                 quantiles=OrderedDict())
    unknown = []
    for key, value in state_dict.items():
        head, _, rest = key.partition('.')
        if head in parts and rest:
            parts[head][rest] = value
        else:
            unknown.append(key)
    if unknown:
        raise UnconvertedKeysError(owner, "anomalib EfficientAdModel",
                                   unknown, len(state_dict))
    lacking = [f'mean_std.{k}' for k in ('mean', 'std')
               if k not in parts['mean_std']] + \
        [f'quantiles.{k}' for k in _ANOMALIB_QUANTILES
         if k not in parts['quantiles']]
    extra = [f'mean_std.{k}' for k in parts['mean_std']
             if k not in ('mean', 'std')] + \
        [f'quantiles.{k}' for k in parts['quantiles']
         if k not in _ANOMALIB_QUANTILES]
    if lacking or extra:
        raise KeyError(f'{owner}: not an anomalib EfficientAdModel state '
                       f'dict: absent {lacking}, unknown {extra}')
    state = _assemble(convert_pdn(parts['teacher']),
                      convert_pdn(parts['student']),
                      convert_autoencoder(parts['ae']), owner)
    channels = state['teacher_mean'].shape[1]

    # anomalib's EfficientAdModel.is_set
    def is_set(values):
        return any(bool(v.sum() != 0) for v in values)

    mean, std = parts['mean_std']['mean'], parts['mean_std']['std']
    if is_set((mean, std)):
        for name, value in (('teacher_mean', mean), ('teacher_std', std)):
            if value.numel() != channels:
                raise ValueError(f'{owner}: mean_std has {value.numel()} '
                                 f'channels, the teacher {channels}')
            state[name] = value.detach().float().reshape(1, channels, 1, 1)
        state['has_teacher_stats'] = torch.tensor(True)
    quantiles = [parts['quantiles'][k].detach().float().reshape(())
                 for k in _ANOMALIB_QUANTILES]
    if is_set(quantiles):
        state['quantiles'] = torch.stack(quantiles)
        state['has_quantiles'] = torch.tensor(True)
    return state


_NELSON_PARTS = ('teacher', 'student', 'autoencoder')


def efficientad_source(checkpoint) -> str:
    """``'nelson'`` for a ``{'teacher', 'student', 'autoencoder'}`` bundle
    of nelson1425's three networks, else ``'anomalib'`` (anomalib's or
    densekit's whole-model state dict)."""
    if isinstance(checkpoint, Mapping) and set(_NELSON_PARTS) <= set(
            checkpoint) and all(isinstance(checkpoint[k], (Mapping, nn.Module))
                                for k in _NELSON_PARTS):
        return 'nelson'
    return 'anomalib'


def convert_efficientad(checkpoint, *, with_head: bool = False,
                        size: Optional[str] = None) -> Dict[str, Tensor]:
    """Either source's trained EfficientAD -> a whole :class:`EfficientAD`
    state dict: the common converter signature over
    :func:`convert_nelson_efficientad` and
    :func:`convert_anomalib_efficientad`.

    Args:
        checkpoint: ``{'teacher': ..., 'student': ..., 'autoencoder':
            ...}`` (nelson1425's three ``*_final.pth``, modules or state
            dicts), or an anomalib checkpoint / state dict (or densekit's,
            returned unchanged).
        with_head (bool): Must be False (EfficientAD has no classifier
            head).
        size (str, optional): nelson1425's ``'S'`` / ``'M'``, checked
            against the weights. Defaults to None (inferred).

    Returns:
        dict: Every key of ``EfficientAD(model_size=...)``.

    Raises:
        ValueError: ``with_head=True``, or networks that do not fit
            together.
        UnconvertedKeysError: keys of neither layout.
    """
    if with_head:
        raise ValueError('convert_efficientad: with_head=True does not '
                         'apply: EfficientAD has no classifier head')
    if efficientad_source(checkpoint) == 'nelson':
        return convert_nelson_efficientad(
            *(checkpoint[k] for k in _NELSON_PARTS), size=size)
    return convert_anomalib_efficientad(checkpoint)


def teacher_state_dict(checkpoint) -> Tuple[Dict[str, Tensor], str]:
    """The teacher part of any accepted checkpoint layout, in densekit's
    PDN keys.

    Args:
        checkpoint: nelson1425's ``teacher_*.pth`` (Sequential indices),
            anomalib's ``pretrained_teacher_*.pth`` or a distilled teacher
            (``conv1.weight`` ..., possibly under ``state_dict``), an
            anomalib Lightning checkpoint (``model.teacher.*``) or a
            densekit / anomalib whole-model state dict (``teacher.*``).

    Returns:
        tuple[dict, str]: The converted weights and the layout found.
    """
    state_dict = unwrap_state_dict(checkpoint, 'teacher_state_dict')
    for prefix, layout in (('model.teacher.', 'anomalib Lightning model'),
                           ('teacher.', 'whole EfficientAD model')):
        if any(k.startswith(prefix) for k in state_dict):
            state_dict = OrderedDict((k[len(prefix):], v)
                                     for k, v in state_dict.items()
                                     if k.startswith(prefix))
            break
    else:
        layout = ('nelson1425 nn.Sequential teacher'
                  if _is_sequential(state_dict) else 'PDN state dict')
    return convert_pdn(state_dict), layout


def _reason(err: Exception) -> str:
    """The telling line of a failed ``weights_only`` load (torch's message
    is several paragraphs)."""
    lines = str(err.__cause__ or err).splitlines() or [type(err).__name__]
    for line in lines:
        if 'Unsupported global' in line:
            return line.strip()
    return lines[0].strip()


def load_teacher_checkpoint(teacher: nn.Module, path: str) -> str:
    """Strictly load a distilled teacher into ``teacher``
    (:meth:`EfficientAD.init_weights`), converting the layouts of
    :func:`teacher_state_dict`. The file is read with
    ``weights_only=True``.

    Args:
        teacher (PatchDescriptionNetwork): The model's teacher.
        path (str): Checkpoint file.

    Returns:
        str: The layout found.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: naming ``path``: the file is not a plain state dict (a
            whole pickled module: convert it with
            ``tools/model_converters/efficientad_to_densekit.py
            --unsafe-load``), its keys are in no known layout, or the
            weights do not fit ``teacher`` (missing / unexpected keys,
            other shapes, e.g. a PDN-S file for a PDN-M teacher).
    """
    import os.path as osp
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'EfficientAD teacher checkpoint {path} does not exist '
            '(model.teacher_checkpoint: the published teacher_small.pth / '
            'teacher_medium.pth or a tools/anomaly/distill_teacher.py '
            'output)')
    try:
        checkpoint = read_checkpoint_file(path)
    except RuntimeError as err:
        raise ValueError(
            f'EfficientAD teacher checkpoint {path} is not a plain state '
            f'dict ({_reason(err)}). A whole pickled module (e.g. '
            "nelson1425's teacher_final.pth) must be converted first, if "
            'you trust the file: python tools/model_converters/'
            'efficientad_to_densekit.py nelson --teacher ... --student ... '
            '--autoencoder ... --size S|M OUT.pth --unsafe-load, then set '
            'teacher_checkpoint=OUT.pth') from err
    try:
        state_dict, layout = teacher_state_dict(checkpoint)
    except (KeyError, ValueError, TypeError) as err:
        message = err.args[0] if err.args else str(err)
        raise ValueError(f'EfficientAD teacher checkpoint {path}: '
                         f'{message}') from err
    problems, _ = state_dict_problems(state_dict, teacher.state_dict())
    if problems:
        arch = (f'PDN-{getattr(teacher, "size", "?")} with '
                f'{getattr(teacher, "out_channels", "?")} channels')
        raise ValueError(
            f'EfficientAD teacher checkpoint {path} ({layout}) does not fit '
            f'the teacher ({arch}), {len(problems)} problems: '
            + '; '.join(problems[:12])
            + (' ...' if len(problems) > 12 else '')
            + '. Check model.model_size / model.out_channels')
    teacher.load_state_dict(state_dict, strict=True)
    return layout

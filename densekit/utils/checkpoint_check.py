"""Read checkpoints with errors that say which file is wrong and what to do.

mmengine loads inference weights non-strictly: a Mamba-YOLO checkpoint given
with a YOLOv8 config warns about hundreds of keys, predicts with random
weights and exits 0. A truncated file fails inside ``torch.load`` with
"PytorchStreamReader failed reading zip archive". Here:

* :func:`check_checkpoint_file` finds a truncated or corrupt file before it
  is unpickled and says so, naming the previous checkpoint of the same work
  directory to resume from;
* :func:`read_checkpoint` reads one through the safe loader
  (:func:`densekit.utils.compat.safe_torch_load`) with that check;
* :func:`load_weights` loads a checkpoint into a model strictly by default:
  a mismatch is one line naming the first mismatching keys and the config
  the checkpoint was saved from, and a checkpoint saved too early for its
  BatchNorm statistics to be usable is warned about
  (:func:`warn_if_barely_trained`).
"""
import glob
import logging
import math
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Any, Dict, List, Tuple

from mmengine.logging import print_log

# checkpoints of a run, newest last, as CheckpointHook names them
_CKPT_PATTERNS = ('epoch_*.pth', 'iter_*.pth', 'best_*.pth')


class CheckpointError(ValueError):
    """A checkpoint file that is corrupt, truncated or does not fit."""


def _step(path: str) -> Tuple[int, float]:
    match = re.search(r'(\d+)\.pth$', osp.basename(path))
    return (int(match.group(1)) if match else -1, osp.getmtime(path))


def previous_checkpoints(path: str) -> List[str]:
    """The other checkpoints in ``path``'s folder, newest first
    (``epoch_*.pth`` / ``iter_*.pth`` by number, then ``best_*.pth``)."""
    folder = osp.dirname(osp.abspath(path))
    found = set()
    for pattern in _CKPT_PATTERNS[:2]:
        found.update(glob.glob(osp.join(folder, pattern)))
    found.discard(osp.abspath(path))
    return sorted(found, key=_step, reverse=True)


def _advice(path: str, action: str) -> str:
    others = [p for p in previous_checkpoints(path)
              if _is_intact(p)[0]]
    if action == 'resume' and others:
        return (f'resume from the previous checkpoint: --resume {others[0]} '
                f'(and move {osp.basename(path)} away so that a bare '
                '--resume does not pick it again)')
    if others:
        return f'use another checkpoint of that run, e.g. {others[0]}'
    return ('re-download it or train again; a checkpoint is written to a '
            'temporary file and renamed when complete, so a truncated one '
            'was copied or downloaded incompletely')


def _is_intact(path: str) -> Tuple[bool, str]:
    """(ok, reason): a zip checkpoint whose records all pass their CRC, or
    a legacy (non-zip) pickle that starts as one."""
    try:
        size = osp.getsize(path)
        if size == 0:
            return False, 'the file is empty'
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
            if bad is not None:
                return False, f'record {bad} fails its CRC check'
            return True, ''
        with open(path, 'rb') as f:
            head = f.read(2)
        if head[:1] == b'\x80':  # a pickle protocol marker: legacy format
            return True, ''
        return False, ('it is neither a zip archive (torch.save) nor a '
                       'pickle; the end of the file (the zip directory) '
                       'is missing')
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        return False, f'{type(e).__name__}: {e}'


def check_checkpoint_file(path: str, action: str = 'load') -> None:
    """Raise if ``path`` is missing, truncated or corrupt.

    Args:
        path (str): Local checkpoint path.
        action (str): ``'resume'`` or ``'load'``, for the advice.

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: Naming the file, the fault and what to do.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    ok, reason = _is_intact(path)
    if not ok:
        raise CheckpointError(
            f'checkpoint {path} is corrupt or truncated ({reason}); '
            f'{_advice(path, action)}')


def read_checkpoint(path: str, action: str = 'load') -> dict:
    """Load a local checkpoint to the CPU, checking it first.

    Returns:
        dict: The checkpoint (a bare state dict is returned as it is).

    Raises:
        FileNotFoundError, CheckpointError: See
        :func:`check_checkpoint_file`.
    """
    check_checkpoint_file(path, action)
    from .compat import safe_torch_load
    try:
        return safe_torch_load(path, map_location='cpu')
    except (RuntimeError, EOFError, pickle.UnpicklingError, OSError,
            zipfile.BadZipFile) as e:
        raise CheckpointError(
            f'checkpoint {path} could not be read ({type(e).__name__}: '
            f'{str(e).splitlines()[0][:200]}); {_advice(path, action)}'
        ) from None


def state_dict_of(checkpoint: Any) -> Dict[str, Any]:
    """The model weights of a checkpoint (``state_dict``/``model`` key or a
    bare dict), with a DataParallel ``module.`` prefix removed."""
    state = checkpoint
    if isinstance(checkpoint, dict):
        for key in ('state_dict', 'model'):
            if isinstance(checkpoint.get(key), dict):
                state = checkpoint[key]
                break
    if not isinstance(state, dict):
        raise CheckpointError('the checkpoint holds no state dict (got '
                              f'{type(state).__name__})')
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return state


def saved_from(checkpoint: Any) -> str:
    """What a checkpoint's ``meta`` says it was trained with: the config
    file (from mmengine's ``experiment_name``) and the model/backbone types
    (from the saved config text), e.g.
    ``'configs/det/mamba_yolo_t_shapes.py (densekit.MambaYOLO)'``."""
    meta = checkpoint.get('meta', {}) if isinstance(checkpoint, dict) else {}
    if not isinstance(meta, dict) or not meta:
        return 'unknown (the checkpoint has no meta)'
    parts = []
    name = re.sub(r'_\d{8}_\d{6}$', '', str(meta.get('experiment_name', '')))
    if name:
        root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
        found = glob.glob(osp.join(root, 'configs', '**', f'{name}.py'),
                          recursive=True)
        parts.append(osp.relpath(found[0], root) if found else
                     f'a config named {name}.py')
    text = meta.get('cfg')
    if isinstance(text, str):
        types = []
        for key in ('backbone', 'neck'):
            match = re.search(key + r"=dict\((?:[^()]|\([^()]*\))*?type='"
                              r"([^']+)'", text, re.S)
            if match:
                types.append(match.group(1))
        if types:
            parts.append('(' + ', '.join(types) + ')')
    return ' '.join(parts) or 'unknown'


def _first(keys: List[str], n: int = 3) -> str:
    return ', '.join(keys[:n]) + (', ...' if len(keys) > n else '')


def load_weights(model: Any,
                 checkpoint: Any,
                 *,
                 strict: bool = True,
                 path: str = '',
                 config: str = '',
                 owner: str = '') -> Dict[str, Any]:
    """Load a checkpoint's weights into ``model``, strictly by default
    (:func:`check_weights_fit`, then ``load_state_dict``).

    Args:
        model (nn.Module): The model built from ``config``.
        checkpoint (dict | str): A loaded checkpoint or its path (read with
            :func:`read_checkpoint`).
        strict (bool): Raise on any missing, unexpected or differently
            shaped key. False loads the keys that fit and logs one warning
            line. Defaults to True.
        path (str): The checkpoint's path for messages (taken from
            ``checkpoint`` when it is a path).
        config (str): The config's path for messages.
        owner (str): Who is loading (prefix of messages).

    Returns:
        dict: The checkpoint (for its ``meta``).

    Raises:
        CheckpointError: With ``strict``, one line naming the first
            mismatching keys, the config the checkpoint was saved from and
            ``--no-strict``.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        path = os.fspath(checkpoint)
        checkpoint = read_checkpoint(path)
    state = check_weights_fit(model, checkpoint, strict=strict, path=path,
                              config=config, owner=owner)
    model.load_state_dict(state, strict=False)
    warn_if_barely_trained(model, checkpoint, path=path, owner=owner)
    return checkpoint


def batchnorm_settle_iters(model: Any) -> int:
    """Training iterations after which ``model``'s BatchNorm running
    statistics no longer carry their start: ten time constants of the
    slowest running average, ``ceil(10 / momentum)`` (334 for YOLO's
    momentum 0.03, 100 for PyTorch's 0.1); 0 without BatchNorm or with
    cumulative averages (``momentum=None``)."""
    import torch.nn as nn
    momenta = [m.momentum for m in model.modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm)
               and m.track_running_stats and m.momentum]
    return math.ceil(10 / min(momenta)) if momenta else 0


def warn_if_barely_trained(model: Any,
                           checkpoint: Any,
                           *,
                           path: str = '',
                           owner: str = '') -> bool:
    """Warn (and return True) when ``checkpoint`` was saved after fewer
    training iterations (``meta.iter``, as mmengine's runner saves it) than
    :func:`batchnorm_settle_iters`.

    Early in training the weights change faster than BatchNorm's running
    statistics follow them; in eval mode those stale statistics are
    compounded layer by layer, so a detector a few dozen iterations old can
    score every box of every class near 1.00 while its train-mode outputs
    are still near zero. That is the model's state, not a fault of the
    decoding: the warning says so instead of leaving the pictures to be
    believed.
    """
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    iters = meta.get('iter') if isinstance(meta, dict) else None
    if not isinstance(iters, int) or isinstance(iters, bool):
        return False
    settle = batchnorm_settle_iters(model)
    if iters >= settle:
        return False
    prefix = f'{owner}: ' if owner else ''
    name = f'checkpoint {path}' if path else 'the checkpoint'
    print_log(
        f'{prefix}{name} was saved after {iters} training iterations, '
        f'fewer than the {settle} its BatchNorm running statistics need to '
        'follow the weights (10 / momentum): its eval-mode outputs are not '
        'yet meaningful (a detector this young can score every box near '
        '1.00); train for more iterations',
        logger='current', level=logging.WARNING)
    return True


def check_weights_fit(model: Any,
                      checkpoint: Any,
                      *,
                      strict: bool = True,
                      path: str = '',
                      config: str = '',
                      owner: str = '') -> Dict[str, Any]:
    """Compare a checkpoint's weights with ``model``'s keys and shapes.

    Args: as :func:`load_weights`.

    Returns:
        dict: The weights that fit (all of them when nothing mismatches).

    Raises:
        CheckpointError: With ``strict``, on any mismatch (one line).
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        path = os.fspath(checkpoint)
        checkpoint = read_checkpoint(path)
    state = state_dict_of(checkpoint)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [k for k in own if k in state and hasattr(state[k], 'shape')
             and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shape:
        found = []
        if missing:
            found.append(f'{len(missing)} of the model\'s {len(own)} keys '
                         f'missing (first: {_first(missing)})')
        if unexpected:
            found.append(f'{len(unexpected)} unexpected (first: '
                         f'{_first(unexpected)})')
        if shape:
            k = shape[0]
            found.append(f'{len(shape)} of another shape (first: {k} '
                         f'{tuple(state[k].shape)} in the checkpoint, '
                         f'{tuple(own[k].shape)} in the model)')
        prefix = f'{owner}: ' if owner else ''
        what = (f'checkpoint {path or "<given>"} does not fit the model of '
                f'{config or "the config"}: {"; ".join(found)}. It was '
                f'saved from {saved_from(checkpoint)}')
        if strict:
            raise CheckpointError(
                f'{prefix}{what}. Pass the config it was trained with, or '
                '--no-strict (strict=False) to load only the weights that '
                'fit')
        print_log(f'{prefix}{what}; strict=False: loading the '
                  f'{len(own) - len(missing) - len(shape)} weights that fit, '
                  'the others keep their initial values',
                  logger='current', level=logging.WARNING)
        state = {k: v for k, v in state.items()
                 if k in own and k not in shape}
    return state

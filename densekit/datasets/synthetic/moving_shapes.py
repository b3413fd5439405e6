"""Deterministic "moving shapes" videos in the Argoverse-HD layout.

:func:`generate_moving_shapes_argoverse` writes a small streaming-perception
set laid out exactly as Argoverse-HD is (COCO-style JSON plus the sequence
keys ``sequences``, ``seq_dirs``, ``sid``, ``fid``, ``track``; see
:mod:`densekit.datasets.argoverse_hd_dataset`), so
:class:`densekit.ArgoverseHDDataset` reads it unchanged::

    <out_dir>/annotations/train.json
    <out_dir>/annotations/val.json
    <out_dir>/frames/<seq_name>/<fid:06d>.jpg   # seq_name train_0000, val_0003
    <out_dir>/synthetic_meta.json               # generation parameters

``seq_dirs`` are the sequence names, relative to ``frames/``: read the set
with ``data_root=<out_dir>, data_prefix=dict(img='frames/')`` and
``metainfo=dict(classes=MOVING_SHAPES_CLASSES)``. Category ids are 0-based
(as in Argoverse-HD), image ids 0-based in (sid, fid) order, annotation ids
1-based (pycocotools' matcher treats a ground-truth id of 0 as unmatched).

Each sequence has a static textured background (that of
:mod:`densekit.datasets.synthetic.shapes`, plus fresh pixel grain in every
frame) and ``min_objects`` to ``max_objects`` shapes of the classes in
:data:`MOVING_SHAPES_CLASSES`, each a track with a random size, colour,
aspect, spin and one motion of :data:`MOTION_TYPES`:

- ``constant``: constant velocity;
- ``accelerate``: constant acceleration (speeding up, or braking and
  reversing), the speed capped at 1.5 x ``max_speed``;
- ``turn``: the velocity turns at a constant rate (circular arcs);
- ``stop_and_go``: the speed oscillates between ``1 - a`` and ``1 + a`` times
  its base value.

Every object bounces off the image borders (its circumscribed circle stays
inside), which changes its velocity abruptly, so the box of frame t+1 is not
the box of frame t and a forecaster must use the motion. Shapes later in a
sequence's drawing order pass over earlier ones; annotations are the
bounding boxes of the *visible* pixels, and an object with fewer than
``max(8, MIN_VISIBLE_FRACTION * its full area)`` visible pixels is not
annotated in that frame (its track resumes when it re-emerges).

Randomness: the motion, shapes and background of sequence ``q`` of split
``p`` (train 0, val 1) come from ``np.random.default_rng([seed, p, q, 0])``,
the grain of its frame ``fid`` from ``default_rng([seed, p, q, 1, fid])``;
the same arguments give byte-identical JSON and identical pixels, and the
val split does not depend on the train split's size.

The embedded default (``tools/data/make_synthetic.py moving_shapes``: 48
train sequences of 20 frames + 8 val sequences of 30 frames at 256 x 256,
2-5 objects of 16-72 px moving 1.5-6 px per frame) is sized for a 2-core
CPU: 1200 frames, written in about 8 s on one CPU core. Many short training
sequences rather than a few long ones: with 16 sequences of 60 frames a
YOLOv8-n learned the few backgrounds and objects it saw (mAP 0.86 on the
training frames, 0.22 on val).
"""
import json
import os
import os.path as osp
from typing import Dict, List, NamedTuple, Optional, Sequence, Union

import cv2
import numpy as np

from .shapes import (SHAPES_CLASSES, _low_freq_noise, _pick_color, _rasterize,
                     _render_background, _unit_outline, clear_generated_paths)

MOVING_SHAPES_CLASSES = SHAPES_CLASSES
MOVING_SHAPES_METAINFO = dict(
    classes=MOVING_SHAPES_CLASSES,
    palette=[(220, 20, 60), (0, 114, 189), (0, 166, 81), (237, 177, 32)])
MOTION_TYPES = ('constant', 'accelerate', 'turn', 'stop_and_go')
# Bump when the drawing code changes, so cached datasets are regenerated.
GENERATOR_VERSION = 1
# Objects with less of their area visible than this are not annotated.
MIN_VISIBLE_FRACTION = 0.25
JPEG_QUALITY = 95
META_FILE = 'synthetic_meta.json'
IMG_PREFIX = 'frames/'

_SPLITS = ('train', 'val')
# Defaults as fractions of img_size (values at 256 px).
_MIN_SIZE_RATIO = 16 / 256
_MAX_SIZE_RATIO = 72 / 256
_MIN_SPEED_RATIO = 1.5 / 256
_MAX_SPEED_RATIO = 6.0 / 256


class MovingShapesSequence(NamedTuple):
    """One rendered sequence and its tracks.

    Attributes:
        frames (np.ndarray): uint8 frames of shape (F, H, W, 3), BGR.
        labels (np.ndarray): int64 class indices into
            :data:`MOVING_SHAPES_CLASSES` of shape (K, ), one per track.
        motions (np.ndarray): int64 indices into :data:`MOTION_TYPES` (K, ).
        masks (np.ndarray): bool visible masks of shape (F, K, H, W); they
            are pairwise disjoint within a frame.
        boxes (np.ndarray): float64 (F, K, 4) COCO ``[x, y, w, h]`` boxes of
            the visible masks (pixel ``i`` covers ``[i, i + 1)``); NaN where
            ``annotated`` is False.
        annotated (np.ndarray): bool (F, K), whether the object is
            annotated in the frame (see the module docstring).
        centres (np.ndarray): float64 (F, K, 2) true (x, y) centres.
    """
    frames: np.ndarray
    labels: np.ndarray
    motions: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    annotated: np.ndarray
    centres: np.ndarray


def _rotate(vectors: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotate (K, 2) vectors by (K, ) angles in radians."""
    cos, sin = np.cos(angles), np.sin(angles)
    x, y = vectors[:, 0], vectors[:, 1]
    return np.stack([cos * x - sin * y, sin * x + cos * y], axis=1)


def _simulate(rng: np.random.Generator, num_frames: int, img_size: int,
              radii: np.ndarray, motions: np.ndarray, min_speed: float,
              max_speed: float) -> np.ndarray:
    """Integrate the K objects' motions; returns (F, K, 2) centres.

    All K objects advance together (vectorised); only the frame loop is in
    Python.
    """
    k = len(radii)
    scale = img_size / 256
    low, high = radii[:, None], img_size - radii[:, None]
    pos = rng.uniform(0, 1, (k, 2)) * (high - low) + low
    speed = rng.uniform(min_speed, max_speed, k)
    heading = rng.uniform(0, 2 * np.pi, k)
    vel = np.stack([np.cos(heading), np.sin(heading)], 1) * speed[:, None]
    accel = _rotate(
        np.stack([rng.uniform(0.04, 0.2, k) * scale,
                  np.zeros(k)], 1), rng.uniform(0, 2 * np.pi, k))
    omega = np.deg2rad(rng.uniform(1.5, 6.0, k)) * rng.choice([-1, 1], k)
    amp = rng.uniform(0.5, 0.95, k)
    period = rng.uniform(15, 40, k)
    phase = rng.uniform(0, 2 * np.pi, k)
    cap = 1.5 * max_speed

    is_acc = motions == MOTION_TYPES.index('accelerate')
    is_turn = motions == MOTION_TYPES.index('turn')
    is_sng = motions == MOTION_TYPES.index('stop_and_go')
    centres = np.empty((num_frames, k, 2))
    for f in range(num_frames):
        centres[f] = pos
        factor = np.where(is_sng,
                          1 + amp * np.sin(2 * np.pi * f / period + phase),
                          1.0)
        pos = pos + vel * factor[:, None]
        # Bounce: mirror the position and the velocity (and acceleration)
        # component that crossed a border.
        below, above = pos < low, pos > high
        pos = np.where(below, 2 * low - pos, pos)
        pos = np.where(above, 2 * high - pos, pos)
        pos = np.clip(pos, low, high)
        flip = np.where(below | above, -1.0, 1.0)
        vel, accel = vel * flip, accel * flip
        # Velocity changes of the next step.
        vel = np.where(is_acc[:, None], vel + accel, vel)
        vel = np.where(is_turn[:, None], _rotate(vel, omega), vel)
        speed = np.linalg.norm(vel, axis=1)
        too_fast = is_acc & (speed > cap)
        vel = np.where(too_fast[:, None],
                       vel * (cap / np.maximum(speed, 1e-9))[:, None], vel)
        accel = np.where(too_fast[:, None], -accel, accel)
    return centres


def render_moving_shapes_sequence(
        seed: Union[int, Sequence[int]],
        num_frames: int = 60,
        img_size: int = 256,
        min_objects: int = 2,
        max_objects: int = 5,
        min_size: Optional[float] = None,
        max_size: Optional[float] = None,
        min_speed: Optional[float] = None,
        max_speed: Optional[float] = None) -> MovingShapesSequence:
    """Render one moving-shapes sequence (see the module docstring).

    Args:
        seed (int | Sequence[int]): Entropy of the sequence; the sequence
            generator is ``default_rng([*seed, 0])``, frame ``f``'s grain
            ``default_rng([*seed, 1, f])``.
        num_frames (int): F. Defaults to 60.
        img_size (int): Height and width. Defaults to 256.
        min_objects (int): Defaults to 2.
        max_objects (int): Defaults to 5.
        min_size (float, optional): Smallest object diameter in px. Defaults
            to None: ``img_size * 16 / 256``.
        max_size (float, optional): Largest diameter. Defaults to None:
            ``img_size * 72 / 256``.
        min_speed (float, optional): Smallest base speed in px per frame.
            Defaults to None: ``img_size * 1.5 / 256``.
        max_speed (float, optional): Largest base speed. Defaults to None:
            ``img_size * 6 / 256``.

    Returns:
        :obj:`MovingShapesSequence`: frames, tracks, visible masks, boxes.

    Examples:
        >>> seq = render_moving_shapes_sequence([0, 0, 0], num_frames=4,
        ...                                     img_size=64)
        >>> seq.frames.shape, seq.boxes.shape[0]
        ((4, 64, 64, 3), 4)
    """
    seed = [int(seed)] if np.isscalar(seed) else [int(s) for s in seed]
    min_size = img_size * _MIN_SIZE_RATIO if min_size is None else min_size
    max_size = img_size * _MAX_SIZE_RATIO if max_size is None else max_size
    min_speed = (img_size * _MIN_SPEED_RATIO
                 if min_speed is None else min_speed)
    max_speed = (img_size * _MAX_SPEED_RATIO
                 if max_speed is None else max_speed)
    rng = np.random.default_rng([*seed, 0])
    bg = _render_background(rng, img_size)
    shade = _low_freq_noise(rng, img_size, 1)[..., 0]

    k = int(rng.integers(min_objects, max_objects + 1))
    labels = rng.integers(len(MOVING_SHAPES_CLASSES), size=k)
    motions = rng.integers(len(MOTION_TYPES), size=k)
    sizes = np.exp(rng.uniform(np.log(min_size), np.log(max_size), k))
    outlines = []
    for label in labels:
        unit, min_aspect, max_rot = _unit_outline(rng, int(label))
        aspect = rng.uniform(min_aspect, 1.0)
        squeeze = np.array([aspect, 1.0]) if rng.random() < 0.5 else \
            np.array([1.0, aspect])
        theta0 = np.deg2rad(rng.uniform(0.0, max_rot)) if max_rot else 0.0
        # Circles (max_rot 0) do not spin: a spinning ellipse is fine, but
        # keep one class's look stable.
        spin = 0.0 if not max_rot or rng.random() < 0.5 else np.deg2rad(
            rng.uniform(0.5, 3.0)) * rng.choice([-1, 1])
        outlines.append((unit * squeeze, theta0, spin))
    radii = sizes / 2
    centres = _simulate(rng, num_frames, img_size, radii, motions, min_speed,
                        max_speed)
    shade_amp = rng.uniform(5, 20, k)

    # Colour chosen against the background around the first position.
    colors = []
    for i, (unit, theta0, _) in enumerate(outlines):
        mask0 = _rasterize(
            _place(unit, theta0, radii[i], centres[0, i]), img_size)
        colors.append(_pick_color(rng, bg, mask0))

    frames = np.empty((num_frames, img_size, img_size, 3), np.uint8)
    masks = np.zeros((num_frames, k, img_size, img_size), bool)
    full_areas = np.zeros((num_frames, k), np.int64)
    for f in range(num_frames):
        frame_rng = np.random.default_rng([*seed, 1, f])
        # Grey pixel grain (one channel, broadcast: a third of the cost).
        canvas = bg + frame_rng.standard_normal(
            (img_size, img_size, 1), np.float32) * 2.0
        for i, (unit, theta0, spin) in enumerate(outlines):
            poly = _place(unit, theta0 + spin * f, radii[i], centres[f, i])
            mask = _rasterize(poly, img_size)
            masks[f, i] = mask
            # Fill inside the polygon's bounding box only (cheaper indexing).
            x0, y0 = np.clip(np.floor(poly.min(0)).astype(int) - 1, 0,
                             img_size)
            x1, y1 = np.clip(np.ceil(poly.max(0)).astype(int) + 1, 0,
                             img_size)
            crop = mask[y0:y1, x0:x1]
            canvas[y0:y1, x0:x1][crop] = colors[i] + (
                shade[y0:y1, x0:x1][crop] * shade_amp[i])[:, None]
        full_areas[f] = masks[f].reshape(k, -1).sum(1)
        # Visible = not covered by any object drawn later.
        covered = masks[f, -1].copy()
        for i in range(k - 2, -1, -1):
            drawn = masks[f, i].copy()
            masks[f, i] &= ~covered
            covered |= drawn
        frames[f] = np.clip(np.round(canvas), 0, 255).astype(np.uint8)

    visible = masks.reshape(num_frames, k, -1).sum(-1)
    annotated = visible >= np.maximum(8, MIN_VISIBLE_FRACTION * full_areas)
    rows = masks.any(axis=3)  # (F, K, H): which rows hold the mask
    cols = masks.any(axis=2)  # (F, K, W)
    y0, y1 = rows.argmax(-1), img_size - rows[..., ::-1].argmax(-1)
    x0, x1 = cols.argmax(-1), img_size - cols[..., ::-1].argmax(-1)
    boxes = np.stack([x0, y0, x1 - x0, y1 - y0], -1).astype(np.float64)
    boxes[~annotated] = np.nan
    return MovingShapesSequence(frames, labels.astype(np.int64),
                                motions.astype(np.int64), masks, boxes,
                                annotated, centres)


def _place(unit: np.ndarray, theta: float, radius: float,
           centre: np.ndarray) -> np.ndarray:
    """Rotate, scale and move a (V, 2) unit outline to pixel coordinates."""
    rot = np.array([[np.cos(theta), -np.sin(theta)],
                    [np.sin(theta), np.cos(theta)]])
    return unit @ rot.T * radius + centre


def _categories() -> List[dict]:
    return [
        dict(id=i, name=name, supercategory='shape')
        for i, name in enumerate(MOVING_SHAPES_CLASSES)
    ]


def _seq_name(split: str, index: int) -> str:
    return f'{split}_{index:04d}'


def _generate_split(out_dir: str, split_index: int, num_seqs: int,
                    params: dict) -> dict:
    """Render, save and annotate one split; returns its JSON dict."""
    split = _SPLITS[split_index]
    num_frames = _split_frames(params, split)
    images, annotations, names = [], [], []
    num_tracks = 0
    size = params['img_size']
    for q in range(num_seqs):
        name = _seq_name(split, q)
        names.append(name)
        seq_dir = osp.join(out_dir, IMG_PREFIX, name)
        os.makedirs(seq_dir, exist_ok=True)
        seq = render_moving_shapes_sequence(
            [params['seed'], split_index, q],
            num_frames=num_frames,
            img_size=size,
            min_objects=params['min_objects'],
            max_objects=params['max_objects'],
            min_size=params['min_size'],
            max_size=params['max_size'],
            min_speed=params['min_speed'],
            max_speed=params['max_speed'])
        areas = seq.masks.reshape(*seq.masks.shape[:2], -1).sum(-1)
        for fid, frame in enumerate(seq.frames):
            file_name = f'{fid:06d}.jpg'
            path = osp.join(seq_dir, file_name)
            if not cv2.imwrite(path, frame,
                               [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                raise OSError(f'cv2.imwrite could not write {path}')
            image_id = len(images)
            images.append(
                dict(id=image_id, file_name=file_name, name=file_name,
                     sid=q, fid=fid, width=size, height=size))
            for i in np.flatnonzero(seq.annotated[fid]):
                annotations.append(
                    dict(id=len(annotations) + 1, image_id=image_id,
                         bbox=seq.boxes[fid, i].tolist(),
                         category_id=int(seq.labels[i]),
                         area=int(areas[fid, i]), iscrowd=0,
                         track=num_tracks + int(i)))
        num_tracks += len(seq.labels)
    return dict(
        info=dict(
            description=f'densekit synthetic moving shapes (Argoverse-HD '
            f'layout), {split} split',
            version=str(GENERATOR_VERSION),
            contributor='densekit tools/data/make_synthetic.py'),
        images=images,
        annotations=annotations,
        categories=_categories(),
        sequences=names,
        seq_dirs=list(names))


def _dump_json(obj: dict, path: str) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, separators=(',', ':'))


def _ann_files(out_dir: str) -> Dict[str, str]:
    return {s: osp.join(out_dir, 'annotations', f'{s}.json') for s in _SPLITS}


def _load_reusable_meta(out_dir: str, params: dict) -> Optional[dict]:
    """The meta of a complete dataset made with ``params``, else None."""
    meta_path = osp.join(out_dir, META_FILE)
    if not osp.isfile(meta_path):
        return None
    try:
        with open(meta_path, encoding='utf-8') as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    if (not isinstance(meta, dict) or meta.get('complete') is not True
            or meta.get('generator_version') != GENERATOR_VERSION
            or meta.get('params') != params):
        return None
    if not all(osp.isfile(p) for p in _ann_files(out_dir).values()):
        return None
    counts = dict(train=params['num_train_seqs'], val=params['num_val_seqs'])
    for split in _SPLITS:
        for q in range(counts[split]):
            seq_dir = osp.join(out_dir, IMG_PREFIX, _seq_name(split, q))
            for fid in range(_split_frames(params, split)):
                if not osp.isfile(osp.join(seq_dir, f'{fid:06d}.jpg')):
                    return None
    return meta


def _split_frames(params: dict, split: str) -> int:
    """Frames per sequence of a split."""
    return params['val_frames_per_seq' if split == 'val' else
                  'frames_per_seq']


def _check_args(**ints) -> None:
    name = 'generate_moving_shapes_argoverse'
    for key, value in ints.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f'{name}: {key} must be an int, but got '
                            f'{value!r} ({type(value).__name__})')
    for key in ('num_train_seqs', 'num_val_seqs', 'seed'):
        if ints[key] < 0:
            raise ValueError(
                f'{name}: {key} must be >= 0, but got {ints[key]}')
    for key in ('frames_per_seq', 'val_frames_per_seq'):
        if ints[key] < 2:
            raise ValueError(f'{name}: {key} must be >= 2, but got '
                             f'{ints[key]}')
    if ints['img_size'] < 32:
        raise ValueError(
            f'{name}: img_size must be >= 32, but got {ints["img_size"]}')
    if not 1 <= ints['min_objects'] <= ints['max_objects']:
        raise ValueError(
            f'{name}: expected 1 <= min_objects <= max_objects, but got '
            f'min_objects={ints["min_objects"]}, '
            f'max_objects={ints["max_objects"]}')


def generate_moving_shapes_argoverse(out_dir: str,
                                     num_train_seqs: int = 48,
                                     num_val_seqs: int = 8,
                                     frames_per_seq: int = 20,
                                     val_frames_per_seq: Optional[int] = None,
                                     img_size: int = 256,
                                     min_objects: int = 2,
                                     max_objects: int = 5,
                                     min_size: Optional[float] = None,
                                     max_size: Optional[float] = None,
                                     min_speed: Optional[float] = None,
                                     max_speed: Optional[float] = None,
                                     seed: int = 0,
                                     overwrite: bool = False) -> dict:
    """Write the moving-shapes set in the Argoverse-HD layout (module doc).

    If ``out_dir`` holds a complete set generated with the same parameters
    (recorded in ``<out_dir>/synthetic_meta.json``) it is reused unless
    ``overwrite``; if the parameters differ it is regenerated. A directory
    holding ``annotations/{train,val}.json`` or ``frames/`` but no meta file
    was not written here and is only replaced with ``overwrite=True``. Only
    those paths and the meta file are ever removed.

    Args:
        out_dir (str): Dataset root (the config's ``data_root``).
        num_train_seqs (int): Training sequences. Defaults to 48.
        num_val_seqs (int): Validation sequences. Defaults to 8.
        frames_per_seq (int): Frames per training sequence (fids 0..F-1,
            30 FPS nominal). Defaults to 20.
        val_frames_per_seq (int, optional): Frames per validation sequence.
            Defaults to None: ``frames_per_seq`` (``tools/data/
            make_synthetic.py moving_shapes`` passes 30).
        img_size (int): Height and width. Defaults to 256.
        min_objects (int): Least tracks per sequence. Defaults to 2.
        max_objects (int): Most tracks per sequence. Defaults to 5.
        min_size (float, optional): Smallest object diameter in px.
            Defaults to None: ``img_size * 16 / 256``.
        max_size (float, optional): Largest diameter. Defaults to None:
            ``img_size * 72 / 256``.
        min_speed (float, optional): Smallest base speed in px per frame.
            Defaults to None: ``img_size * 1.5 / 256``.
        max_speed (float, optional): Largest base speed. Defaults to None:
            ``img_size * 6 / 256``.
        seed (int): Base seed (see the module docstring). Defaults to 0.
        overwrite (bool): Regenerate even if a matching set exists.
            Defaults to False.

    Returns:
        dict: ``out_dir``; ``ann_files`` (keyed ``'train'``/``'val'``);
        ``frames_dir``; ``img_prefix`` (``'frames/'``, the dataset's
        ``data_prefix['img']``); ``num_sequences``, ``num_images`` and
        ``num_instances`` (keyed by split); ``reused`` (bool).

    Examples:
        >>> info = generate_moving_shapes_argoverse(
        ...     'data/synthetic_moving_shapes', num_train_seqs=2,
        ...     num_val_seqs=1, frames_per_seq=8, img_size=64)
        >>> info['ann_files']['val']
        'data/synthetic_moving_shapes/annotations/val.json'
    """
    if val_frames_per_seq is None:
        val_frames_per_seq = frames_per_seq
    _check_args(num_train_seqs=num_train_seqs, num_val_seqs=num_val_seqs,
                frames_per_seq=frames_per_seq,
                val_frames_per_seq=val_frames_per_seq, img_size=img_size,
                min_objects=min_objects, max_objects=max_objects, seed=seed)
    min_size = round(img_size * _MIN_SIZE_RATIO,
                     2) if min_size is None else float(min_size)
    max_size = round(img_size * _MAX_SIZE_RATIO,
                     2) if max_size is None else float(max_size)
    min_speed = round(img_size * _MIN_SPEED_RATIO,
                      3) if min_speed is None else float(min_speed)
    max_speed = round(img_size * _MAX_SPEED_RATIO,
                      3) if max_speed is None else float(max_speed)
    if not 4 <= min_size <= max_size <= img_size / 2:
        raise ValueError(
            'generate_moving_shapes_argoverse: expected 4 <= min_size <= '
            f'max_size <= img_size / 2, but got min_size={min_size}, '
            f'max_size={max_size}, img_size={img_size}')
    if not 0 < min_speed <= max_speed < (img_size - max_size) / 2:
        raise ValueError(
            'generate_moving_shapes_argoverse: expected 0 < min_speed <= '
            'max_speed < (img_size - max_size) / 2, but got '
            f'min_speed={min_speed}, max_speed={max_speed}')
    params = dict(
        task='moving_shapes', num_train_seqs=int(num_train_seqs),
        num_val_seqs=int(num_val_seqs), frames_per_seq=int(frames_per_seq),
        val_frames_per_seq=int(val_frames_per_seq),
        img_size=int(img_size), min_objects=int(min_objects),
        max_objects=int(max_objects), min_size=min_size, max_size=max_size,
        min_speed=min_speed, max_speed=max_speed, seed=int(seed))
    counts = dict(train=params['num_train_seqs'], val=params['num_val_seqs'])
    ann_files = _ann_files(out_dir)
    frames_dir = osp.join(out_dir, IMG_PREFIX.rstrip('/'))
    result = dict(
        out_dir=out_dir, ann_files=ann_files, frames_dir=frames_dir,
        img_prefix=IMG_PREFIX, num_sequences=dict(counts),
        num_images={s: n * _split_frames(params, s)
                    for s, n in counts.items()})

    meta = None if overwrite else _load_reusable_meta(out_dir, params)
    if meta is not None:
        return dict(
            result, num_instances=dict(meta['num_instances']), reused=True)

    meta_path = osp.join(out_dir, META_FILE)
    clear_generated_paths(out_dir, [*ann_files.values(), frames_dir],
                          'generate_moving_shapes_argoverse', overwrite)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    meta = dict(
        generator='densekit.datasets.synthetic.'
        'generate_moving_shapes_argoverse',
        generator_version=GENERATOR_VERSION, params=params, complete=False)
    # Written first with complete=False so an interrupted run is regenerated.
    _dump_json(meta, meta_path)
    num_instances = {}
    for split_index, split in enumerate(_SPLITS):
        data = _generate_split(out_dir, split_index, counts[split], params)
        num_instances[split] = len(data['annotations'])
        _dump_json(data, ann_files[split])
    _dump_json(
        dict(meta, complete=True, num_instances=num_instances), meta_path)
    return dict(result, num_instances=num_instances, reused=False)


__all__ = [
    'MOVING_SHAPES_CLASSES', 'MOVING_SHAPES_METAINFO', 'MOTION_TYPES',
    'MovingShapesSequence', 'render_moving_shapes_sequence',
    'generate_moving_shapes_argoverse'
]

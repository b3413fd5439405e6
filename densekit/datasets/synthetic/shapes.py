"""Deterministic "synthetic shapes" detection and instance-segmentation data.

:func:`generate_shapes_coco` writes a small dataset laid out exactly as COCO
is, so every COCO config (``mmdet.CocoDataset``, ``mmdet.CocoMetric``) reads
it unchanged::

    <out_dir>/annotations/instances_train.json
    <out_dir>/annotations/instances_val.json
    <out_dir>/train/000000000001.jpg ...
    <out_dir>/val/000000000001.jpg ...
    <out_dir>/synthetic_meta.json      # generation parameters (reuse check)

Each image has a textured background (random gradient, low-frequency noise,
faint lines and pixel grain) and 1 to ``max_objects`` shapes of the classes in
:data:`SHAPES_CLASSES`. Colour is drawn independently of class and chosen to
contrast with the surroundings, so a model must learn the class from the
outline. Shapes are drawn one over another; a placement is rejected when it
would hide more than :data:`MAX_OCCLUSION` of an object already drawn, punch a
hole into it (COCO polygons cannot describe holes) or leave a sliver of it.
Annotations describe the *visible* region of each object.

Every image is drawn from its own ``numpy.random.Generator`` seeded with
``[seed, split_index, image_index]``, so the same arguments give byte-identical
JSON and identical pixels, and the val split does not depend on ``num_train``.

Only numpy and OpenCV are needed; drawing is vectorised (no per-pixel loops).
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, NamedTuple, Optional, Tuple

import cv2
import numpy as np

SHAPES_CLASSES = ('circle', 'square', 'triangle', 'star')
# RGB colours for visualisation only; drawn shapes have random colours.
SHAPES_PALETTE = [(220, 20, 60), (0, 114, 189), (0, 166, 81), (237, 177, 32)]
SHAPES_METAINFO = dict(classes=SHAPES_CLASSES, palette=SHAPES_PALETTE)

# Bump when the drawing code changes, so cached datasets are regenerated.
GENERATOR_VERSION = 1
# Largest fraction of an object's full area that later shapes may cover.
MAX_OCCLUSION = 0.3
JPEG_QUALITY = 95
META_FILE = 'synthetic_meta.json'

# Split names, indexed by the ``split_index`` used in the per-image seed.
_SPLITS = ('train', 'val')
# Default object sizes are fractions of ``img_size``: 20 px and 110 px at 256.
_MIN_SIZE_RATIO = 20 / 256
_MAX_SIZE_RATIO = 110 / 256
# Placement attempts per object before it is skipped.
_MAX_ATTEMPTS = 30
# Smallest accepted distance (0..441) between an object's colour and the mean
# colour of the ring of background just outside it.
_MIN_COLOR_DISTANCE = 100.0


class ShapesSample(NamedTuple):
    """One rendered image and its objects, in drawing order.

    Attributes:
        img (np.ndarray): uint8 image of shape (H, W, 3), BGR order.
        labels (np.ndarray): int64 class indices into :data:`SHAPES_CLASSES`
            of shape (N, ).
        masks (np.ndarray): bool visible masks of shape (N, H, W); they are
            pairwise disjoint.
        full_areas (np.ndarray): int64 pixel areas of shape (N, ) of each
            object before later shapes covered part of it.
    """
    img: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    full_areas: np.ndarray


def _unit_outline(rng: np.random.Generator,
                  label: int) -> Tuple[np.ndarray, float, float]:
    """Sample an outline of a shape class inside the unit circle.

    Returns:
        tuple: ``(vertices, min_aspect, max_rotation_deg)``: ``vertices`` of
        shape (V, 2) in (x, y) order with radius <= 1; the smallest ratio of
        the squeezed axis to the other; rotations are drawn from
        ``[0, max_rotation_deg)`` (0 means none).
    """
    name = SHAPES_CLASSES[label]
    if name == 'circle':
        angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        radii = np.ones_like(angles)
        # Rotation 0: an axis-aligned ellipse at most 15% squeezed.
        return _polar(angles, radii), 0.85, 0.0
    if name == 'square':
        angles = np.deg2rad([45, 135, 225, 315])
        return _polar(angles, np.ones(4)), 0.8, 90.0
    if name == 'triangle':
        angles = np.deg2rad([-90, 30, 150])
        return _polar(angles, np.ones(3)), 0.75, 120.0
    # star: 5 points, inner radius ratio varies a little between stars
    inner = rng.uniform(0.38, 0.5)
    angles = np.deg2rad(-90 + 36 * np.arange(10))
    radii = np.where(np.arange(10) % 2 == 0, 1.0, inner)
    return _polar(angles, radii), 0.85, 72.0


def _polar(angles: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """(V, ) angles and radii -> (V, 2) points in (x, y) order."""
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _sample_polygon(rng: np.random.Generator, label: int, size: float,
                    img_size: int) -> np.ndarray:
    """Sample a placed polygon of one class.

    Args:
        size (float): Diameter in pixels of the outline's circumscribed circle
            before the aspect squeeze; the object's extent is at most this.

    Returns:
        np.ndarray: Vertices of shape (V, 2), (x, y) in continuous pixel
        coordinates (pixel ``i`` covers ``[i, i + 1)``), fully inside the
        image.
    """
    unit, min_aspect, max_rot = _unit_outline(rng, label)
    aspect = rng.uniform(min_aspect, 1.0)
    scale = np.array([aspect, 1.0]) if rng.random() < 0.5 else np.array(
        [1.0, aspect])
    theta = np.deg2rad(rng.uniform(0.0, max_rot)) if max_rot else 0.0
    rot = np.array([[np.cos(theta), -np.sin(theta)],
                    [np.sin(theta), np.cos(theta)]])
    pts = (unit * scale) @ rot.T * (size / 2)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    # Keep the whole shape inside the image (``size <= img_size`` is checked).
    low = -lo
    high = np.maximum(img_size - hi, low)
    return pts + rng.uniform(low, high)


def _rasterize(polygon: np.ndarray, img_size: int) -> np.ndarray:
    """Fill a continuous-coordinate polygon; returns a bool (H, W) mask."""
    mask = np.zeros((img_size, img_size), np.uint8)
    # cv2 puts integer coordinates at pixel centres; 4 fractional bits.
    fixed = np.round((polygon - 0.5) * 16).astype(np.int32)
    cv2.fillPoly(mask, [fixed], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _low_freq_noise(rng: np.random.Generator, img_size: int,
                    channels: int) -> np.ndarray:
    """Smooth noise of shape (H, W, C), float32, roughly unit variance."""
    grid = int(rng.integers(3, 9))
    coarse = rng.standard_normal((grid, grid, channels)).astype(np.float32)
    smooth = cv2.resize(
        coarse, (img_size, img_size), interpolation=cv2.INTER_CUBIC)
    return smooth.reshape(img_size, img_size, channels)


def _render_background(rng: np.random.Generator, img_size: int) -> np.ndarray:
    """A textured background of shape (H, W, 3), float32 in [0, 255]."""
    colors = rng.uniform(30, 225, size=(2, 3)).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    coords = np.arange(img_size, dtype=np.float32) / max(img_size - 1, 1)
    ramp = (np.cos(theta) * coords[None, :] + np.sin(theta) * coords[:, None])
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    bg = colors[0] + (colors[1] - colors[0]) * ramp[..., None]
    bg += _low_freq_noise(rng, img_size, 3) * rng.uniform(8, 25)

    # Faint random lines, alpha-blended; a handful of cv2 calls, not pixels.
    canvas = np.clip(bg, 0, 255).astype(np.uint8)
    lines = canvas.copy()
    num_lines = int(rng.integers(3, 12))
    ends = rng.integers(-img_size // 4, img_size * 5 // 4, size=(num_lines, 4))
    line_colors = rng.integers(0, 256, size=(num_lines, 3))
    widths = rng.integers(1, 3, size=num_lines)
    for (x1, y1, x2, y2), color, width in zip(ends, line_colors, widths):
        cv2.line(lines, (int(x1), int(y1)), (int(x2), int(y2)),
                 tuple(int(c) for c in color), int(width), cv2.LINE_AA)
    alpha = rng.uniform(0.15, 0.35)
    bg = canvas.astype(np.float32) * (1 - alpha) + lines * alpha
    bg += rng.normal(0, 3, size=bg.shape).astype(np.float32)
    return np.clip(bg, 0, 255)


def _pick_color(rng: np.random.Generator, canvas: np.ndarray,
                mask: np.ndarray) -> np.ndarray:
    """Pick a random colour contrasting with the ring around ``mask``.

    Args:
        canvas (np.ndarray): float32 image of shape (H, W, 3).
        mask (np.ndarray): bool mask of shape (H, W).

    Returns:
        np.ndarray: float32 colour of shape (3, ).
    """
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8))
    ring = grown.astype(bool) & ~mask
    local = canvas[ring] if ring.any() else canvas[mask]
    local_mean = local.mean(axis=0)
    candidates = rng.uniform(0, 255, size=(16, 3)).astype(np.float32)
    dist = np.linalg.norm(candidates - local_mean, axis=1)
    good = np.flatnonzero(dist >= _MIN_COLOR_DISTANCE)
    return candidates[good[0] if good.size else int(np.argmax(dist))]


def _leaves_hole_or_sliver(visible: np.ndarray, min_fragment: int) -> bool:
    """Whether a visible mask has a hole or a component under min_fragment."""
    vis = visible.astype(np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(vis, connectivity=8)
    if stats.shape[0] < 2 or stats[1:, cv2.CC_STAT_AREA].min() < min_fragment:
        return True
    _, hierarchy = cv2.findContours(vis, cv2.RETR_CCOMP,
                                    cv2.CHAIN_APPROX_SIMPLE)
    # In RETR_CCOMP a contour with a parent is a hole.
    return hierarchy is not None and bool((hierarchy[0][:, 3] >= 0).any())


def _placement_ok(candidate: np.ndarray, visible: List[np.ndarray],
                  full_areas: List[int]) -> bool:
    """Whether drawing ``candidate`` on top keeps earlier objects usable."""
    for vis, full_area in zip(visible, full_areas):
        if not (vis & candidate).any():
            continue
        after = vis & ~candidate
        if full_area - int(after.sum()) > MAX_OCCLUSION * full_area:
            return False
        if _leaves_hole_or_sliver(after, max(8, int(0.05 * full_area))):
            return False
    return True


def render_shapes_image(rng: np.random.Generator,
                        img_size: int = 256,
                        min_objects: int = 1,
                        max_objects: int = 6,
                        min_size: float = 20,
                        max_size: float = 110) -> ShapesSample:
    """Render one synthetic shapes image with its visible instance masks.

    The number of objects is drawn uniformly from
    ``[min_objects, max_objects]``; an object whose placement keeps failing
    (see the module docstring) is skipped, so rarely fewer than
    ``min_objects`` are drawn (in practice never fewer than 1: the first
    object only has to fit in the image).

    Args:
        rng (np.random.Generator): Source of all randomness; the same
            generator state gives the same sample.
        img_size (int): Height and width of the square image. Defaults to 256.
        min_objects (int): Least number of objects to try. Defaults to 1.
        max_objects (int): Largest number of objects. Defaults to 6.
        min_size (float): Smallest object diameter in pixels (drawn
            log-uniformly). Defaults to 20.
        max_size (float): Largest object diameter in pixels; at most
            ``img_size``. Defaults to 110.

    Returns:
        :obj:`ShapesSample`: the image (H, W, 3) and, per visible object, its
        label (N, ), visible mask (N, H, W) and unoccluded area (N, ).

    Examples:
        >>> sample = render_shapes_image(np.random.default_rng(0), 64,
        ...                              min_size=10, max_size=30)
        >>> sample.img.shape, sample.masks.shape[1:]
        ((64, 64, 3), (64, 64))
    """
    canvas = _render_background(rng, img_size)
    shade = _low_freq_noise(rng, img_size, 1)
    num_objects = int(rng.integers(min_objects, max_objects + 1))
    labels: List[int] = []
    visible: List[np.ndarray] = []
    full_areas: List[int] = []
    log_min, log_max = np.log(min_size), np.log(max_size)
    for _ in range(num_objects):
        for attempt in range(_MAX_ATTEMPTS):
            label = int(rng.integers(len(SHAPES_CLASSES)))
            # After many failures prefer smaller objects, which fit more often.
            hi = log_max if attempt < _MAX_ATTEMPTS // 2 else (log_min +
                                                               log_max) / 2
            size = float(np.exp(rng.uniform(log_min, hi)))
            mask = _rasterize(
                _sample_polygon(rng, label, size, img_size), img_size)
            if mask.sum() < 8 or not _placement_ok(mask, visible, full_areas):
                continue
            color = _pick_color(rng, canvas, mask)
            # Gentle shading and, sometimes, a darker rim inside the mask,
            # so objects are not flat stickers.
            fill = color + shade * rng.uniform(5, 20)
            if rng.random() < 0.3:
                rim = mask & ~cv2.erode(
                    mask.astype(np.uint8),
                    np.ones((3, 3), np.uint8),
                    iterations=int(rng.integers(1, 3))).astype(bool)
                fill = np.where(rim[..., None], fill * rng.uniform(0.4, 0.7),
                                fill)
            canvas = np.where(mask[..., None], fill, canvas)
            visible = [vis & ~mask for vis in visible]
            visible.append(mask)
            labels.append(label)
            full_areas.append(int(mask.sum()))
            break
    img = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    masks = (
        np.stack(visible) if visible else np.zeros(
            (0, img_size, img_size), bool))
    return ShapesSample(img, np.array(labels, np.int64), masks,
                        np.array(full_areas, np.int64))


def _shoelace(points: np.ndarray) -> float:
    """Signed area of a closed polygon of shape (K, 2)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def contour_to_polygon(contour: np.ndarray) -> np.ndarray:
    """Turn a cv2 contour of boundary pixels into the pixels' outline.

    ``cv2.findContours`` returns the integer centres of boundary pixels, so a
    polygon through them misses half a pixel all round (a whole 1-pixel-wide
    spike). This moves every vertex 0.5 px outward: mitred at 45 and 90
    degree turns (exact on the pixel grid), bevelled at 135 degree turns and
    capped at reversals, so COCO rasterisation (``pycocotools``, pixel ``i``
    covering ``[i, i + 1)``) gives back the mask up to diagonal staircases.

    Args:
        contour (np.ndarray): int contour of shape (K, 1, 2) or (K, 2) in
            (x, y) pixel indices, as from ``cv2.findContours``.

    Returns:
        np.ndarray: float64 polygon of shape (M, 2), M >= 4, in continuous
        (x, y) coordinates.
    """
    centres = contour.reshape(-1, 2).astype(np.float64) + 0.5
    if len(centres) == 1:
        x, y = centres[0]
        return np.array([[x - 0.5, y - 0.5], [x + 0.5, y - 0.5],
                         [x + 0.5, y + 0.5], [x - 0.5, y + 0.5]])
    d_in = centres - np.roll(centres, 1, axis=0)
    d_out = np.roll(centres, -1, axis=0) - centres
    t_in = d_in / np.linalg.norm(d_in, axis=1, keepdims=True)
    t_out = d_out / np.linalg.norm(d_out, axis=1, keepdims=True)
    polygons = []
    for sign in (1.0, -1.0):
        # Right-hand normals; the sign that grows the polygon is outward.
        n_in = sign * np.stack([t_in[:, 1], -t_in[:, 0]], axis=1)
        n_out = sign * np.stack([t_out[:, 1], -t_out[:, 0]], axis=1)
        cos = (t_in * t_out).sum(axis=1)
        mitre = 0.5 * (n_in + n_out) / np.maximum(
            1 + (n_in * n_out).sum(axis=1, keepdims=True), 1e-6)
        # Per vertex two candidate points; equal ones are dropped below.
        first = np.where((cos > -0.1)[:, None], mitre, 0.5 * n_in)
        second = np.where((cos > -0.1)[:, None], mitre, 0.5 * n_out)
        reverse = (cos < -0.99)[:, None]
        first = np.where(reverse, first + 0.5 * t_in, first)
        second = np.where(reverse, second + 0.5 * t_in, second)
        points = (centres[:, None] + np.stack([first, second], axis=1))
        points = points.reshape(-1, 2)
        keep = np.ones(len(points), bool)
        keep[1::2] = np.any(np.abs(points[1::2] - points[0::2]) > 1e-9, 1)
        polygons.append(points[keep])
    areas = [abs(_shoelace(p)) for p in polygons]
    return polygons[int(np.argmax(areas))]


def mask_to_coco(mask: np.ndarray) -> Tuple[List[float], int, List[list]]:
    """Describe a binary mask as a COCO bbox, area and polygons.

    Args:
        mask (np.ndarray): bool mask of shape (H, W), not empty.

    Returns:
        tuple: ``(bbox, area, segmentation)``: ``bbox`` is ``[x, y, w, h]``
        (float, COCO xywh, pixel ``i`` covering ``[i, i + 1)``) of the mask's
        pixels, ``area`` its pixel count, ``segmentation`` a list of flat
        ``[x1, y1, x2, y2, ...]`` polygons (at least 4 points each), one per
        outer contour of the mask (see :func:`contour_to_polygon`).
    """
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    x0, x1, y0, y1 = int(xs[0]), int(xs[-1]), int(ys[0]), int(ys[-1])
    bbox = [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = [
        np.round(contour_to_polygon(c), 3).reshape(-1).tolist()
        for c in contours
    ]
    return bbox, int(mask.sum()), polygons


def _categories() -> List[dict]:
    return [
        dict(id=i + 1, name=name, supercategory='shape')
        for i, name in enumerate(SHAPES_CLASSES)
    ]


def _generate_split(out_dir: str, split_index: int, num_images: int,
                    params: dict) -> Tuple[dict, int]:
    """Draw, save and annotate one split; returns (coco_dict, num_objects)."""
    split = _SPLITS[split_index]
    img_dir = osp.join(out_dir, split)
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        rng = np.random.default_rng([params['seed'], split_index, index])
        sample = render_shapes_image(
            rng,
            img_size=params['img_size'],
            min_objects=params['min_objects'],
            max_objects=params['max_objects'],
            min_size=params['min_size'],
            max_size=params['max_size'])
        image_id = index + 1
        file_name = f'{image_id:012d}.jpg'
        path = osp.join(img_dir, file_name)
        if not cv2.imwrite(path, sample.img,
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise OSError(f'cv2.imwrite could not write {path}')
        images.append(
            dict(
                id=image_id,
                file_name=file_name,
                width=params['img_size'],
                height=params['img_size'],
                license=1))
        for label, mask in zip(sample.labels, sample.masks):
            bbox, area, polygons = mask_to_coco(mask)
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=int(label) + 1,
                    bbox=bbox,
                    area=area,
                    segmentation=polygons,
                    iscrowd=0))
    coco = dict(
        info=dict(
            description=f'densekit synthetic shapes, {split} split',
            url='',
            version=str(GENERATOR_VERSION),
            year=2024,
            contributor='densekit tools/data/make_synthetic.py',
            date_created=''),
        licenses=[
            dict(
                id=1,
                name='CC0 1.0',
                url='https://creativecommons.org/publicdomain/zero/1.0/')
        ],
        images=images,
        annotations=annotations,
        categories=_categories())
    return coco, len(annotations)


def _dump_json(obj: dict, path: str) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, separators=(',', ':'))


def _paths(out_dir: str) -> Dict[str, dict]:
    return dict(
        ann_files={
            s: osp.join(out_dir, 'annotations', f'instances_{s}.json')
            for s in _SPLITS
        },
        img_dirs={s: osp.join(out_dir, s)
                  for s in _SPLITS})


def _load_reusable_meta(out_dir: str, params: dict,
                        counts: Dict[str, int]) -> Optional[dict]:
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
    paths = _paths(out_dir)
    for split in _SPLITS:
        if not osp.isfile(paths['ann_files'][split]):
            return None
        for index in range(counts[split]):
            name = f'{index + 1:012d}.jpg'
            if not osp.isfile(osp.join(paths['img_dirs'][split], name)):
                return None
    return meta


def _check_args(num_train, num_val, img_size, min_objects, max_objects,
                min_size, max_size, seed) -> None:
    for name, value in (('num_train', num_train), ('num_val', num_val),
                        ('img_size', img_size), ('min_objects', min_objects),
                        ('max_objects', max_objects), ('seed', seed)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f'generate_shapes_coco: {name} must be an int, '
                            f'but got {value!r} ({type(value).__name__})')
    if num_train < 0 or num_val < 0:
        raise ValueError('generate_shapes_coco: num_train and num_val must '
                         f'be >= 0, but got num_train={num_train}, '
                         f'num_val={num_val}')
    if img_size < 32:
        raise ValueError(
            f'generate_shapes_coco: img_size must be >= 32, but got {img_size}'
        )
    if not 1 <= min_objects <= max_objects:
        raise ValueError('generate_shapes_coco: expected 1 <= min_objects <= '
                         f'max_objects, but got min_objects={min_objects}, '
                         f'max_objects={max_objects}')
    for name, value in (('min_size', min_size), ('max_size', max_size)):
        if value is not None and (not isinstance(value,
                                                 (int, float, np.number))
                                  or isinstance(value, bool)):
            raise TypeError(f'generate_shapes_coco: {name} must be a number '
                            f'or None, but got {value!r}')
    if seed < 0:
        raise ValueError(
            f'generate_shapes_coco: seed must be >= 0, but got {seed}')



def clear_generated_paths(out_dir: str, managed: List[str], generator: str,
                          overwrite: bool) -> None:
    """Remove a generator's previous outputs ``managed`` under ``out_dir``.

    Refuses (naming the paths) when they exist without the generator's
    :data:`META_FILE`, i.e. were not written by it, unless ``overwrite``.
    """
    present = [
        p for p in managed if osp.isfile(p) or (osp.isdir(p) and os.listdir(p))
    ]
    if present and not overwrite and not osp.isfile(
            osp.join(out_dir, META_FILE)):
        raise FileExistsError(
            f'{generator}: {out_dir} already holds '
            f'{", ".join(present)} but no {META_FILE}, so it was not written '
            'by this generator. Pass overwrite=True (--overwrite in '
            'tools/data/make_synthetic.py) to replace those paths, or choose '
            'another out_dir.')
    for path in managed:
        if osp.isdir(path):
            shutil.rmtree(path)
        elif osp.exists(path):
            os.remove(path)

def generate_shapes_coco(out_dir: str,
                         num_train: int = 2000,
                         num_val: int = 200,
                         img_size: int = 256,
                         min_objects: int = 1,
                         max_objects: int = 6,
                         min_size: Optional[float] = None,
                         max_size: Optional[float] = None,
                         seed: int = 0,
                         overwrite: bool = False) -> dict:
    """Write the synthetic shapes dataset in COCO layout (see module doc).

    The defaults (2000 + 200 images of 256x256, objects of 20-110 px) are
    sized for a small YOLO to learn quickly on CPU.

    If ``out_dir`` already holds a complete dataset generated with the same
    parameters (recorded in ``<out_dir>/synthetic_meta.json``) it is reused
    unless ``overwrite`` is True; if the parameters differ it is regenerated.
    A directory that holds ``train/``, ``val/`` or the annotation files but no
    ``synthetic_meta.json`` was not written here, so it is only replaced with
    ``overwrite=True``. Only those paths and the meta file are ever removed.

    Args:
        out_dir (str): Dataset root (the config's ``data_root``).
        num_train (int): Number of training images. Defaults to 2000.
        num_val (int): Number of validation images. Defaults to 200.
        img_size (int): Height and width of every image. Defaults to 256.
        min_objects (int): Least objects per image (see
            :func:`render_shapes_image`). Defaults to 1.
        max_objects (int): Most objects per image. Defaults to 6.
        min_size (float, optional): Smallest object diameter in pixels.
            Defaults to None, meaning ``img_size * 20 / 256``.
        max_size (float, optional): Largest object diameter in pixels.
            Defaults to None, meaning ``img_size * 110 / 256``.
        seed (int): Base seed; image ``i`` of split ``s`` (train 0, val 1)
            uses ``np.random.default_rng([seed, s, i])``. Defaults to 0.
        overwrite (bool): Regenerate even if a matching dataset exists.
            Defaults to False.

    Returns:
        dict: ``out_dir``; ``ann_files`` and ``img_dirs`` (dicts keyed by
        ``'train'``/``'val'``); ``num_images`` and ``num_instances`` (same
        keys); ``reused`` (bool, True if nothing was written).

    Examples:
        >>> info = generate_shapes_coco('data/synthetic_shapes', num_train=8,
        ...                             num_val=4, img_size=64)
        >>> info['ann_files']['val']
        'data/synthetic_shapes/annotations/instances_val.json'
    """
    _check_args(num_train, num_val, img_size, min_objects, max_objects,
                min_size, max_size, seed)
    if min_size is None:
        min_size = round(img_size * _MIN_SIZE_RATIO, 2)
    if max_size is None:
        max_size = round(img_size * _MAX_SIZE_RATIO, 2)
    if not 4 <= min_size <= max_size <= img_size:
        raise ValueError(
            'generate_shapes_coco: expected 4 <= min_size <= max_size <= '
            f'img_size, but got min_size={min_size}, max_size={max_size}, '
            f'img_size={img_size} (min_size and max_size left as None are '
            'img_size * 20 / 256 and img_size * 110 / 256)')
    params = dict(
        task='shapes',
        num_train=int(num_train),
        num_val=int(num_val),
        img_size=int(img_size),
        min_objects=int(min_objects),
        max_objects=int(max_objects),
        min_size=float(min_size),
        max_size=float(max_size),
        seed=int(seed))
    counts = dict(train=params['num_train'], val=params['num_val'])
    paths = _paths(out_dir)
    result = dict(out_dir=out_dir, **paths, num_images=dict(counts))

    meta = None if overwrite else _load_reusable_meta(out_dir, params, counts)
    if meta is not None:
        return dict(
            result, num_instances=dict(meta['num_instances']), reused=True)

    meta_path = osp.join(out_dir, META_FILE)
    clear_generated_paths(
        out_dir,
        [*paths['ann_files'].values(), *paths['img_dirs'].values()],
        'generate_shapes_coco', overwrite)

    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    meta = dict(
        generator='densekit.datasets.synthetic.generate_shapes_coco',
        generator_version=GENERATOR_VERSION,
        params=params,
        complete=False)
    # Written first with complete=False so an interrupted run is regenerated.
    _dump_json(meta, meta_path)
    num_instances = {}
    for split_index, split in enumerate(_SPLITS):
        coco, num_instances[split] = _generate_split(out_dir, split_index,
                                                     counts[split], params)
        _dump_json(coco, paths['ann_files'][split])
    _dump_json(
        dict(meta, complete=True, num_instances=num_instances), meta_path)
    return dict(result, num_instances=num_instances, reused=False)


__all__ = [
    'SHAPES_CLASSES', 'SHAPES_PALETTE', 'SHAPES_METAINFO', 'ShapesSample',
    'render_shapes_image', 'contour_to_polygon', 'mask_to_coco',
    'generate_shapes_coco'
]

"""Whole-volume inference with a 2D medical segmentor, and its slice grid.

The medical configs (``configs/medseg/``) train 2D segmentors on slices;
:class:`VolumeInferencer` applies one to a whole volume the way
:class:`~densekit.evaluation.VolumeSegMetric` scores it: every slice goes
through the config's test pipeline (``densekit.LoadMedicalSlice`` with the
volume's path and slice index, then the resize), slices are predicted in
batches and the label maps, back at the slice size, are stacked into a
(D, H, W) volume. :func:`draw_volume_grid` lays chosen slices out as a grid
with the predicted organs overlaid (and the ground truth outlined when
there is one) above a legend of organ volumes.

Examples:
    >>> from densekit.apis import VolumeInferencer, draw_volume_grid
    >>> inferencer = VolumeInferencer('configs/medseg/unet_phantom.py',
    ...                               'work_dirs/unet_phantom/iter_400.pth')
    >>> result = inferencer('data/synthetic_phantom/test_vol_h5/'
    ...                     'case5001.npy.h5')
    >>> result.label_volume.shape, result.class_volumes_ml()
    ((24, 128, 128), {'liver': 412.3, ...})
    >>> grid = draw_volume_grid(result, inferencer.palette)
"""
import copy
import inspect
import os
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from densekit.datasets.medical_io import (file_format, h5_volume_info,
                                          import_h5py, nifti_volume_info,
                                          read_nifti, strip_nifti_suffix)
from .image_io import fallback_palette
from .seg_inferencer import SegInferencer

_SLICE_LOADER = 'LoadMedicalSlice'


@dataclass
class VolumeResult:
    """A predicted label volume.

    Attributes:
        label_volume (np.ndarray): (D, H, W) int64 class indices at the
            volume's own slice size.
        image_volume (np.ndarray): (D, H, W) float32, the image as stored
            (for drawing; the model's input is normalised by the pipeline).
        classes (tuple[str]): Class names, background first.
        volume_path (str): The file read.
        spacing (tuple[float, float, float] | None): Voxel size (z, y, x) in
            mm when the file gives it.
        gt_volume (np.ndarray | None): (D, H, W) ground truth when the file
            (or its ``_gt`` companion) has one.
        timings_ms (dict): ``read`` and ``inference`` wall time.
    """
    label_volume: np.ndarray
    image_volume: np.ndarray
    classes: Tuple[str, ...]
    volume_path: str
    spacing: Optional[Tuple[float, float, float]] = None
    gt_volume: Optional[np.ndarray] = None
    timings_ms: Dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The file name without its volume suffix (``case5001``)."""
        base = osp.basename(self.volume_path)
        for suffix in ('.npy.h5', '.h5', '.hdf5'):
            if base.lower().endswith(suffix):
                return base[:-len(suffix)]
        return strip_nifti_suffix(base)

    def class_voxels(self) -> Dict[str, int]:
        """Predicted voxels of every foreground class (absent ones: 0)."""
        counts = np.bincount(self.label_volume.ravel(),
                             minlength=len(self.classes))
        return {name: int(counts[c])
                for c, name in enumerate(self.classes) if c > 0}

    def class_volumes_ml(self) -> Optional[Dict[str, float]]:
        """Predicted volume of every foreground class in millilitres
        (voxels x voxel size / 1000), or None without a spacing."""
        if self.spacing is None:
            return None
        voxel_ml = float(np.prod(self.spacing)) / 1000.0
        return {k: v * voxel_ml for k, v in self.class_voxels().items()}

    def to_dict(self) -> dict:
        out = dict(volume=self.volume_path, shape=list(
            self.label_volume.shape), spacing=self.spacing,
            class_voxels=self.class_voxels(),
            timings_ms={k: round(v, 1) for k, v in self.timings_ms.items()})
        volumes = self.class_volumes_ml()
        if volumes is not None:
            out['class_volumes_ml'] = {k: round(v, 3)
                                       for k, v in volumes.items()}
        return out


def build_volume_inference_pipeline(cfg: Config) -> List[dict]:
    """The config's test pipeline for one volume slice: the first
    ``LoadMedicalSlice`` reads the image only, later label loads are
    dropped (the ground truth, if any, is read once per volume)."""
    out = []
    for step in copy.deepcopy(cfg.test_dataloader.dataset.pipeline):
        name = str(step['type']).split('.')[-1]
        if name == _SLICE_LOADER:
            if not step.get('with_img', True):
                continue
            step['with_seg'] = False
        out.append(step)
    if not out or str(out[0]['type']).split('.')[-1] != _SLICE_LOADER:
        raise ValueError('VolumeInferencer: the test pipeline of '
                         f'{cfg.filename} does not start with '
                         'densekit.LoadMedicalSlice, so it is not a medical '
                         'volume config (configs/medseg/)')
    return out


def _gt_companion(path: str) -> Optional[str]:
    """ACDC's ``<case>_gt.nii.gz`` beside ``<case>.nii.gz``, if present."""
    base = strip_nifti_suffix(osp.basename(path))
    suffix = osp.basename(path)[len(base):]
    candidate = osp.join(osp.dirname(path), base + '_gt' + suffix)
    return candidate if osp.isfile(candidate) else None


class VolumeInferencer(SegInferencer):
    """Segment medical volumes slice by slice with a 2D segmentor.

    Reads TransUNet's ``*.npy.h5`` volumes (``image`` and ``label``) and
    NIfTI volumes (the label from ``label_path``, or ACDC's ``_gt``
    companion file when it exists). The intensity normalisation is the test
    dataset's (``intensity_norm`` of ``ACDCDataset``; none for Synapse).

    Args:
        config (str | Config): A medical segmentation config.
        checkpoint (str, optional): Weights.
        device (str, optional): Default: ``'cuda'`` if available.
        batch_size (int): Slices per forward pass. Defaults to 8.
        cfg_options (dict, optional): Config overrides.
        backend, backend_model, num_threads: The runtime of the 2D
            segmentor (see :class:`SegInferencer`); exports made on the fly
            take a batch of slices.
    """

    _runtime_dynamic_batch = True

    def __init__(self,
                 config: Union[str, os.PathLike, Config],
                 checkpoint: Optional[str] = None,
                 *,
                 device: Optional[str] = None,
                 batch_size: int = 8,
                 cfg_options: Optional[dict] = None,
                 backend: str = 'pytorch',
                 backend_model: Optional[str] = None,
                 num_threads: Optional[int] = None,
                 fuse_conv_bn: bool = True) -> None:
        if isinstance(batch_size, bool) or not isinstance(
                batch_size, int) or batch_size < 1:
            raise ValueError('VolumeInferencer: batch_size must be an int '
                             f'>= 1, but got {batch_size!r}')
        self.batch_size = batch_size
        super().__init__(config, checkpoint, device=device,
                         cfg_options=cfg_options, backend=backend,
                         backend_model=backend_model,
                         num_threads=num_threads, fuse_conv_bn=fuse_conv_bn)
        self.intensity_norm = self.cfg.test_dataloader.dataset.get(
            'intensity_norm', self._dataset_default_norm())

    def _build_pipeline(self, cfg: Config) -> Compose:
        return Compose(build_volume_inference_pipeline(cfg))

    def _dataset_default_norm(self) -> Optional[str]:
        from mmseg.registry import DATASETS
        dataset_cls = DATASETS.get(self.cfg.test_dataloader.dataset['type'])
        param = inspect.signature(dataset_cls).parameters.get(
            'intensity_norm')
        return None if param is None else param.default

    def __call__(self, volume_path: str,
                 label_path: Optional[str] = None) -> VolumeResult:
        """Segment one volume file (see the class docstring)."""
        start = time.perf_counter()
        if not osp.isfile(volume_path):
            raise FileNotFoundError(
                f'VolumeInferencer: volume {volume_path} does not exist')
        fmt = file_format(volume_path)
        if fmt == 'npz':
            raise ValueError(
                f'VolumeInferencer: {volume_path} is a single npz slice; '
                'give a volume (*.npy.h5 or NIfTI)')
        image, gt, spacing = self._read_volume(volume_path, fmt, label_path)
        t_read = time.perf_counter()
        base = dict(img_path=volume_path, intensity_norm=self.intensity_norm,
                    num_slices=image.shape[0], spacing=spacing)
        labels = []
        with torch.no_grad():
            for first in range(0, image.shape[0], self.batch_size):
                batch = [self.pipeline(dict(base, slice_index=i))
                         for i in range(first, min(first + self.batch_size,
                                                   image.shape[0]))]
                samples = self.model.test_step(pseudo_collate(batch))
                labels += [s.pred_sem_seg.data[0].long().cpu().numpy()
                           for s in samples]
        label_volume = np.stack(labels)
        if label_volume.shape != image.shape:
            raise RuntimeError(
                f'VolumeInferencer: predictions {label_volume.shape} do not '
                f'match the volume {image.shape} of {volume_path}')
        return VolumeResult(
            label_volume=label_volume, image_volume=image,
            classes=self.classes, volume_path=volume_path, spacing=spacing,
            gt_volume=gt, timings_ms=dict(
                read=(t_read - start) * 1e3,
                inference=(time.perf_counter() - t_read) * 1e3))

    def _read_volume(self, path: str, fmt: str, label_path: Optional[str]):
        """(image as stored, ground truth or None, spacing) of a volume."""
        gt = None
        if fmt == 'h5':
            spacing = h5_volume_info(path)['spacing']
            with import_h5py().File(path, 'r') as f:
                image = np.asarray(f['image'], np.float32)
                gt = np.asarray(f['label'])
        else:
            nifti_volume_info(path)  # header check, names the file
            image, spacing = read_nifti(path)
            image = image.astype(np.float32)
            label_path = label_path or _gt_companion(path)
        if label_path is not None:
            gt, _ = read_nifti(label_path) if file_format(
                label_path) == 'nifti' else (None, None)
            if gt is None:
                raise ValueError(f'VolumeInferencer: label {label_path} must '
                                 'be a NIfTI volume')
            if gt.shape != image.shape:
                raise ValueError(
                    f'VolumeInferencer: label {label_path} has shape '
                    f'{gt.shape}, the volume {path} {image.shape}')
        if gt is not None:
            gt = np.rint(gt).astype(np.int64)
        return image, gt, spacing


def pick_slices(result: VolumeResult, num_slices: int) -> List[int]:
    """``num_slices`` slice indices, evenly spaced over the slices where
    organs are predicted (or over all slices when none are)."""
    depth = result.label_volume.shape[0]
    fg = np.flatnonzero((result.label_volume > 0).reshape(depth, -1).any(1))
    pool = fg if len(fg) else np.arange(depth)
    if num_slices >= len(pool):
        return [int(i) for i in pool]
    pos = np.linspace(0, len(pool) - 1, num_slices)
    return [int(pool[int(round(p))]) for p in pos]


def draw_volume_grid(result: VolumeResult,
                     palette: Optional[Sequence[Sequence[int]]] = None,
                     slices: Optional[Sequence[int]] = None,
                     num_slices: int = 12,
                     cols: int = 4,
                     tile_size: int = 192,
                     alpha: float = 0.45) -> np.ndarray:
    """A BGR grid of slices with the predicted classes overlaid.

    Each tile is one slice (grey image scaled to the volume's own range,
    prediction blended in the class colours, ground-truth boundaries drawn
    in white when ``result.gt_volume`` exists, the slice index in the
    corner); a legend below lists the classes with their predicted volume
    (ml with a spacing, voxels without).

    Args:
        result (VolumeResult): The prediction.
        palette (sequence, optional): RGB colour per class.
        slices (sequence[int], optional): Slice indices; default
            :func:`pick_slices` of ``num_slices``.
        num_slices (int): Tiles when ``slices`` is None. Defaults to 12.
        cols (int): Tiles per row. Defaults to 4.
        tile_size (int): Longer tile side in pixels. Defaults to 192.
        alpha (float): Opacity of the class colours. Defaults to 0.45.
    """
    depth, height, width = result.label_volume.shape
    slices = list(slices) if slices is not None else pick_slices(
        result, num_slices)
    bad = [i for i in slices if not 0 <= i < depth]
    if bad or not slices:
        raise ValueError(f'draw_volume_grid: slices {bad or slices} are not '
                         f'in 0..{depth - 1}')
    num = len(result.classes)
    colours = np.asarray(palette if palette is not None else
                         fallback_palette(num), np.uint8)[:, ::-1]  # BGR
    if len(colours) < num:
        colours = np.concatenate([colours,
                                  fallback_palette(num)[len(colours):, ::-1]])
    lo, hi = np.percentile(result.image_volume, [0.5, 99.5])
    scale = tile_size / max(height, width)
    tile_hw = (max(1, round(height * scale)), max(1, round(width * scale)))
    tiles = []
    for index in slices:
        grey = np.clip((result.image_volume[index] - lo) / max(hi - lo, 1e-6),
                       0, 1)
        img = cv2.cvtColor((grey * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
        labels = np.clip(result.label_volume[index], 0, len(colours) - 1)
        overlay = np.where(labels[..., None] > 0, colours[labels], img)
        tile = cv2.addWeighted(img, 1 - alpha, overlay.astype(np.uint8),
                               alpha, 0)
        tile = cv2.resize(tile, tile_hw[::-1], interpolation=cv2.INTER_NEAREST)
        if result.gt_volume is not None:
            gt = cv2.resize(result.gt_volume[index].astype(np.uint8),
                            tile_hw[::-1], interpolation=cv2.INTER_NEAREST)
            edges = cv2.morphologyEx(gt, cv2.MORPH_GRADIENT,
                                     np.ones((3, 3), np.uint8)) > 0
            tile[edges & (gt > 0)] = (255, 255, 255)
        cv2.putText(tile, f'z={index}', (4, 14), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    cols = max(1, min(cols, len(tiles)))
    rows = -(-len(tiles) // cols)
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (rows * cols - len(tiles))
    grid = np.vstack([np.hstack(tiles[r * cols:(r + 1) * cols])
                      for r in range(rows)])
    return np.vstack([grid, _legend(result, colours, grid.shape[1])])


def _legend(result: VolumeResult, colours: np.ndarray,
            width: int) -> np.ndarray:
    volumes = result.class_volumes_ml()
    amounts = volumes if volumes is not None else result.class_voxels()
    unit = 'ml' if volumes is not None else 'vox'
    entries = [(c, f'{name} {amounts[name]:.1f} {unit}' if volumes else
                f'{name} {amounts[name]} {unit}')
               for c, name in enumerate(result.classes) if c > 0]
    if result.gt_volume is not None:
        entries.append((None, 'white: ground truth'))
    font, scale, line = cv2.FONT_HERSHEY_SIMPLEX, 0.42, 16
    per_row = max(1, width // 190)
    rows = -(-len(entries) // per_row)
    legend = np.zeros((rows * line + 8, width, 3), np.uint8)
    for k, (c, text) in enumerate(entries):
        x, y = 6 + (k % per_row) * 190, 4 + (k // per_row) * line
        if c is not None:
            colour = tuple(int(v) for v in colours[min(c, len(colours) - 1)])
            cv2.rectangle(legend, (x, y + 2), (x + 10, y + 12), colour, -1)
        cv2.putText(legend, text, (x + 14, y + 12), font, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return legend


__all__ = ['VolumeInferencer', 'VolumeResult', 'draw_volume_grid',
           'pick_slices', 'build_volume_inference_pipeline']

"""EfficientAD's penalty images: a random out-of-distribution image per
training sample (Sec. 3.2: ImageNet images, on which the student is pushed
towards zero output)."""
import glob
import os.path as osp
import warnings
from typing import Optional, Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from densekit.registry import TRANSFORMS

IMAGE_SUFFIXES = ('.jpeg', '.jpg', '.png', '.bmp', '.webp')


def synthetic_penalty_image(rng: np.random.Generator,
                            size: int) -> np.ndarray:
    """A random "natural-looking" BGR uint8 image: smooth multi-scale colour
    noise with a few random filled shapes and lines (the fallback when no
    ImageNet-style folder is given)."""
    img = np.zeros((size, size, 3), np.float32)
    for cells, weight in ((2, 0.5), (4, 0.25), (16, 0.15), (64, 0.1)):
        grid = rng.random((cells, cells, 3), dtype=np.float32)
        img += weight * cv2.resize(grid, (size, size),
                                   interpolation=cv2.INTER_CUBIC)
    img = np.clip(img * 255, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(2, 7))):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        center = tuple(int(c) for c in rng.integers(0, size, 2))
        if rng.random() < 0.5:
            axes = tuple(int(a) for a in rng.integers(size // 16, size // 3,
                                                      2))
            cv2.ellipse(img, center, axes, float(rng.uniform(0, 180)), 0,
                        360, color, -1)
        else:
            end = tuple(int(c) for c in rng.integers(0, size, 2))
            cv2.line(img, center, end, color,
                     int(rng.integers(1, max(2, size // 32))))
    return img


@TRANSFORMS.register_module()
class LoadPenaltyImage(BaseTransform):
    """Add ``results['penalty_img']``: a random image of ``img_dir``
    resized to ``2 * size`` square, randomly grey with probability
    ``grayscale_prob`` and centre-cropped to ``size`` (nelson1425's
    ``penalty_transform``), BGR uint8 like mmcv's loaded images.

    ``img_dir`` is searched recursively (ImageNet's ``train/<wnid>/*.JPEG``,
    Imagenette's ``train/<class>/*.JPEG`` or a flat folder). When it is
    ``None`` or missing, a warning says so and ``fallback='synthetic'``
    draws :func:`synthetic_penalty_image` (random smooth colour noise and
    shapes: it keeps the student's output near zero off the normal data, but
    is not the paper's ImageNet); ``fallback='error'`` raises instead.

    Args:
        img_dir (str, optional): Folder of penalty images.
        size (int): Output side (the model's input size). Defaults to 256.
        grayscale_prob (float): Defaults to 0.3.
        fallback (str): ``'synthetic'`` or ``'error'``.
        seed (int, optional): Seed of the image choice (mmengine seeds
            numpy's global RNG per worker otherwise).
    """

    def __init__(self,
                 img_dir: Optional[str] = None,
                 size: int = 256,
                 grayscale_prob: float = 0.3,
                 fallback: str = 'synthetic',
                 suffixes: Sequence[str] = IMAGE_SUFFIXES,
                 seed: Optional[int] = None) -> None:
        if fallback not in ('synthetic', 'error'):
            raise ValueError("LoadPenaltyImage: fallback must be 'synthetic' "
                             f"or 'error', got {fallback!r}")
        self.img_dir = img_dir
        self.size = int(size)
        self.grayscale_prob = float(grayscale_prob)
        self.fallback = fallback
        self.suffixes = tuple(s.lower() for s in suffixes)
        self.rng = np.random.default_rng(seed) if seed is not None else None
        self.files = self._list_files()

    def _list_files(self):
        if self.img_dir is None or not osp.isdir(self.img_dir):
            where = ('no img_dir given' if self.img_dir is None else
                     f'img_dir {self.img_dir} does not exist')
            if self.fallback == 'error':
                raise FileNotFoundError(
                    f'LoadPenaltyImage: {where}; give an ImageNet-style '
                    'folder of penalty images')
            warnings.warn(
                f'LoadPenaltyImage: {where}; using synthetic penalty images '
                '(random colour noise and shapes) instead of ImageNet. '
                'EfficientAD\'s published numbers use ImageNet: set '
                'img_dir to an ImageNet or Imagenette train folder.')
            return []
        files = sorted(
            f for f in glob.glob(osp.join(self.img_dir, '**', '*'),
                                 recursive=True)
            if f.lower().endswith(self.suffixes))
        if not files:
            raise FileNotFoundError(
                f'LoadPenaltyImage: no images ({", ".join(self.suffixes)}) '
                f'under {self.img_dir}')
        return files

    def _random(self) -> np.random.Generator:
        return self.rng if self.rng is not None else np.random

    def transform(self, results: dict) -> dict:
        rng = self._random()
        if self.files:
            path = self.files[int(rng.randint(len(self.files)))
                              if rng is np.random else
                              int(rng.integers(len(self.files)))]
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                raise OSError(f'LoadPenaltyImage: cannot read {path}')
            img = cv2.resize(img, (2 * self.size, 2 * self.size),
                             interpolation=cv2.INTER_LINEAR)
            offset = self.size // 2
            img = img[offset:offset + self.size, offset:offset + self.size]
        else:
            seed = (int(rng.randint(2**31)) if rng is np.random else
                    int(rng.integers(2**31)))
            img = synthetic_penalty_image(np.random.default_rng(seed),
                                          self.size)
        if rng.random() < self.grayscale_prob:
            gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        results['penalty_img'] = np.ascontiguousarray(img)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(img_dir={self.img_dir!r}, '
                f'size={self.size}, grayscale_prob={self.grayscale_prob}, '
                f'fallback={self.fallback!r}, files={len(self.files)})')

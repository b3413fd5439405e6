"""mmdet's ``Pad`` for images with any number of channels (stacked frames)."""
from numbers import Number

import numpy as np
from mmdet.datasets.transforms import Pad

from densekit.registry import TRANSFORMS

# mmcv padding modes -> numpy's (cv2 BORDER_REFLECT_101 is numpy 'reflect',
# BORDER_REFLECT is numpy 'symmetric', as in mmcv.impad).
_NP_MODES = dict(constant='constant', edge='edge', reflect='reflect',
                 symmetric='symmetric')


@TRANSFORMS.register_module()
class StreamPad(Pad):
    """``mmdet.Pad`` that pads the (H, W, 3T) stacked frames of
    :class:`densekit.LoadStreamFrames`.

    ``mmdet.Pad`` pads with ``mmcv.impad`` -> ``cv2.copyMakeBorder``, which
    accepts at most 4 border values and, for more than 4 channels, only a
    value equal in all channels given as a 4-element Scalar; mmcv turns
    ``pad_val=dict(img=114)`` into a 3T-tuple, so ``mmdet.Pad`` fails on
    6 or more channels (only ``pad_val=dict(img=0.)`` happens to work). This
    subclass pads the image with ``np.pad`` instead and is otherwise
    ``mmdet.Pad`` (same arguments, sizes, ``pad_shape`` / ``img_shape``
    keys, segmentation-map and mask padding).

    Args:
        size (tuple[int, int], optional): Fixed (w, h) to pad to.
        size_divisor (int, optional): Pad to a multiple of this.
        pad_to_square (bool): Pad to a square. Defaults to False.
        pad_val (Number | dict): ``img`` is a number (every channel), a
            3-sequence (one value per BGR channel, repeated for every frame)
            or a 3T-sequence. Defaults to ``dict(img=0, seg=255)``.
        padding_mode (str): 'constant', 'edge', 'reflect' or 'symmetric'.
            Defaults to 'constant'.
    """

    def _pad_img(self, results: dict) -> None:
        img = results['img']
        h, w = img.shape[:2]
        size = None
        if self.pad_to_square:
            size = (max(h, w), max(h, w))
        if self.size_divisor is not None:
            if size is None:
                size = (h, w)
            d = self.size_divisor
            size = (-(-size[0] // d) * d, -(-size[1] // d) * d)
        elif self.size is not None:
            size = self.size[::-1]
        pad_h, pad_w = max(size[0] - h, 0), max(size[1] - w, 0)
        widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (img.ndim - 2)
        if self.padding_mode != 'constant':
            padded = np.pad(img, widths, mode=_NP_MODES[self.padding_mode])
        else:
            padded = np.empty((h + pad_h, w + pad_w, *img.shape[2:]),
                              img.dtype)
            padded[...] = self._fill_value(img, results)
            padded[:h, :w] = img
        results['img'] = padded
        results['pad_shape'] = padded.shape
        results['pad_fixed_size'] = self.size
        results['pad_size_divisor'] = self.size_divisor
        results['img_shape'] = padded.shape[:2]

    def _fill_value(self, img: np.ndarray, results: dict) -> np.ndarray:
        """The constant pad value broadcastable to one pixel."""
        value = self.pad_val.get('img', 0)
        if isinstance(value, Number):
            return np.asarray(value, img.dtype)
        value = np.asarray(value, img.dtype).reshape(-1)
        channels = img.shape[2] if img.ndim == 3 else 1
        if value.size == 3 and channels % 3 == 0:
            return np.tile(value, channels // 3)
        if value.size != channels:
            raise ValueError(
                f'StreamPad: pad_val img={tuple(value.tolist())} must be a '
                f'number, 3 values (one per BGR channel) or {channels} '
                f'values for the {channels}-channel image of '
                f'{results.get("img_path")}')
        return value


__all__ = ['StreamPad']

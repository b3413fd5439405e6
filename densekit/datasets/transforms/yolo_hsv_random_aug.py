"""HSV colour-space augmentation with multiplicative gains (YOLOv5/v8).

ultralytics' ``augment_hsv``: hue, saturation and value are each multiplied
by a random gain in ``1 +- delta`` (hue wraps at 180, OpenCV's range),
applied with lookup tables. mmdet's ``YOLOXHSVRandomAug`` adds offsets
instead, which is a different distribution.
"""
from typing import Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from densekit.registry import TRANSFORMS


@TRANSFORMS.register_module()
class YOLOHSVRandomAug(BaseTransform):
    """Random HSV gains, as YOLOv8 trains with (hsv_h/hsv_s/hsv_v).

    Required Keys: img (uint8 BGR). Modified Keys: img.

    Args:
        hue_delta (float): Max relative hue change. Defaults to 0.015.
        saturation_delta (float): Max relative saturation change. Defaults
            to 0.7.
        value_delta (float): Max relative value change. Defaults to 0.4.
    """

    def __init__(self,
                 hue_delta: float = 0.015,
                 saturation_delta: float = 0.7,
                 value_delta: float = 0.4) -> None:
        for name, value in (('hue_delta', hue_delta),
                            ('saturation_delta', saturation_delta),
                            ('value_delta', value_delta)):
            if not 0 <= value <= 1:
                raise ValueError(
                    f'YOLOHSVRandomAug: {name} must be in [0, 1], got {value}')
        self.deltas = np.array([hue_delta, saturation_delta, value_delta])

    def transform(self, results: dict) -> Optional[dict]:
        img = results['img']
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise TypeError('YOLOHSVRandomAug expects a uint8 (H, W, 3) BGR '
                            f'image, got {img.dtype} {img.shape} from '
                            f"{results.get('img_path', 'an array')}")
        gains = np.random.uniform(-1, 1, 3) * self.deltas + 1
        table = np.arange(256, dtype=np.float64)
        lut_hue = ((table * gains[0]) % 180).astype(np.uint8)
        lut_sat = np.clip(table * gains[1], 0, 255).astype(np.uint8)
        lut_val = np.clip(table * gains[2], 0, 255).astype(np.uint8)
        hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV))
        hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat),
                         cv2.LUT(val, lut_val)))
        results['img'] = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return results

    def __repr__(self) -> str:
        h, s, v = self.deltas
        return (f'{type(self).__name__}(hue_delta={h}, saturation_delta={s}, '
                f'value_delta={v})')

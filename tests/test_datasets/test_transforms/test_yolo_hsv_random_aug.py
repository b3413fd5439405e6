import cv2
import numpy as np
import pytest

from densekit.datasets.transforms import YOLOHSVRandomAug


def test_gains_are_multiplicative_within_bounds():
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., :] = (40, 120, 200)  # BGR
    h0, s0, v0 = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)[0, 0].astype(float)
    aug = YOLOHSVRandomAug(hue_delta=0.0, saturation_delta=0.0,
                           value_delta=0.4)
    np.random.seed(0)
    for _ in range(20):
        out = aug(dict(img=img.copy()))['img']
        h, s, v = cv2.cvtColor(out, cv2.COLOR_BGR2HSV)[0, 0].astype(float)
        assert 0.6 * v0 - 2 <= v <= 1.4 * v0 + 2
        assert abs(h - h0) <= 2 and abs(s - s0) <= 6
    assert out.shape == img.shape and out.dtype == np.uint8


def test_identity_when_deltas_are_zero():
    img = np.random.RandomState(0).randint(0, 255, (8, 8, 3), np.uint8)
    out = YOLOHSVRandomAug(0, 0, 0)(dict(img=img.copy()))['img']
    # only the BGR<->HSV round trip remains
    assert np.abs(out.astype(int) - img.astype(int)).max() <= 8


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match='value_delta'):
        YOLOHSVRandomAug(value_delta=2)
    with pytest.raises(TypeError, match='uint8'):
        YOLOHSVRandomAug()(dict(img=np.zeros((4, 4, 3), np.float32)))

import math

import pytest
import torch

from densekit.models.utils import bbox_ciou


def test_ciou_identical_boxes_is_one():
    boxes = torch.tensor([[0., 0., 10., 20.], [5., 5., 7., 9.]])
    assert torch.allclose(bbox_ciou(boxes, boxes), torch.ones(2), atol=1e-6)


def test_ciou_hand_computed():
    # same aspect ratio (v = 0): CIoU = IoU - rho^2 / c^2
    b1 = torch.tensor([0., 0., 2., 2.])
    b2 = torch.tensor([1., 0., 3., 2.])
    iou = 2 / 6
    rho2 = 1.0  # centres (1, 1) and (2, 1)
    c2 = 3**2 + 2**2
    assert bbox_ciou(b1, b2).item() == pytest.approx(iou - rho2 / c2, abs=1e-6)


def test_ciou_aspect_term_and_broadcast():
    b1 = torch.tensor([[0., 0., 4., 2.]])  # w/h = 2
    b2 = torch.tensor([[0., 0., 2., 4.]])  # w/h = 0.5, same centre? no
    iou = 4 / 12
    v = 4 / math.pi**2 * (math.atan(0.5) - math.atan(2))**2
    alpha = v / (v - iou + 1)
    rho2 = (1 - 2)**2 + (2 - 1)**2
    c2 = 4**2 + 4**2
    expected = iou - rho2 / c2 - alpha * v
    out = bbox_ciou(b1[:, None], b2[None])  # (1, 1) by broadcasting
    assert out.shape == (1, 1)
    assert out.item() == pytest.approx(expected, abs=1e-6)

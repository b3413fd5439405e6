"""Box geometry shared by assigners and losses."""
import math

import torch
from torch import Tensor


def bbox_ciou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU of aligned boxes, broadcasting over leading dimensions.

    CIoU = IoU - rho^2 / c^2 - alpha * v, with rho the centre distance, c the
    diagonal of the smallest enclosing box, v = 4/pi^2 (atan(w2/h2) -
    atan(w1/h1))^2 and alpha = v / (v - IoU + 1) (Zheng et al., AAAI 2020,
    eq. 9-11). Unlike mmdet's ``ciou_loss`` (TPAMI version), alpha is not
    zeroed for IoU < 0.5; this is the form YOLOv8 trains and assigns with.

    Args:
        boxes1 (Tensor): (..., 4) boxes in (x1, y1, x2, y2).
        boxes2 (Tensor): (..., 4) boxes in (x1, y1, x2, y2), broadcastable
            against ``boxes1``.

    Returns:
        Tensor: (...) CIoU values in [-1.5, 1].
    """
    b1_x1, b1_y1, b1_x2, b1_y2 = boxes1.unbind(-1)
    b2_x1, b2_y1, b2_x2, b2_y2 = boxes2.unbind(-1)
    w1, h1 = b1_x2 - b1_x1, (b1_y2 - b1_y1).clamp(min=eps)
    w2, h2 = b2_x2 - b2_x1, (b2_y2 - b2_y1).clamp(min=eps)

    inter = ((torch.min(b1_x2, b2_x2) - torch.max(b1_x1, b2_x1)).clamp(min=0) *
             (torch.min(b1_y2, b2_y2) - torch.max(b1_y1, b2_y1)).clamp(min=0))
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union

    enclose_w = torch.max(b1_x2, b2_x2) - torch.min(b1_x1, b2_x1)
    enclose_h = torch.max(b1_y2, b2_y2) - torch.min(b1_y1, b2_y1)
    c2 = enclose_w**2 + enclose_h**2 + eps
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2)**2 +
            (b2_y1 + b2_y2 - b1_y1 - b1_y2)**2) / 4
    v = (4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1))**2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)

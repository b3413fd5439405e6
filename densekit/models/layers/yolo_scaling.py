"""YOLO model scaling: the ``scales`` table of ultralytics ``yolov8.yaml`` and
the width/depth rounding every YOLO-family backbone and neck applies.
"""
import math

__all__ = ['YOLOV8_SCALES', 'make_divisible', 'make_round']

#: ultralytics ``yolov8.yaml`` ``scales``: ``[depth, width, max_channels]``
#: as the YOLOv8CSPDarknet arguments (the configs
#: ``configs/det/yolov8_{n..x}_coco.py`` set the same numbers)
YOLOV8_SCALES = dict(
    n=dict(deepen_factor=0.33, widen_factor=0.25,
           last_stage_out_channels=1024),
    s=dict(deepen_factor=0.33, widen_factor=0.5,
           last_stage_out_channels=1024),
    m=dict(deepen_factor=0.67, widen_factor=0.75,
           last_stage_out_channels=768),
    l=dict(deepen_factor=1.0, widen_factor=1.0, last_stage_out_channels=512),
    x=dict(deepen_factor=1.0, widen_factor=1.25,
           last_stage_out_channels=512),
)


def make_divisible(channels: float, widen_factor: float,
                   divisor: int = 8) -> int:
    """Scale a channel count and round it up to a multiple of ``divisor``."""
    return int(math.ceil(channels * widen_factor / divisor) * divisor)


def make_round(num_blocks: int, deepen_factor: float) -> int:
    """Scale a repeat count (at least 1), as ultralytics does."""
    return max(round(num_blocks * deepen_factor), 1) if num_blocks > 1 \
        else num_blocks

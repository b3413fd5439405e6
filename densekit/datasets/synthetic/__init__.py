"""Seeded generators of small synthetic datasets (numpy and OpenCV only)."""
from .anomaly import (ANOMALY_DEFECT_TYPES, generate_anomaly_mvtec,
                      render_anomaly_image)
from .shapes import (SHAPES_CLASSES, SHAPES_METAINFO, SHAPES_PALETTE,
                     ShapesSample, contour_to_polygon, generate_shapes_coco,
                     mask_to_coco, render_shapes_image)
from .shapes_seg import (SHAPES_SEG_CLASSES, SHAPES_SEG_METAINFO,
                         SHAPES_SEG_PALETTE, generate_shapes_ade,
                         shapes_label_map)

__all__ = [
    'SHAPES_CLASSES', 'SHAPES_METAINFO', 'SHAPES_PALETTE', 'ShapesSample',
    'contour_to_polygon', 'generate_shapes_coco', 'mask_to_coco',
    'render_shapes_image', 'SHAPES_SEG_CLASSES', 'SHAPES_SEG_METAINFO',
    'SHAPES_SEG_PALETTE', 'generate_shapes_ade', 'shapes_label_map',
    'ANOMALY_DEFECT_TYPES', 'generate_anomaly_mvtec', 'render_anomaly_image'
]

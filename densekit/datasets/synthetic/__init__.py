"""Seeded generators of small synthetic datasets (numpy and OpenCV only)."""
from .shapes import (SHAPES_CLASSES, SHAPES_METAINFO, SHAPES_PALETTE,
                     ShapesSample, contour_to_polygon, generate_shapes_coco,
                     mask_to_coco, render_shapes_image)

__all__ = [
    'SHAPES_CLASSES', 'SHAPES_METAINFO', 'SHAPES_PALETTE', 'ShapesSample',
    'contour_to_polygon', 'generate_shapes_coco', 'mask_to_coco',
    'render_shapes_image'
]

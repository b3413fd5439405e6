"""Seeded generators of small synthetic datasets (numpy and OpenCV only)."""
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
    'SHAPES_SEG_PALETTE', 'generate_shapes_ade', 'shapes_label_map'
]

"""Seeded generators of small synthetic datasets (numpy and OpenCV only)."""
from .anomaly import (ANOMALY_DEFECT_TYPES, generate_anomaly_mvtec,
                      render_anomaly_image)
from .moving_shapes import (MOTION_TYPES, MOVING_SHAPES_CLASSES,
                            MOVING_SHAPES_METAINFO, MovingShapesSequence,
                            generate_moving_shapes_argoverse,
                            render_moving_shapes_sequence)
from .phantom import (MAX_PHANTOM_ORGANS, PHANTOM_CLASSES, PHANTOM_METAINFO,
                      PHANTOM_ORGANS, PHANTOM_PALETTE, PHANTOM_SPACING,
                      generate_phantom_synapse, phantom_classes,
                      phantom_metainfo, render_phantom_volume)
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
    'ANOMALY_DEFECT_TYPES', 'generate_anomaly_mvtec', 'render_anomaly_image',
    'PHANTOM_ORGANS', 'MAX_PHANTOM_ORGANS', 'PHANTOM_CLASSES',
    'PHANTOM_PALETTE', 'PHANTOM_METAINFO', 'PHANTOM_SPACING',
    'phantom_classes', 'phantom_metainfo', 'render_phantom_volume',
    'generate_phantom_synapse',
    'MOVING_SHAPES_CLASSES', 'MOVING_SHAPES_METAINFO', 'MOTION_TYPES',
    'MovingShapesSequence', 'render_moving_shapes_sequence',
    'generate_moving_shapes_argoverse'
]

"""Datasets, data transforms and synthetic data generators.

Importing this package registers densekit's transforms in
:data:`densekit.registry.TRANSFORMS` and datasets in
:data:`densekit.registry.DATASETS`; it does not import any model code.
"""
from .shapes_seg_dataset import ShapesSegDataset
from .synthetic import (SHAPES_CLASSES, SHAPES_METAINFO, generate_shapes_coco,
                        render_shapes_image)
from .transforms import (LoadImageFromFileSafe, get_skipped_images,
                         reset_skipped_images)

__all__ = [
    'SHAPES_CLASSES', 'SHAPES_METAINFO', 'generate_shapes_coco',
    'render_shapes_image', 'LoadImageFromFileSafe', 'get_skipped_images',
    'reset_skipped_images', 'ShapesSegDataset'
]

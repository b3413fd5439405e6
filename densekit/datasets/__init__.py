"""Datasets, data transforms and synthetic data generators.

Importing this package registers densekit's transforms in
:data:`densekit.registry.TRANSFORMS` and datasets in
:data:`densekit.registry.DATASETS`; it does not import any model code.
"""
from .anomaly_datasets import (ANOMALY_CLASSES, ANOMALY_METAINFO,
                               MVTecADDataset, MVTecLOCODataset, VisADataset)
from .argoverse_hd_dataset import (ARGOVERSE_HD_CLASSES, ARGOVERSE_HD_METAINFO,
                                   ArgoverseHDDataset)
from .medical_datasets import (ACDC_CLASSES, ACDC_METAINFO, SYNAPSE_CLASSES,
                               SYNAPSE_METAINFO, ACDCDataset, SynapseDataset)
from .shapes_seg_dataset import ShapesSegDataset
from .synthetic import (MOVING_SHAPES_CLASSES, MOVING_SHAPES_METAINFO,
                        PHANTOM_CLASSES, PHANTOM_METAINFO, SHAPES_CLASSES,
                        SHAPES_METAINFO, generate_anomaly_mvtec,
                        generate_moving_shapes_argoverse,
                        generate_phantom_synapse, generate_shapes_coco,
                        render_shapes_image)
from .transforms import (MEDICAL_META_KEYS, LoadAnomalyMask,
                         LoadImageFromFileSafe, LoadMedicalSlice,
                         LoadStreamAnnotations, LoadStreamFrames,
                         PackAnomalyInputs, PackStreamInputs,
                         StreamFilterAnnotations, StreamPad,
                         get_skipped_images, reset_skipped_images)

__all__ = [
    'SHAPES_CLASSES', 'SHAPES_METAINFO', 'generate_shapes_coco',
    'render_shapes_image', 'LoadImageFromFileSafe', 'get_skipped_images',
    'reset_skipped_images', 'ShapesSegDataset', 'ANOMALY_CLASSES',
    'ANOMALY_METAINFO', 'MVTecADDataset', 'MVTecLOCODataset', 'VisADataset',
    'generate_anomaly_mvtec', 'LoadAnomalyMask', 'PackAnomalyInputs',
    'SYNAPSE_CLASSES', 'SYNAPSE_METAINFO', 'ACDC_CLASSES', 'ACDC_METAINFO',
    'SynapseDataset', 'ACDCDataset', 'LoadMedicalSlice', 'MEDICAL_META_KEYS',
    'PHANTOM_CLASSES', 'PHANTOM_METAINFO', 'generate_phantom_synapse',
    'ARGOVERSE_HD_CLASSES', 'ARGOVERSE_HD_METAINFO', 'ArgoverseHDDataset',
    'MOVING_SHAPES_CLASSES', 'MOVING_SHAPES_METAINFO',
    'generate_moving_shapes_argoverse', 'LoadStreamFrames',
    'LoadStreamAnnotations', 'PackStreamInputs', 'StreamFilterAnnotations',
    'StreamPad'
]

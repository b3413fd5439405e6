"""Data transforms, registered in :data:`densekit.registry.TRANSFORMS`."""
from .anomaly_transforms import LoadAnomalyMask, PackAnomalyInputs
from .check_seg_labels import CheckSegLabels
from .load_medical_slice import MEDICAL_META_KEYS, LoadMedicalSlice
from .loading import (CorruptImageError, ImageLoadError, LoadImageFromFileSafe,
                      MissingImageError, get_skipped_images,
                      image_load_message, reset_skipped_images)
from .penalty_image import LoadPenaltyImage, synthetic_penalty_image
from .stream_filter_annotations import StreamFilterAnnotations
from .stream_formatting import STREAM_META_KEYS, PackStreamInputs
from .stream_loading import LoadStreamAnnotations, LoadStreamFrames
from .stream_pad import StreamPad
from .yolo_hsv_random_aug import YOLOHSVRandomAug

__all__ = [
    'LoadImageFromFileSafe', 'get_skipped_images', 'reset_skipped_images',
    'ImageLoadError', 'MissingImageError', 'CorruptImageError',
    'image_load_message',
    'YOLOHSVRandomAug', 'CheckSegLabels', 'LoadAnomalyMask',
    'PackAnomalyInputs', 'LoadPenaltyImage', 'synthetic_penalty_image',
    'LoadMedicalSlice', 'MEDICAL_META_KEYS',
    'LoadStreamFrames', 'LoadStreamAnnotations', 'PackStreamInputs',
    'STREAM_META_KEYS', 'StreamFilterAnnotations', 'StreamPad'
]

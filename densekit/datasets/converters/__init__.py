"""Converters from datasets' released annotation formats to the ones the
configs read."""
from .cityscapes import (CITYSCAPES_LABELS, convert_cityscapes,
                         label_ids_to_train_ids, polygons_to_train_ids)

__all__ = [
    'CITYSCAPES_LABELS', 'convert_cityscapes', 'label_ids_to_train_ids',
    'polygons_to_train_ids'
]

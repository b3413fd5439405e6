"""Converters from datasets' released annotation formats to the ones the
configs read."""
from .cityscapes import (CITYSCAPES_LABELS, convert_cityscapes,
                         label_ids_to_train_ids, polygons_to_train_ids)
from .medical import (CT_WINDOW, SYNAPSE_LABEL_MAP, SYNAPSE_RAW_CLASSES,
                      TRANSUNET_SYNAPSE_TEST_CASES, VolumePair,
                      convert_nifti_to_slices, find_acdc_pairs,
                      find_synapse_raw_pairs, remap_labels, split_volume_ids,
                      window_intensity)

__all__ = [
    'CITYSCAPES_LABELS', 'convert_cityscapes', 'label_ids_to_train_ids',
    'polygons_to_train_ids', 'CT_WINDOW', 'SYNAPSE_LABEL_MAP',
    'SYNAPSE_RAW_CLASSES', 'TRANSUNET_SYNAPSE_TEST_CASES', 'VolumePair',
    'convert_nifti_to_slices', 'find_acdc_pairs', 'find_synapse_raw_pairs',
    'remap_labels', 'split_volume_ids', 'window_intensity'
]

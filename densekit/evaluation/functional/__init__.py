"""Metric computations as pure functions, used by the metric classes."""
from .anomaly_metrics import f1_max, pixel_auroc, pro_auc, pro_curve, roc_auc
from .stream_simulation import StreamSchedule, simulate_stream
from .streaming_ap import (load_stream_gt, offline_coco_eval,
                           pair_stream_predictions, streaming_coco_eval)
from .volume_metrics import (dice_coefficient, hd95, per_class_volume_metrics,
                             surface_distances)

__all__ = [
    'roc_auc', 'f1_max', 'pixel_auroc', 'pro_curve', 'pro_auc',
    'dice_coefficient', 'surface_distances', 'hd95',
    'per_class_volume_metrics', 'StreamSchedule', 'simulate_stream',
    'pair_stream_predictions', 'streaming_coco_eval', 'offline_coco_eval',
    'load_stream_gt'
]

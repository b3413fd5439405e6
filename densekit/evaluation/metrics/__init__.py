from .anomaly_metric import AnomalyMetric
from .cityscapes_metric import CityscapesMetric, cityscapesscripts_available
from .volume_metric import VolumeSegMetric
from .sampled_frames_coco_metric import SampledFramesCocoMetric
from .streaming_ap_metric import StreamingAPMetric

__all__ = [
    'AnomalyMetric', 'CityscapesMetric', 'cityscapesscripts_available',
    'VolumeSegMetric', 'SampledFramesCocoMetric', 'StreamingAPMetric'
]

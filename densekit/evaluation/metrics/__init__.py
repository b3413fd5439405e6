from .anomaly_metric import AnomalyMetric
from .cityscapes_metric import CityscapesMetric, cityscapesscripts_available
from .sampled_frames_coco_metric import SampledFramesCocoMetric
from .streaming_ap_metric import StreamingAPMetric
from .volume_metric import VolumeSegMetric

__all__ = [
    'AnomalyMetric', 'CityscapesMetric', 'cityscapesscripts_available',
    'VolumeSegMetric', 'SampledFramesCocoMetric', 'StreamingAPMetric'
]

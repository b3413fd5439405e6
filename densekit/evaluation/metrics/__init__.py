from .anomaly_metric import AnomalyMetric
from .cityscapes_metric import CityscapesMetric, cityscapesscripts_available
from .volume_metric import VolumeSegMetric

__all__ = [
    'AnomalyMetric', 'CityscapesMetric', 'cityscapesscripts_available',
    'VolumeSegMetric'
]

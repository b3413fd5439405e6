from .anomaly_metric import AnomalyMetric
from .cityscapes_metric import CityscapesMetric, cityscapesscripts_available

__all__ = ['AnomalyMetric', 'CityscapesMetric', 'cityscapesscripts_available']

from .cityscapes_metric import CityscapesMetric, cityscapesscripts_available

__all__ = ['CityscapesMetric', 'cityscapesscripts_available']

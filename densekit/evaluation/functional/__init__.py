"""Metric computations as pure functions, used by the metric classes."""
from .anomaly_metrics import f1_max, pixel_auroc, pro_auc, pro_curve, roc_auc

__all__ = ['roc_auc', 'f1_max', 'pixel_auroc', 'pro_curve', 'pro_auc']

"""Evaluation metrics, registered in :data:`densekit.registry.METRICS`.

Detection is evaluated by mmdet's ``CocoMetric`` (pycocotools, the metric of
record) from the configs; densekit's own metrics for the other tasks live
here, one file per metric.
"""
from .functional import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403

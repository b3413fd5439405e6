"""COCO bbox AP over the frames a streaming dataset actually yields."""
from typing import Dict, List

from mmdet.evaluation import CocoMetric

from densekit.registry import METRICS


@METRICS.register_module()
class SampledFramesCocoMetric(CocoMetric):
    """mmdet's ``CocoMetric`` restricted to the images that were predicted.

    A streaming dataset (:class:`densekit.ArgoverseHDDataset`) yields one
    sample per *target* frame, and a window of N past frames and a forecast
    offset k leave some frames of each sequence without a sample (e.g. the
    first k for a forecaster), while its annotation file lists every frame.
    mmdet's ``CocoMetric`` evaluates all images of the annotation file, so
    those frames would count as missed detections; this metric evaluates
    the images with a prediction only (``COCOeval.params.imgIds``), i.e.
    offline AP of each output against the frame it is meant for.

    Args:
        **kwargs: As ``mmdet.evaluation.CocoMetric``.
    """

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """``CocoMetric.compute_metrics`` over the predicted images."""
        # CocoMetric reads self.img_ids when it is set (all images else)
        self.img_ids = sorted({int(pred['img_id']) for _, pred in results})
        return super().compute_metrics(results)

"""High-level inference APIs."""
from .anomaly_inferencer import AnomalyInferencer, AnomalyResult, draw_anomaly
from .det_inferencer import (DetInferencer, DetResult,
                             build_inference_pipeline, draw_detections)
from .image_io import load_image_input, read_image
from .seg_inferencer import (SegInferencer, SegResult, build_inferencer,
                             draw_segmentation)
from .stream_detector import (FrameDetector, MMDetFrameDetector,
                              build_stream_inference_pipeline,
                              run_stream_replay)
from .volume_inferencer import VolumeInferencer, VolumeResult, draw_volume_grid

__all__ = [
    'AnomalyInferencer', 'AnomalyResult', 'draw_anomaly',
    'DetInferencer', 'DetResult', 'build_inference_pipeline',
    'draw_detections', 'read_image', 'load_image_input', 'SegInferencer',
    'SegResult',
    'build_inferencer', 'draw_segmentation', 'VolumeInferencer',
    'VolumeResult', 'draw_volume_grid', 'FrameDetector',
    'MMDetFrameDetector', 'build_stream_inference_pipeline',
    'run_stream_replay'
]

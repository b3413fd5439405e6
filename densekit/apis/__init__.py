"""High-level inference APIs."""
from .det_inferencer import (DetInferencer, DetResult,
                             build_inference_pipeline, draw_detections,
                             read_image)

__all__ = [
    'DetInferencer', 'DetResult', 'build_inference_pipeline',
    'draw_detections', 'read_image'
]

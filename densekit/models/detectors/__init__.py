from .cb_assistant_supervision import CBAssistantSupervisionMixin
from .cb_single_stage_detector import CBSingleStageDetector
from .cb_two_stage_detector import CBTwoStageDetector
from .cb_yolo_detector import CBYOLODetector
from .stream_yolo_detector import StreamYOLODetector
from .yolo_detector import YOLODetector

__all__ = ['YOLODetector', 'CBAssistantSupervisionMixin',
           'CBTwoStageDetector', 'CBSingleStageDetector', 'CBYOLODetector',
           'StreamYOLODetector']

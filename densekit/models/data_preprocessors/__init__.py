from .anomaly_data_preprocessor import AnomalyDataPreprocessor
from .stream_data_preprocessor import StreamDataPreprocessor

__all__ = ['AnomalyDataPreprocessor', 'StreamDataPreprocessor']

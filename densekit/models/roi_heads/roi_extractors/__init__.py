from .scoped_roi_extractor import ScopedRoIExtractor

__all__ = ['ScopedRoIExtractor']

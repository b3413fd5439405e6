from .close_mosaic_hook import CloseMosaicHook
from .efficient_ad_stats_hook import EfficientADStatsHook

__all__ = ['CloseMosaicHook', 'EfficientADStatsHook']

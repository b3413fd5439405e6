from .close_mosaic_hook import CloseMosaicHook
from .efficient_ad_stats_hook import EfficientADStatsHook
from .exact_resume_hook import ExactResumeHook
from .fuse_conv_bn_hook import FuseConvBNHook
from .unreadable_image_hook import UnreadableImageHook

__all__ = [
    'CloseMosaicHook', 'EfficientADStatsHook', 'ExactResumeHook',
    'FuseConvBNHook', 'UnreadableImageHook'
]

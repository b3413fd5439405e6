from .close_mosaic_hook import CloseMosaicHook

__all__ = ['CloseMosaicHook']

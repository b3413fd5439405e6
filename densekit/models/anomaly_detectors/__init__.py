from .efficient_ad import EfficientAD, hard_feature_loss, random_color_augment

__all__ = ['EfficientAD', 'hard_feature_loss', 'random_color_augment']

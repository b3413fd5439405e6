from .efficient_ad import EfficientAD, hard_feature_loss, random_color_augment
from .efficient_ad_inference import EfficientADInference, build_inference_path

__all__ = [
    'EfficientAD', 'hard_feature_loss', 'random_color_augment',
    'EfficientADInference', 'build_inference_path'
]

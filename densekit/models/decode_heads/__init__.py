from .atm_head import ATMHead
from .cascaded_upsampler_head import CascadedUpsamplerHead
from .patch_expanding_unet_head import PatchExpanding, PatchExpandingUNetHead
from .token_classifier_head import TokenClassifierHead

__all__ = ['ATMHead', 'CascadedUpsamplerHead', 'PatchExpanding',
           'PatchExpandingUNetHead', 'TokenClassifierHead']

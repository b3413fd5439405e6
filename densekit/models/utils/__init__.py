from .box_ops import bbox_ciou
from .checkpoint import (UnconvertedKeysError, load_pretrained,
                         unwrap_state_dict)
from .efficient_ad_convert import (convert_anomalib_efficientad,
                                   convert_autoencoder, convert_efficientad,
                                   convert_nelson_efficientad, convert_pdn,
                                   load_teacher_checkpoint)
from .fuse_conv_bn import count_batchnorms, fuse_conv_bn
from .token_pruning import select_exiting_tokens

__all__ = ['bbox_ciou', 'load_pretrained', 'select_exiting_tokens',
           'unwrap_state_dict', 'UnconvertedKeysError', 'convert_pdn',
           'convert_autoencoder', 'convert_nelson_efficientad',
           'convert_anomalib_efficientad', 'convert_efficientad',
           'load_teacher_checkpoint', 'fuse_conv_bn', 'count_batchnorms']

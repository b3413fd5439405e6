from .box_ops import bbox_ciou
from .checkpoint import (UnconvertedKeysError, load_pretrained,
                         unwrap_state_dict)
from .fuse_conv_bn import count_batchnorms, fuse_conv_bn
from .token_pruning import select_exiting_tokens

__all__ = ['bbox_ciou', 'load_pretrained', 'select_exiting_tokens',
           'unwrap_state_dict', 'UnconvertedKeysError', 'fuse_conv_bn',
           'count_batchnorms']

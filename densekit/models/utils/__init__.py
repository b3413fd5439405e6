from .box_ops import bbox_ciou
from .checkpoint import load_pretrained, unwrap_state_dict
from .token_pruning import select_exiting_tokens

__all__ = ['bbox_ciou', 'load_pretrained', 'select_exiting_tokens',
           'unwrap_state_dict']

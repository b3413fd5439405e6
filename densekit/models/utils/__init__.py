from .box_ops import bbox_ciou
from .token_pruning import select_exiting_tokens

__all__ = ['bbox_ciou', 'select_exiting_tokens']

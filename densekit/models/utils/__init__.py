from .box_ops import bbox_ciou

__all__ = ['bbox_ciou']

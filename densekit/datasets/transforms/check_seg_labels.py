"""Fail loudly on semantic-segmentation labels outside the class range."""
import numpy as np
from mmcv.transforms import BaseTransform

from densekit.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CheckSegLabels(BaseTransform):
    """Raise ``ValueError`` naming the file when ``gt_seg_map`` holds a label
    that is neither a class index nor the ignore index.

    Goes right after ``LoadAnnotations``. A label map with values beyond
    ``num_classes`` (a dataset converted for another class list, RGB colour
    maps saved as labels, Cityscapes ``labelIds`` instead of
    ``labelTrainIds``) would otherwise train silently on out-of-range
    targets or fail deep inside the loss.

    Args:
        num_classes (int): Valid labels are ``0 .. num_classes - 1``.
        ignore_index (int): Also valid (mmseg's 255).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f'CheckSegLabels: num_classes must be >= 1, but '
                             f'got {num_classes}')
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        seg = results.get('gt_seg_map')
        if seg is None:
            raise KeyError('CheckSegLabels needs gt_seg_map: put it after '
                           'LoadAnnotations in the pipeline')
        values = np.unique(seg)
        bad = values[(values >= self.num_classes)
                     & (values != self.ignore_index)]
        bad = np.concatenate([values[values < 0], bad])
        if bad.size:
            path = results.get('seg_map_path', '<unknown file>')
            hint = ''
            if 'gtFine' in str(path) and 'labelTrainIds' not in str(path):
                hint = (' (Cityscapes: use the *_gtFine_labelTrainIds.png '
                        'maps made by mmseg\'s tools/dataset_converters/'
                        'cityscapes.py)')
            after = (' (after reduce_zero_label)'
                     if results.get('reduce_zero_label') else '')
            raise ValueError(
                f'{path}: labels {bad.tolist()[:10]}{after} are outside the '
                f'{self.num_classes} classes 0..{self.num_classes - 1} and '
                f'not the ignore index {self.ignore_index}{hint}')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')

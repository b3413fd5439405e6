"""The synthetic shapes segmentation set as an mmseg dataset."""
from mmseg.datasets import BaseSegDataset

from densekit.registry import DATASETS
from .synthetic.shapes_seg import SHAPES_SEG_METAINFO


@DATASETS.register_module()
class ShapesSegDataset(BaseSegDataset):
    """densekit's synthetic shapes in ADE20K's layout and encoding.

    Written by ``tools/data/make_synthetic.py shapes_seg`` (see
    :func:`densekit.datasets.synthetic.generate_shapes_ade`): JPEG images
    and PNG label maps with 0 = unlabelled, so ``reduce_zero_label=True``
    as for :class:`mmseg.datasets.ADE20KDataset`; classes ``background``,
    ``circle``, ``square``, ``triangle``, ``star``.
    """
    METAINFO = SHAPES_SEG_METAINFO

    def __init__(self,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = True,
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)

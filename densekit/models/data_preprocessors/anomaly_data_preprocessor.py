"""Batch anomaly-detection images as [0, 1] RGB tensors."""
from typing import Optional, Sequence

from mmengine.model import ImgDataPreprocessor

from densekit.registry import MODELS


@MODELS.register_module()
class AnomalyDataPreprocessor(ImgDataPreprocessor):
    """mmengine's ``ImgDataPreprocessor`` scaling uint8 BGR images to
    [0, 1] RGB (the models normalise further themselves, as EfficientAD's
    networks expect ImageNet statistics on [0, 1] inputs), and the same for
    the ``penalty_img`` of each data sample (``densekit.LoadPenaltyImage``).

    Args:
        mean, std (Sequence[float]): Defaults to (0, 0, 0) and
            (255, 255, 255).
        bgr_to_rgb (bool): Defaults to True (mmcv loads BGR).
        pad_size_divisor (int): Defaults to 1.
    """

    def __init__(self,
                 mean: Sequence[float] = (0., 0., 0.),
                 std: Sequence[float] = (255., 255., 255.),
                 bgr_to_rgb: bool = True,
                 pad_size_divisor: int = 1,
                 non_blocking: Optional[bool] = False) -> None:
        super().__init__(mean=mean, std=std, bgr_to_rgb=bgr_to_rgb,
                         pad_size_divisor=pad_size_divisor,
                         non_blocking=non_blocking)
        self._bgr_to_rgb = bgr_to_rgb

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        for sample in data.get('data_samples') or []:
            if 'penalty_img' not in sample:
                continue
            img = sample.penalty_img.to(self.device).float()
            if self._bgr_to_rgb and img.shape[0] == 3:
                img = img[[2, 1, 0]]
            sample.penalty_img = (img - self.mean) / self.std
        return data

"""Batch stacked video frames as (B, T, 3, H, W) for streaming detectors."""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.models.utils.misc import samplelist_boxtype2tensor
from mmengine.utils import is_seq_of
from torch import Tensor

from densekit.registry import MODELS


@MODELS.register_module()
class StreamDataPreprocessor(DetDataPreprocessor):
    """``DetDataPreprocessor`` for the (3T, H, W) inputs of
    ``densekit.PackStreamInputs``.

    Every frame (block of 3 channels) is converted BGR -> RGB if asked and
    normalised with ``mean``/``std``; the batch is padded at the bottom and
    right to a common size divisible by ``pad_size_divisor`` (with
    ``pad_value``, after normalisation, as ``DetDataPreprocessor`` does) and
    returned as ``inputs`` of shape (B, T, 3, H, W), frame axis oldest ->
    current (-> future). ``batch_input_shape`` and ``pad_shape`` are set in
    each data sample's metainfo exactly as ``DetDataPreprocessor`` sets them.

    Args:
        mean (Sequence[float], optional): Per-channel mean of one frame
            (3 values). Defaults to None (no normalisation).
        std (Sequence[float], optional): Per-channel std of one frame.
            Defaults to None.
        pad_size_divisor (int): Defaults to 1.
        pad_value (float): Defaults to 0.
        bgr_to_rgb (bool): Defaults to False.
        rgb_to_bgr (bool): Defaults to False.
        boxtype2tensor (bool): Turn box types into tensors. Defaults to True.
        non_blocking (bool): Defaults to False.

    Note:
        Batch augments (``BatchSyncRandomResize`` and co.) expect 4D inputs
        and are not supported; mask / semantic-map padding is not either.

    Raises:
        ValueError: a sample's channel count is not a multiple of 3 or
            differs from the first sample's (the sample's ``img_path`` is
            named).
    """

    def __init__(self,
                 mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None,
                 pad_size_divisor: int = 1,
                 pad_value: Union[float, int] = 0,
                 bgr_to_rgb: bool = False,
                 rgb_to_bgr: bool = False,
                 boxtype2tensor: bool = True,
                 non_blocking: Optional[bool] = False) -> None:
        for name, value in (('mean', mean), ('std', std)):
            if value is not None and len(value) != 3:
                raise ValueError(
                    f'StreamDataPreprocessor: {name} must have 3 values (one '
                    f'frame\'s channels), but got {value!r}')
        super().__init__(
            mean=mean,
            std=std,
            pad_size_divisor=pad_size_divisor,
            pad_value=pad_value,
            bgr_to_rgb=bgr_to_rgb,
            rgb_to_bgr=rgb_to_bgr,
            boxtype2tensor=boxtype2tensor,
            non_blocking=non_blocking)

    @staticmethod
    def _name(data_samples, index: int) -> str:
        if data_samples is not None and index < len(data_samples):
            return str(data_samples[index].metainfo.get('img_path', index))
        return f'sample {index}'

    def _frames(self, inputs: List[Tensor], data_samples) -> List[Tensor]:
        """(3T, H, W) inputs -> normalised float (T, 3, H, W) frames."""
        out = []
        for i, img in enumerate(inputs):
            channels = img.shape[0] if img.dim() == 3 else None
            if channels is None or channels % 3:
                raise ValueError(
                    f'StreamDataPreprocessor: the input of '
                    f'{self._name(data_samples, i)} has shape '
                    f'{tuple(img.shape)}; expected (3T, H, W) stacked frames '
                    '(densekit.PackStreamInputs)')
            if channels != inputs[0].shape[0]:
                raise ValueError(
                    f'StreamDataPreprocessor: the input of '
                    f'{self._name(data_samples, i)} has {channels // 3} '
                    f'frames but {self._name(data_samples, 0)} has '
                    f'{inputs[0].shape[0] // 3}; every sample of a batch '
                    'needs the same number of frames')
            frames = img.float().view(channels // 3, 3, *img.shape[1:])
            if self._channel_conversion:
                frames = frames[:, [2, 1, 0]]
            if self._enable_normalize:
                frames = (frames - self.mean) / self.std
            out.append(frames)
        return out

    def forward(self, data: dict, training: bool = False) -> dict:
        """Normalise, pad and stack the frames of a batch.

        Args:
            data (dict): ``inputs`` (list of (3T, H, W) tensors or a
                (B, 3T, H, W) tensor) and ``data_samples``.
            training (bool): Unused (no batch augments). Defaults to False.

        Returns:
            dict: ``inputs`` (Tensor of shape (B, T, 3, H_pad, W_pad), float)
            and ``data_samples`` with ``batch_input_shape`` and
            ``pad_shape`` set.
        """
        batch_pad_shape = self._get_pad_shape(data)
        data = self.cast_data(data)
        inputs, data_samples = data['inputs'], data.get('data_samples')
        if isinstance(inputs, Tensor):
            if inputs.dim() != 4:
                raise ValueError(
                    'StreamDataPreprocessor: a batched input must have shape '
                    f'(B, 3T, H, W), but got {tuple(inputs.shape)}')
            inputs = list(inputs)
        elif not is_seq_of(inputs, Tensor):
            raise TypeError('StreamDataPreprocessor: inputs must be a list '
                            'of (3T, H, W) tensors or a (B, 3T, H, W) tensor, '
                            f'but got {type(inputs).__name__}')
        frames = self._frames(inputs, data_samples)
        d = self.pad_size_divisor
        pad_h = -(-max(f.shape[-2] for f in frames) // d) * d
        pad_w = -(-max(f.shape[-1] for f in frames) // d) * d
        batch = torch.stack([
            F.pad(f, (0, pad_w - f.shape[-1], 0, pad_h - f.shape[-2]),
                  value=self.pad_value) for f in frames
        ])
        if data_samples is not None:
            batch_input_shape = tuple(batch.shape[-2:])
            for sample, pad_shape in zip(data_samples, batch_pad_shape):
                sample.set_metainfo({
                    'batch_input_shape': batch_input_shape,
                    'pad_shape': pad_shape
                })
            if self.boxtype2tensor:
                samplelist_boxtype2tensor(data_samples)
        return {'inputs': batch, 'data_samples': data_samples}


__all__ = ['StreamDataPreprocessor']

"""EfficientAD's patch description network (PDN) and autoencoder.

Batzner et al., "EfficientAD: Accurate Visual Anomaly Detection at
Millisecond-Level Latencies", WACV 2024: Sec. 3.1 (PDN: four or six
convolutions, every output feature describes one 33x33 patch), Sec. 3.3
(the autoencoder of the logical-anomaly branch) and the appendix tables of
layer specifications (Tables 6-8). Parameter names follow anomalib's modules
(``conv1``...; ``encoder.enconv1``..., ``decoder.deconv1``...), so its
checkpoints load by name; the converter maps nelson1425/EfficientAD's
``nn.Sequential`` indices (``tools/model_converters/efficientad_to_densekit
.py``).
"""
import math
from typing import Optional, Sequence, Tuple

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

# (out channels, kernel, padding-if-padded) of each conv and where the two
# 2x2 average pools sit; "S" and "M" of the paper (Tables 6 and 7).
PDN_SPECS = {
    'S': dict(convs=((128, 4, 3), (256, 4, 3), (256, 3, 1), (None, 4, 0)),
              pool_after=(0, 1)),
    'M': dict(convs=((256, 4, 3), (512, 4, 3), (512, 1, 0), (512, 3, 1),
                     (None, 4, 0), (None, 1, 0)),
              pool_after=(0, 1)),
}


class PatchDescriptionNetwork(nn.Module):
    """PDN (Sec. 3.1): convolutions with ReLU and two 2x2 average pools; the
    last convolution has no ReLU.

    Without padding (the paper's default) a 256x256 input gives a 56x56 map
    whose every vector depends on exactly one 33x33 patch.

    Args:
        size (str): ``'S'`` (PDN-S, 4 convs) or ``'M'`` (PDN-M, 6 convs).
        out_channels (int): Feature channels: 384 for the teacher, 768 for
            the student (384 teacher-imitation + 384 autoencoder-imitation).
        padding (bool): Pad the convolutions and pools (anomalib's
            ``padding=True``; gives ceil(H/4) maps). Defaults to False.

    Examples:
        >>> pdn = PatchDescriptionNetwork('S', 384)
        >>> pdn(torch.rand(1, 3, 256, 256)).shape
        torch.Size([1, 384, 56, 56])
    """

    def __init__(self, size: str = 'S', out_channels: int = 384,
                 padding: bool = False) -> None:
        super().__init__()
        if size not in PDN_SPECS:
            raise ValueError(f'PatchDescriptionNetwork: size must be one of '
                             f'{sorted(PDN_SPECS)}, got {size!r}')
        spec = PDN_SPECS[size]
        self.size = size
        self.out_channels = out_channels
        self.padding = padding
        in_channels = 3
        self.num_convs = len(spec['convs'])
        for i, (channels, kernel, pad) in enumerate(spec['convs']):
            channels = channels or out_channels
            self.add_module(
                f'conv{i + 1}',
                nn.Conv2d(in_channels, channels, kernel,
                          padding=pad if padding else 0))
            in_channels = channels
        self.pool_after = tuple(spec['pool_after'])
        for j, _ in enumerate(self.pool_after):
            self.add_module(
                f'avgpool{j + 1}',
                nn.AvgPool2d(2, stride=2, padding=1 if padding else 0))

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) ImageNet-normalised images -> (N, C, h, w)."""
        for i in range(self.num_convs):
            x = getattr(self, f'conv{i + 1}')(x)
            if i == self.num_convs - 1:
                break
            x = F.relu(x)
            if i in self.pool_after:
                x = getattr(self, f'avgpool{self.pool_after.index(i) + 1}')(x)
        return x

    @staticmethod
    def output_size(size: int, padding: bool = False,
                    pdn: str = 'S') -> int:
        """Side of the feature map for an input side ``size``."""
        if padding:
            return math.ceil(size / 4)
        for channels, kernel, pad in PDN_SPECS[pdn]['convs'][:2]:
            size = (size - kernel + 1) // 2
        for channels, kernel, pad in PDN_SPECS[pdn]['convs'][2:]:
            size = size - kernel + 1
        return size


class EfficientADAutoencoder(nn.Module):
    """The autoencoder of the logical-anomaly branch (Sec. 3.3, Table 8).

    Encoder: five stride-2 4x4 convolutions and an 8x8 one to a 64-d code
    (1x1 for 256x256 inputs). Decoder: eight convolutions, each of the first
    seven after a bilinear resize to the sizes the paper lists for 256x256
    (3, 8, 15, 32, 63, 127, then the PDN's output size), written here as
    functions of the input size as anomalib does, and dropout 0.2 after the
    first six (the paper's decoder; nelson1425's re-implementation has it
    since May 2023, its first version omitted it).

    Args:
        out_channels (int): Output channels (384, the teacher's).
        padding (bool): Match a padded PDN's ceil(H/4) output. Defaults to
            False.
        dropout (float): Decoder dropout. Defaults to 0.2.
    """

    def __init__(self, out_channels: int = 384, padding: bool = False,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.padding = padding
        self.encoder = nn.Module()
        channels = (3, 32, 32, 64, 64, 64)
        for i in range(5):
            self.encoder.add_module(
                f'enconv{i + 1}',
                nn.Conv2d(channels[i], channels[i + 1], 4, stride=2,
                          padding=1))
        self.encoder.add_module('enconv6', nn.Conv2d(64, 64, 8))
        self.decoder = nn.Module()
        for i in range(6):
            self.decoder.add_module(f'deconv{i + 1}',
                                    nn.Conv2d(64, 64, 4, padding=2))
            self.decoder.add_module(f'dropout{i + 1}', nn.Dropout(dropout))
        self.decoder.add_module('deconv7', nn.Conv2d(64, 64, 3, padding=1))
        self.decoder.add_module('deconv8',
                                nn.Conv2d(64, out_channels, 3, padding=1))

    def decoder_sizes(self, image_size: Sequence[int]
                      ) -> Tuple[Tuple[int, int], ...]:
        """The seven resize targets of the decoder for an (H, W) input."""
        h, w = int(image_size[0]), int(image_size[1])
        last = ((math.ceil(h / 4), math.ceil(w / 4)) if self.padding else
                (PatchDescriptionNetwork.output_size(h),
                 PatchDescriptionNetwork.output_size(w)))
        return ((h // 64 - 1, w // 64 - 1), (h // 32, w // 32),
                (h // 16 - 1, w // 16 - 1), (h // 8, w // 8),
                (h // 4 - 1, w // 4 - 1), (h // 2 - 1, w // 2 - 1), last)

    def forward(self, x: Tensor,
                image_size: Optional[Sequence[int]] = None) -> Tensor:
        """(N, 3, H, W) ImageNet-normalised images -> (N, C, h, w) with the
        PDN's (h, w)."""
        image_size = tuple(x.shape[-2:]) if image_size is None else image_size
        if min(image_size) < 256:
            # five stride-2 convolutions, then an 8x8 one
            raise ValueError('EfficientADAutoencoder needs inputs of at '
                             f'least 256x256, got {tuple(image_size)}')
        for i in range(1, 6):
            x = F.relu(getattr(self.encoder, f'enconv{i}')(x))
        x = self.encoder.enconv6(x)
        sizes = self.decoder_sizes(image_size)
        for i in range(6):
            x = F.interpolate(x, size=sizes[i], mode='bilinear')
            x = F.relu(getattr(self.decoder, f'deconv{i + 1}')(x))
            x = getattr(self.decoder, f'dropout{i + 1}')(x)
        x = F.interpolate(x, size=sizes[6], mode='bilinear')
        x = F.relu(self.decoder.deconv7(x))
        return self.decoder.deconv8(x)

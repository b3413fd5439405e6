"""mmseg's U-Net with scSE blocks after its encoder and decoder blocks.

mmseg 1.x's ``UNet``, ``UpConvBlock`` and ``BasicConvBlock`` accept a
``plugins`` argument but assert it is None ("Not implemented yet."), and
``upsample_cfg``/``conv_cfg`` only reach the upsampling layer or single
convolutions, not a block's output, which is where Roy et al. (MICCAI 2018)
put scSE. So this wrapper composes a built ``UNet`` with one
:class:`~densekit.models.layers.SCSE` per block and re-runs UNet's forward
with the blocks inserted; the UNet's own parameters keep their names (under
``unet.``).
"""
from typing import List, Optional, Union

import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.models.backbones import UNet
from torch import Tensor

from densekit.models.layers.scse import SCSE
from densekit.registry import MODELS


@MODELS.register_module()
class SCSEUNet(BaseModule):
    """A U-Net backbone (mmseg's ``UNet``) recalibrated by scSE.

    With ``S = unet.num_stages`` and ``B = unet.base_channels``, encoder
    stage ``i`` outputs ``B * 2**i`` channels and decoder block ``j`` (mmseg
    index, applied deepest first) outputs ``B * 2**j``. scSE follows every
    encoder stage (``encoder=True``) and every decoder block
    (``decoder=True``); the skip connections carry the recalibrated encoder
    maps (scSE sits inside each block's output, before the skip is taken).

    Call graph::

        forward(): for each unet.encoder[i]: x = encoder_scse[i](enc(x))
                   for j = S-2 .. 0: x = decoder_scse[j](unet.decoder[j](
                       skip_j, x))

    Feature contract (like mmseg's UNet, from low to high resolution):
    ``out_channels`` ``[B * 2**(S-1), ..., 2B, B]`` at ``out_strides``
    (``[16, 8, 4, 2, 1]`` for the default UNet), so
    ``densekit.SegEncoderDecoder`` fills the heads' ``in_channels``.

    Args:
        unet (dict | UNet): mmseg's ``UNet`` or its config (``type`` may be
            omitted; it defaults to ``'mmseg.UNet'``).
        reduction (int): scSE channel bottleneck ratio. Defaults to 2.
        mode (str): scSE combination, ``'max'`` or ``'add'``. Defaults to
            'max'.
        encoder (bool): Recalibrate the encoder stages. Defaults to True.
        decoder (bool): Recalibrate the decoder blocks. Defaults to True.
        init_cfg (dict, optional): mmengine initialisation config. Defaults
            to None.

    Examples:
        >>> model = SCSEUNet(unet=dict(in_channels=1, base_channels=8))
        >>> [o.shape[1] for o in model(torch.rand(1, 1, 32, 32))]
        [128, 64, 32, 16, 8]
    """

    def __init__(self,
                 *,
                 unet: Union[dict, UNet],
                 reduction: int = 2,
                 mode: str = 'max',
                 encoder: bool = True,
                 decoder: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(unet, dict):
            # UNet builds its upsampling layers ('InterpConv') by unscoped
            # names, so it is built in mmseg's scope whatever the caller's
            cfg = dict(type='mmseg.UNet', _scope_='mmseg')
            cfg.update(unet)
            unet = MODELS.build(cfg)
        if not isinstance(unet, UNet):
            raise TypeError('SCSEUNet: unet must be an mmseg UNet or its '
                            f'config dict, but got {type(unet).__name__}')
        if not (encoder or decoder):
            raise ValueError('SCSEUNet: encoder and decoder are both False, '
                             'so no scSE block would be added; use mmseg.UNet'
                             ' directly')
        self.unet = unet
        base, stages = unet.base_channels, unet.num_stages
        self.encoder_scse = nn.ModuleList(
            SCSE(base * 2**i, reduction, mode) if encoder else nn.Identity()
            for i in range(stages))
        self.decoder_scse = nn.ModuleList(
            SCSE(base * 2**j, reduction, mode) if decoder else nn.Identity()
            for j in range(stages - 1))

    @property
    def out_channels(self) -> List[int]:
        """Channels of the returned maps, low to high resolution."""
        base, stages = self.unet.base_channels, self.unet.num_stages
        return [base * 2**i for i in reversed(range(stages))]

    @property
    def out_strides(self) -> List[int]:
        """Strides of the returned maps relative to the input."""
        strides, stride = [1], 1
        for i in range(1, self.unet.num_stages):
            if self.unet.strides[i] == 2 or self.unet.downsamples[i - 1]:
                stride *= 2
            strides.append(stride)
        return strides[::-1]

    def forward(self, x: Tensor) -> List[Tensor]:
        """Run mmseg's ``UNet.forward`` with scSE after each block.

        Args:
            x (Tensor): Images of shape (N, C_in, H, W); H and W divisible
                by the UNet's total downsampling (16 by default).

        Returns:
            list[Tensor]: ``S`` maps, the bottleneck first, then each
            decoder output up to full resolution; map ``k`` has shape
            (N, ``out_channels[k]``, H / ``out_strides[k]``,
            W / ``out_strides[k]``).
        """
        unet = self.unet
        unet._check_input_divisible(x)
        enc_outs = []
        for enc, scse in zip(unet.encoder, self.encoder_scse):
            x = scse(enc(x))
            enc_outs.append(x)
        dec_outs = [x]
        for j in reversed(range(len(unet.decoder))):
            x = self.decoder_scse[j](unet.decoder[j](enc_outs[j], x))
            dec_outs.append(x)
        return dec_outs

    def train(self, mode: bool = True) -> 'SCSEUNet':
        """Set the mode; the UNet re-applies its ``norm_eval``."""
        super().train(mode)
        self.unet.train(mode)
        return self

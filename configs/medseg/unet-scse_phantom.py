# unet_phantom.py with scSE (Roy et al., MICCAI 2018) after every encoder
# and decoder block: densekit.SCSEUNet wraps the same mmseg UNet (mmseg's
# UNet has no plugin hook, see densekit/models/layers/scse_unet.py).
#   python tools/train.py configs/medseg/unet-scse_phantom.py
_base_ = './unet_phantom.py'
model = dict(
    backbone=dict(
        _delete_=True,  # the UNet config moves under `unet`
        type='densekit.SCSEUNet',
        unet={{_base_.model.backbone}},
        reduction=2,
        mode='max'))

# TransUNet on the synthetic phantom-organ CT (the embedded default: no
# download), CPU-sized. Same recipe as the Synapse config (loss, SGD, poly,
# augmentation, per-volume Dice / HD95) at the phantom's native 128 x 128,
# batch 8 and 400 iterations as configs/medseg/unet_phantom.py, with a
# scaled-down model of the same shape (1.03M parameters instead of
# 105M; every TransUNet mechanism kept: WS-conv GN ResNet, ViT on the /16
# map with a learned 8 x 8 position embedding, cascaded upsampler with
# three skips and a 3x3 classifier):
#   ResNet: stem 16, base 16 (skips 16 / 64 / 128 ch), (1, 1, 2) blocks,
#           GN with 8 groups (32 groups need >= 32 channels);
#   ViT: 128 dims, 2 layers, 4 heads, MLP 512;
#   decoder: conv_more 128, blocks (64, 32, 16, 8).
#   python tools/data/make_synthetic.py phantom --out data/synthetic_phantom
#   python tools/train.py configs/medseg/transunet_phantom.py
_base_ = [
    '../_base_/models/transunet_r50-vit-b16.py',
    '../_base_/datasets/phantom.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_transunet_14k.py'
]
num_classes = 5  # background + 4 organs (PHANTOM_METAINFO)
img_size = 128
model = dict(
    data_preprocessor=dict(size=(img_size, img_size)),
    backbone=dict(
        img_size=img_size,
        stem_channels=16,
        base_channels=16,
        stage_blocks=(1, 1, 2),
        norm_cfg=dict(type='GN', num_groups=8, eps=1e-6),
        embed_dims=128,
        num_layers=2,
        num_heads=4),
    decode_head=dict(
        head_channels=128,
        decoder_channels=(64, 32, 16, 8),
        num_classes=num_classes))
max_iters = 400
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)

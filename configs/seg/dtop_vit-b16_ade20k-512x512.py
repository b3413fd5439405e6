# DToP on ViT-B/16 with ATM exit heads, ADE20K 512x512 (official DToP
# recipe, zbwxp/Dynamic-Token-Pruning config/prune/prune_segvit_ade20k.py):
# exits after blocks 5, 7, 11; tokens above 0.9 confidence leave at the
# early exits, the 5 most confident per class stay as context. Training
# uses every token and every exit loss; pruning acts at inference, off with
# --cfg-options model.pruning.enabled=False. ImageNet-21k ViT-B/16
# initialisation (mmseg's converted checkpoint), AdamW 2e-5 with 10x on
# the heads, 1500 warm-up iterations, poly decay, 160k iterations, 8 GPUs x
# 2 images. Paper (SegViT ViT-B, ADE20K): 49.6 mIoU at 109.9 GFLOPs
# unpruned, 49.8 at 86.8 pruned.
#   python tools/train.py configs/seg/dtop_vit-b16_ade20k-512x512.py
#   python tools/analysis/benchmark_dtop.py configs/seg/dtop_vit-b16_ade20k-512x512.py \
#       --checkpoint work_dirs/dtop_vit-b16_ade20k-512x512/iter_160000.pth
_base_ = [
    '../_base_/models/dtop_vit-b16.py', '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime_seg.py', '../_base_/schedules/schedule_160k.py'
]
checkpoint = ('https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/'
              'segmenter/vit_base_p16_384_20220308-96dfe169.pth')
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
base_lr = 0.00002
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr, betas=(0.9, 0.999),
                   weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.0)}),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=1500, end=160000,
         by_epoch=False)
]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
find_unused_parameters = True

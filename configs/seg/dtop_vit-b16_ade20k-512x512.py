# DToP on ViT-B/16 with ATM exit heads, ADE20K 512x512, stage 1 of the
# official recipe (zbwxp/Dynamic-Token-Pruning
# config/prune/BASE_segvit_ade20k.py): 160k iterations WITHOUT pruning --
# every block sees every token and every exit head is trained with its
# loss. Stage 2, dtop_vit-b16_ade20k-512x512_prune-ft40k.py, fine-tunes
# this run for 40k iterations with pruning in the training forward
# (prune_segvit_ade20k.py). Exits after blocks 5, 7, 11; at inference
# tokens above 0.9 confidence leave at the early exits, the 5 most
# confident per class stay as context (off with
# --cfg-options model.pruning.enabled=False). ImageNet-21k ViT-B/16
# initialisation (mmseg's converted checkpoint), AdamW 2e-5 with 10x on
# the heads, 1500 warm-up iterations, poly decay, 8 GPUs x 2 images. No
# gradient clipping: the official config sets it in the mmseg 0.x key
# `optimizer_config`, which mmengine ignores (add
# optim_wrapper.clip_grad=dict(max_norm=35, norm_type=2) to clip).
# Ignored pixels count as background in the mask losses, as officially
# (densekit.ATMLoss ignore_mode). Paper (SegViT ViT-B, ADE20K): 49.6 mIoU
# at 109.9 GFLOPs unpruned, 49.8 at 86.8 pruned.
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
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.0)}))
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

# DToP on ViT-B/16, ADE20K 512x512, stage 2 of the official recipe
# (zbwxp/Dynamic-Token-Pruning config/prune/prune_segvit_ade20k.py):
# fine-tune the stage-1 run (dtop_vit-b16_ade20k-512x512.py, 160k
# iterations without pruning) for 40k iterations WITH pruning in the
# training forward: at exits 5 and 7 tokens above 0.9 confidence leave the
# sequence (the 5 most confident per class stay), the later blocks and
# heads run on the rest, and every head's loss is computed on its canvas
# (the exited tokens keep the earlier heads' masks). Same optimiser as
# stage 1 (AdamW 2e-5, 10x on the heads, no clipping), 1500 warm-up
# iterations, poly decay to 40k.
#   python tools/train.py configs/seg/dtop_vit-b16_ade20k-512x512.py
#   python tools/train.py configs/seg/dtop_vit-b16_ade20k-512x512_prune-ft40k.py
_base_ = './dtop_vit-b16_ade20k-512x512.py'
# the stage-1 checkpoint (its ViT initialisation is already in it)
load_from = 'work_dirs/dtop_vit-b16_ade20k-512x512/iter_160000.pth'
max_iters = 40000
model = dict(
    backbone=dict(init_cfg=None),
    pruning=dict(enabled=True, train=True, threshold=0.9, keep_topk=5))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=1500, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))

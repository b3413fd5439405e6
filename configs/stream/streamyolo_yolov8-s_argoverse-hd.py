# StreamYOLO (DFP + trend-aware loss) with YOLOv8-s on Argoverse-HD at
# 600x960, following the official S recipe (yancie-yjr/StreamYOLO
# cfgs/s_s50_onex_dfp_tal_flip.py): frame pairs (t-1, t) -> t+1, flip only,
# SGD (momentum 0.9, nesterov, weight decay 5e-4), lr 0.001 per 64 images,
# 1 warm-up epoch then cosine to 5% over 15 epochs, fine-tuned from a COCO
# detector. 8 GPUs x 4 frames per GPU (lr scaled to the batch of 32).
#   python tools/train.py configs/stream/streamyolo_yolov8-s_argoverse-hd.py
_base_ = [
    '../_base_/models/streamyolo_yolov8.py',
    '../_base_/datasets/argoverse_hd_stream.py',
    '../_base_/default_runtime.py',
]

deepen_factor = 0.33
widen_factor = 0.5
model = dict(
    backbone=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        last_stage_out_channels=1024),
    neck=dict(deepen_factor=deepen_factor),
    bbox_head=dict(num_classes=8))
# a COCO-trained YOLOv8-s checkpoint (e.g. from configs/det/yolov8_s_coco.py
# or converted with tools/model_converters); its head's class layer does not
# match the 8 classes and is re-initialised
load_from = None

# ------------------------------------------------------------- schedule
num_gpus, batch_per_gpu = 8, 4
max_epochs = 15
warmup_epochs = 1
base_lr = 0.001 / 64 * num_gpus * batch_per_gpu
train_dataloader = dict(batch_size=batch_per_gpu)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=base_lr, momentum=0.9, nesterov=True,
                   weight_decay=5e-4),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, by_epoch=True,
         begin=warmup_epochs, end=max_epochs,
         T_max=max_epochs - warmup_epochs, convert_to_iter_based=True),
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=3, save_best='auto'))
auto_scale_lr = dict(enable=False, base_batch_size=num_gpus * batch_per_gpu)

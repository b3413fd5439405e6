# Fine-tuning recipe: YOLOv8-n from a converted (or any densekit) checkpoint
# on another set of classes -- here the 4 synthetic shapes of
# yolov8_n_shapes.py, whose data, pipelines and optimiser it keeps.
#
# 1. convert released weights against the config of *their* classes, e.g.
#    ultralytics' 80-class yolov8n.pt (export a state dict where ultralytics
#    is installed, then convert here):
#      python -c "import torch; from ultralytics import YOLO; \
#          torch.save(YOLO('yolov8n.pt').model.float().state_dict(), \
#          'yolov8n_sd.pth')"
#      python tools/model_converters/convert.py yolov8_ultralytics \
#          yolov8n_sd.pth checkpoints/yolov8n_densekit.pth \
#          --config configs/det/yolov8_n_coco.py
#    (mmyolo: `convert.py yolov8_mmyolo ...`; a densekit checkpoint needs no
#    conversion.)
# 2. fine-tune:
#      python tools/train.py configs/det/yolov8_n_finetune_example.py
#    or from another checkpoint:
#      ... --cfg-options load_from=work_dirs/<run>/epoch_3.pth
#
# load_from loads every weight; YOLOv8Head re-initialises the layers whose
# shape follows the class count and logs them in one WARNING line:
#   YOLOv8Head (bbox_head): the checkpoint predicts 80 classes, this head 4:
#   re-initialised the class-dependent layers bbox_head.cls_towers.0.0, ...
# (n scale: the class towers are max(64, min(classes, 100)) wide, so from 80
# classes the whole class branch restarts; from 2 classes only the last conv
# of each level.) Backbone, neck and the box branch start from the checkpoint.
# README "Bring your own weights" has the figures:
# tools/analysis/finetune_benchmark.py compares this config with and without
# load_from.
_base_ = './yolov8_n_shapes.py'

load_from = 'checkpoints/yolov8n_densekit.pth'

# a short schedule: 2 epochs (250 iterations at batch 16), the last one
# without mosaic; lists are replaced wholesale, so they are restated here
max_epochs = 2
close_mosaic_epochs = 1
base_lr = 0.002  # yolov8_n_shapes.py's learning rate (the optimiser keeps it)
warmup_iters = 50
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, by_epoch=True,
         begin=1, end=max_epochs, T_max=max_epochs - 1,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0001,
        update_buffers=True,
        strict_load=False,
        priority=49),
    dict(type='densekit.CloseMosaicHook', num_last_epochs=close_mosaic_epochs),
]

# EfficientAD-S on one MVTec AD category (published image AUROC 98.8 mean
# over the 15 categories), 70k iterations at batch size 1.
#   MVTEC_CATEGORY=bottle python tools/train.py configs/anomaly/efficientad_s_mvtec.py
_base_ = [
    '../_base_/models/efficientad_s.py', '../_base_/datasets/mvtec_ad.py',
    '../_base_/schedules/efficientad_70k.py',
    '../_base_/default_runtime_anomaly.py'
]

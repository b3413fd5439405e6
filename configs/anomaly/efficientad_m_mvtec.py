# EfficientAD-M on one MVTec AD category (published image AUROC 99.1 mean).
#   MVTEC_CATEGORY=bottle python tools/train.py configs/anomaly/efficientad_m_mvtec.py
_base_ = [
    '../_base_/models/efficientad_m.py', '../_base_/datasets/mvtec_ad.py',
    '../_base_/schedules/efficientad_70k.py',
    '../_base_/default_runtime_anomaly.py'
]

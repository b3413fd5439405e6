# CBNetV2 Mamba YOLO-T: Dual-MambaYOLO-T (cb_del_stages=1: the second
# backbone reuses the stem and the stride-4 stage), one shared Mamba YOLO
# PAFPN and YOLOv8 head, assistant supervision (weight 0.5); data, schedule
# and hooks of mamba_yolo_t_coco.py (official Mamba YOLO recipe). Not a
# published combination: no reference accuracy. 9.02M params (80 classes)
# vs 6.13M for the plain T.
#   python tools/train.py configs/det/mamba_yolo_cbv2_t_coco.py
_base_ = './mamba_yolo_t_coco.py'
model = dict(
    type='densekit.CBYOLODetector',
    backbone=dict(
        _delete_=True,  # MambaYOLO's arguments move into backbone.backbone
        type='densekit.CBNet',
        backbone={{_base_.model.backbone}},
        num_backbones=2,
        cb_del_stages=1),
    neck=dict(
        _delete_=True,  # the PAFPN's arguments move into neck.neck
        type='densekit.CBFPN',
        neck={{_base_.model.neck}}))

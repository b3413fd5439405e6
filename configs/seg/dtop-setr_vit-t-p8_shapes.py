# dtop_vit-t-p8_shapes.py with SETR-style per-token classifier exit heads
# (densekit.TokenClassifierHead) trained by class-weighted cross-entropy
# (the weights of upernet_yolov8-n_shapes.py): DToP applied to SETR.
_base_ = './dtop_vit-t-p8_shapes.py'
class_weight = [0.2, 1.0, 1.2, 1.4, 1.4]
exit_head = dict(
    type='densekit.TokenClassifierHead', in_channels=96, channels=96,
    num_classes=5, dropout_ratio=0.0,
    loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                     loss_weight=1.0, class_weight=class_weight))
model = dict(
    data_preprocessor=dict(seg_pad_val=0),
    auxiliary_head=[
        dict(exit_head, in_index=0),
        dict(exit_head, in_index=1),
    ],
    decode_head=dict(_delete_=True, in_index=2, **exit_head))

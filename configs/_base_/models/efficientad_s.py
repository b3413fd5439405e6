# EfficientAD-S (Batzner et al., WACV 2024): PDN-S teacher (frozen) and
# student (2 x 384 channels), autoencoder; 256x256 inputs.
# The teacher is distilled from a pretrained WideResNet-101 (Sec. 3.1):
#   python tools/anomaly/distill_teacher.py ... --out checkpoints/efficientad/teacher_small.pth
# or the published teacher_small.pth (nelson1425/EfficientAD, models/),
# loaded as it is (converted on load).
model = dict(
    type='densekit.EfficientAD',
    model_size='S',
    out_channels=384,
    teacher_checkpoint='checkpoints/efficientad/teacher_small.pth',
    hard_quantile=0.999,
    map_quantiles=(0.9, 0.995),
    data_preprocessor=dict(type='densekit.AnomalyDataPreprocessor'))

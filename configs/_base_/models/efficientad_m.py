# EfficientAD-M: PDN-M teacher and student (Table 7), same autoencoder.
_base_ = './efficientad_s.py'
model = dict(
    model_size='M',
    teacher_checkpoint='checkpoints/efficientad/teacher_medium.pth')

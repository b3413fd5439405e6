# DToP on the synthetic shapes set with a plain ViT that a CPU can train from
# scratch in minutes: dtop-setr_vit-t-p8_shapes.py with the patchify stem
# replaced by three stride-2 convolutions (densekit.ConvStemViT, "ViT_C" of
# Xiao et al. 2021; the 6 transformer blocks, exits and heads unchanged).
# This is the model of tools/analysis/benchmark_dtop.py's README figures.
#   python tools/analysis/benchmark_dtop.py configs/seg/dtop-setr_convvit-t_shapes.py
_base_ = './dtop-setr_vit-t-p8_shapes.py'
model = dict(
    backbone=dict(type='densekit.ConvStemViT', stem_channels=(24, 48, 96)))

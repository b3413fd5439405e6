# StreamYOLO (Yang et al., CVPR 2022; yancie-yjr/StreamYOLO) on densekit's
# YOLOv8 pieces: the shared YOLOv8 backbone + PAFPN run on every frame of
# the (B, T, 3, H, W) window, Dual-Flow Perception fuses the previous and
# current frame's PAFPN outputs, and the YOLOv8 head with the Trend-Aware
# Loss (official gamma 1.0, ignore_thr 0.5, ignore_value 1.5 are the
# TrendAwareYOLOv8Head defaults) predicts frame t+1. Channels of the fusion
# neck and head come from the backbone's feature contract. l scale by
# default, as yolov8.py; the scale configs override the factors.
_base_ = './yolov8.py'
model = dict(
    type='densekit.StreamYOLODetector',
    # normalises every frame and returns (B, T, 3, H, W)
    data_preprocessor=dict(type='densekit.StreamDataPreprocessor'),
    temporal_fusion=dict(type='densekit.DualFlowPerception'),
    num_past_frames=1,
    bbox_head=dict(type='densekit.TrendAwareYOLOv8Head'))

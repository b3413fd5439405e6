# The non-forecasting baseline of the streaming benchmark: a still YOLOv8-n
# (no past frames, no fusion, plain YOLOv8 loss) trained on the current
# frame (forecast_offset 0), evaluated in streaming: its detection of frame
# t is scored against frame t+1 (val forecast_offset 1), which is what a
# real-time detector's output is compared with one frame later. Also the
# distillation teacher of damo-streamnet_yolov8-n_moving-shapes.py.
_base_ = './streamyolo_yolov8-n_moving-shapes.py'

model = dict(
    temporal_fusion=None,
    num_past_frames=0,
    bbox_head=dict(type='densekit.YOLOv8Head'))

train_dataloader = dict(
    dataset=dict(num_past_frames=0, forecast_offset=0))
val_dataloader = dict(dataset=dict(num_past_frames=0, forecast_offset=1))
test_dataloader = val_dataloader

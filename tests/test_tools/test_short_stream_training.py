"""A shortened StreamYOLO training through tools/train.py on a tiny
moving-shapes set (Argoverse-HD layout): the loss (YOLOv8 terms with the
trend-aware weights) decreases, and the Runner's validation reports
streaming AP through densekit.StreamingAPMetric next to mmdet's CocoMetric
(the metric wired end to end: dataset metainfo -> model -> replay)."""
import pytest

from tests.conftest import ROOT, train_and_read_scalars

EPOCHS = 8
IMG = 128

CONFIG = '''
_base_ = '{root}/configs/stream/streamyolo_yolov8-n_moving-shapes.py'
data_root = '{data_root}/'
img_scale = ({img}, {img})
train_pipeline = [
    dict(type='densekit.LoadStreamFrames'),
    dict(type='densekit.LoadStreamAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='densekit.StreamPad', size=img_scale, pad_val=dict(img=114)),
    dict(type='densekit.StreamFilterAnnotations', min_gt_bbox_wh=(1, 1),
         keep_empty=False),
    dict(type='densekit.PackStreamInputs'),
]
test_pipeline = [
    dict(type='densekit.LoadStreamFrames'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='densekit.StreamPad', size=img_scale, pad_val=dict(img=114)),
    dict(type='densekit.LoadStreamAnnotations', with_bbox=True),
    dict(type='densekit.PackStreamInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    batch_sampler=None,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='CocoMetric', ann_file=data_root + 'annotations/val.json',
         metric='bbox'),
    dict(type='densekit.StreamingAPMetric',
         ann_file=data_root + 'annotations/val.json', runtime=0.02),
]
test_evaluator = val_evaluator
max_epochs = {epochs}
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(type='CosineAnnealingLR', eta_min=1e-4, by_epoch=True, begin=0,
         end=max_epochs, T_max=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
custom_hooks = []
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=max_epochs, save_best=None),
                     visualization=dict(draw=False))
randomness = dict(seed=0)
'''


@pytest.fixture(scope='module')
def tiny_moving_shapes(tmp_path_factory):
    from densekit.datasets.synthetic import generate_moving_shapes_argoverse
    out = tmp_path_factory.mktemp('moving_shapes')
    generate_moving_shapes_argoverse(str(out), num_train_seqs=2,
                                     num_val_seqs=1, frames_per_seq=10,
                                     img_size=IMG, seed=3)
    return str(out)


@pytest.mark.slow  # subprocess run: make test-slow
def test_streamyolo_loss_decreases_and_reports_sap(tiny_moving_shapes,
                                                    tmp_path):
    config = tmp_path / 'tiny_streamyolo.py'
    config.write_text(CONFIG.format(root=ROOT, data_root=tiny_moving_shapes,
                                    img=IMG, epochs=EPOCHS))
    rows = train_and_read_scalars(config, tmp_path / 'work')
    train = [r for r in rows if 'loss' in r]
    # 2 sequences x 9 targets (frames 1-9; frame 0 has no earlier frame to
    # forecast it from) in batches of 4: 5 iterations per epoch
    assert len(train) == EPOCHS * 5
    for row in train:
        assert {'loss_cls', 'loss_bbox', 'loss_dfl'} <= set(row), sorted(row)
    losses = [r['loss'] for r in train]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    print(f'loss {first:.3f} -> {last:.3f}')
    assert last < 0.8 * first, (first, last)
    val, = [r for r in rows if 'stream/sAP' in r]
    for key in ('stream/sAP50', 'stream/AP', 'stream/dropped_frames',
                'coco/bbox_mAP'):
        assert key in val, sorted(val)
    assert 0.0 <= val['stream/sAP'] <= 1.0

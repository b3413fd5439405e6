"""A shortened segmentation learning check: UPerNet on a tiny synthetic set
through tools/train.py and tools/test.py (the README figure is the slow
learning benchmark)."""
import glob
import json
import re

import pytest

from tests.conftest import run_tool

TINY_SEG_CONFIG = '''
_base_ = '{root}/configs/seg/upernet_yolov8-n_shapes.py'
data_root = '{data_root}'
crop_size = (64, 64)
model = dict(data_preprocessor=dict(size=crop_size))
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='densekit.CheckSegLabels', num_classes=5),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=pipeline))
test_dataloader = val_dataloader
max_iters = 60
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=max_iters),
                     visualization=dict(draw=False))
'''


@pytest.fixture(scope='module')
def tiny_seg_set(tmp_path_factory):
    from densekit.datasets.synthetic import generate_shapes_ade
    out = tmp_path_factory.mktemp('shapes_seg')
    generate_shapes_ade(str(out), num_train=16, num_val=8, img_size=64,
                        seed=1)
    return out


@pytest.mark.slow  # subprocess run: make test-slow
def test_upernet_loss_decreases_and_miou_is_reported(tiny_seg_set, tmp_path):
    from tests.conftest import ROOT
    config = tmp_path / 'tiny_upernet.py'
    config.write_text(TINY_SEG_CONFIG.format(root=ROOT,
                                             data_root=tiny_seg_set))
    work = tmp_path / 'work'
    res = run_tool(['tools/train.py', str(config), '--work-dir', str(work),
                    '--cfg-options', 'optim_wrapper.optimizer.lr=0.01'])
    assert res.returncode == 0, res.stdout[-3000:]
    scalars, = glob.glob(f'{work}/*/vis_data/scalars.json')
    with open(scalars) as f:
        losses = [json.loads(line)['loss'] for line in f
                  if '"loss"' in line]
    assert len(losses) == 60
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert last < 0.7 * first, (first, last)

    checkpoint = (work / 'last_checkpoint').read_text().strip()
    res = run_tool(['tools/test.py', str(config), checkpoint, '--work-dir',
                    str(work), '--out', str(tmp_path / 'pred')])
    assert res.returncode == 0, res.stdout[-3000:]
    miou = float(re.findall(r'\bmIoU: ([0-9.]+)', res.stdout)[-1])
    # at least background (most pixels) is segmented
    assert miou > 10, res.stdout[-2000:]
    assert len(glob.glob(str(tmp_path / 'pred' / '*.png'))) == 8

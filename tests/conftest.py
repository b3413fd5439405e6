"""Shared fixtures: a tiny synthetic shapes set and a tiny training config."""
import contextlib
import glob
import json
import logging
import os
import os.path as osp
import subprocess
import sys

import pytest

# Triton kernels run on CPU tensors only in its interpreter, which must be
# on before triton is first imported (tests/test_ops/
# test_selective_scan_triton.py); with a GPU they compile instead
if 'TRITON_INTERPRET' not in os.environ:
    import torch
    if not torch.cuda.is_available():
        os.environ['TRITON_INTERPRET'] = '1'

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@contextlib.contextmanager
def captured_warnings():
    """Collect the records print_log(logger='current') sends at WARNING or
    above (``r.getMessage()`` for the text)."""
    from mmengine.logging import MMLogger
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
TINY_IMG_SIZE = 128

# A deterministic, fast variant of configs/det/yolov8_n_shapes.py: small
# images, no random augmentation (so an interrupted + resumed run can be
# compared with an uninterrupted one), no mosaic wrapper.
TINY_CONFIG = '''
_base_ = '{root}/configs/det/{base}'
data_root = '{data_root}/'
img_scale = ({img_size}, {img_size})
pipeline = [
    dict(type='densekit.LoadImageFromFileSafe'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='Pad', size=img_scale, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]
train_dataloader = dict(
    _delete_=True,  # drop the base's MultiImageMixDataset (mosaic) wrapper
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='CocoDataset', data_root=data_root,
        metainfo={{{{_base_.metainfo}}}},
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'), filter_cfg=dict(filter_empty_gt=False),
        pipeline=pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
max_epochs = {max_epochs}
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4),
    dict(type='CosineAnnealingLR', eta_min=1e-4, by_epoch=True, begin=0,
         end=max_epochs, T_max=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
custom_hooks = [dict(type='EMAHook', ema_type='ExpMomentumEMA',
                     momentum=0.0001, update_buffers=True, priority=49)]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=5,
                                     save_best=None),
                     visualization=dict(draw=False))
randomness = dict(seed=0, deterministic=False)
env_cfg = dict(mp_cfg=dict(mp_start_method='fork'))
'''


@pytest.fixture(scope='session')
def tiny_shapes(tmp_path_factory):
    """16 train / 8 val images (128x128) in the synthetic COCO layout."""
    from densekit.datasets.synthetic import generate_shapes_coco
    out = tmp_path_factory.mktemp('shapes')
    generate_shapes_coco(str(out), num_train=16, num_val=8,
                         img_size=TINY_IMG_SIZE,
                         seed=1)
    return out


@pytest.fixture
def tiny_config(tiny_shapes, tmp_path):
    """Factory writing a tiny training config; returns its path."""

    def make(max_epochs=2, name='tiny_yolov8.py',
             base='yolov8_n_shapes.py'):
        path = tmp_path / name
        path.write_text(TINY_CONFIG.format(
            root=ROOT, base=base, data_root=tiny_shapes,
            max_epochs=max_epochs,
            img_size=TINY_IMG_SIZE))
        return str(path)

    return make


def run_tool(args, timeout=600, env=None):
    """Run a repo script with this interpreter from the repo root."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)


def train_and_read_scalars(config, work_dir, *train_args, timeout=600):
    """Train ``config`` through tools/train.py into ``work_dir`` (asserting
    it succeeds); returns the run's logged scalar rows, training and
    validation, from ``vis_data/scalars.json``."""
    res = run_tool(['tools/train.py', str(config), '--work-dir',
                    str(work_dir), *train_args], timeout=timeout)
    assert res.returncode == 0, res.stdout[-3000:]
    scalars, = glob.glob(f'{work_dir}/*/vis_data/scalars.json')
    with open(scalars) as f:
        return [json.loads(line) for line in f]

import os
import os.path as osp
import subprocess
import sys

import cv2
import pytest

from tests.conftest import ROOT

# The shapes config with the data root swapped for the tiny test set
# (64x64 images); the pipelines, with mosaic, are the config's own.
CONFIG = '''
_base_ = '{root}/configs/det/yolov8_n_shapes.py'
data_root = '{data_root}/'
train_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
val_dataloader = dict(dataset=dict(data_root=data_root))
'''


def _run(*args):
    # one OpenMP thread: two slow down ~50x when another process holds a core
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run(
        [sys.executable, 'tools/analysis/browse_dataset.py', *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, timeout=300)


@pytest.fixture
def config(tiny_shapes, tmp_path):
    path = tmp_path / 'browse_cfg.py'
    path.write_text(CONFIG.format(root=ROOT, data_root=tiny_shapes))
    return str(path)


def test_train_phase_saves_augmented_images(config, tmp_path):
    out = tmp_path / 'train'
    proc = _run(config, '--output-dir', str(out), '--not-show',
                '--max-images', '3')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = sorted(os.listdir(out))
    assert len(files) == 3 and files[0].startswith('000000_')
    # mosaic + affine + resize/pad give the config's img_scale, not 64x64
    img = cv2.imread(str(out / files[0]))
    assert img.shape == (256, 256, 3)


def test_val_phase_draws_every_gt_box(config, tiny_shapes, tmp_path):
    out = tmp_path / 'val'
    proc = _run(config, '--output-dir', str(out), '--not-show', '--phase',
                'val')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = sorted(os.listdir(out))
    num_val = len(os.listdir(osp.join(tiny_shapes, 'val')))
    assert len(files) == num_val
    # boxes are drawn on the resized (256x256) image: it differs from a
    # plain resize of the source image
    src = cv2.imread(osp.join(tiny_shapes, 'val', files[0].split('_', 1)[1]))
    drawn = cv2.imread(str(out / files[0]))
    plain = cv2.resize(src, (256, 256), interpolation=cv2.INTER_LINEAR)
    assert drawn.shape == plain.shape
    assert (cv2.absdiff(drawn, plain).max(axis=2) > 60).sum() > 100


def test_nothing_to_do_is_an_error(config):
    proc = _run(config, '--not-show')
    assert proc.returncode == 2
    assert '--output-dir' in proc.stderr

"""A shortened learning check: train briefly, evaluate with tools/test.py."""
import glob
import json
import re

import pytest

from tests.conftest import run_tool


def _losses(work_dir):
    scalars, = glob.glob(f'{work_dir}/*/vis_data/scalars.json')
    with open(scalars) as f:
        rows = [json.loads(line) for line in f]
    return [r['loss'] for r in rows if 'loss' in r]


def test_loss_decreases_and_map_is_positive(tiny_config, tmp_path):
    _train_briefly_and_check(tiny_config(max_epochs=30), tmp_path,
                             check_map=True)


@pytest.mark.slow  # subprocess run: make test-slow
def test_mamba_yolo_loss_decreases(tiny_config, tmp_path):
    config = tiny_config(max_epochs=30, base='mamba_yolo_t_shapes.py')
    _train_briefly_and_check(config, tmp_path, check_map=False)


def _train_briefly_and_check(config, tmp_path, check_map):
    work = tmp_path / 'work'
    res = run_tool(['tools/train.py', config, '--work-dir', str(work),
                    '--cfg-options', 'optim_wrapper.optimizer.lr=0.01'])
    assert res.returncode == 0, res.stdout[-3000:]
    losses = _losses(work)
    assert len(losses) == 120  # 30 epochs x 4 iterations, logged each
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert last < 0.7 * first, (first, last)
    if not check_map:
        return

    checkpoint = (work / 'last_checkpoint').read_text().strip()
    res = run_tool(['tools/test.py', config, checkpoint, '--work-dir',
                    str(work)])
    assert res.returncode == 0, res.stdout[-3000:]
    map50 = float(re.search(r'coco/bbox_mAP_50: ([0-9.]+)', res.stdout)[1])
    assert map50 > 0, res.stdout[-2000:]

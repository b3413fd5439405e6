"""Corrupt, truncated and mismatching checkpoints are named in one line."""
import os

import pytest
import torch
from torch import nn

from densekit.utils.checkpoint_check import (CheckpointError,
                                             check_checkpoint_file,
                                             load_weights)
from densekit.utils.compat import atomic_save_checkpoint


def _run_dir(tmp_path):
    for epoch in (1, 2, 3):
        torch.save(dict(state_dict={'w': torch.ones(64)}),
                   tmp_path / f'epoch_{epoch}.pth')
    return tmp_path


def test_truncated_checkpoint_names_the_previous_one(tmp_path):
    run = _run_dir(tmp_path)
    last = run / 'epoch_3.pth'
    data = last.read_bytes()
    last.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        check_checkpoint_file(str(last), 'resume')
    msg = str(err.value)
    assert '\n' not in msg
    assert msg.startswith(f'checkpoint {last} is corrupt or truncated')
    assert f'--resume {run / "epoch_2.pth"}' in msg
    empty = run / 'epoch_4.pth'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointError, match='the file is empty'):
        check_checkpoint_file(str(empty))
    check_checkpoint_file(str(run / 'epoch_2.pth'))  # intact: no error


def test_strict_mismatch_is_one_line(tmp_path):
    path = tmp_path / 'other.pth'
    torch.save(dict(state_dict=nn.Linear(3, 5).state_dict(),
                    meta=dict(experiment_name='yolov8_n_shapes_20250101_'
                              '000000')), path)
    with pytest.raises(CheckpointError) as err:
        load_weights(nn.Linear(3, 4), str(path), config='my_config.py')
    msg = str(err.value)
    assert '\n' not in msg
    assert 'does not fit the model of my_config.py' in msg
    assert '2 of another shape (first: weight (5, 3) in the checkpoint, ' \
        '(4, 3) in the model)' in msg
    assert 'saved from configs/det/yolov8_n_shapes.py' in msg
    assert '--no-strict' in msg
    model = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 1))
    load_weights(model, {'state_dict': {
        '0.' + k: v for k, v in torch.load(path)['state_dict'].items()}},
        strict=False)  # the matching half loads


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / 'epoch_1.pth'
    atomic_save_checkpoint({'w': torch.ones(2)}, str(target))
    assert torch.load(target)['w'].sum() == 2
    assert os.listdir(tmp_path) == ['epoch_1.pth']

    def dies(obj, f):
        f.write(b'half a checkpoint')
        raise KeyboardInterrupt  # killed while writing

    monkeypatch.setattr(torch, 'save', dies)
    with pytest.raises(KeyboardInterrupt):
        atomic_save_checkpoint({'w': torch.zeros(2)}, str(target))
    assert os.listdir(tmp_path) == ['epoch_1.pth']
    assert torch.load(target)['w'].sum() == 2  # the old one is intact


def test_batchnorm_settle_iters_follows_the_slowest_running_average():
    from torch import nn

    from densekit.utils.checkpoint_check import (batchnorm_settle_iters,
                                                 warn_if_barely_trained)
    assert batchnorm_settle_iters(nn.Conv2d(1, 1, 1)) == 0
    assert batchnorm_settle_iters(nn.BatchNorm2d(2)) == 100  # momentum 0.1
    model = nn.Sequential(nn.BatchNorm2d(2, momentum=0.1),
                          nn.BatchNorm1d(2, momentum=0.03))
    assert batchnorm_settle_iters(model) == 334
    assert batchnorm_settle_iters(nn.BatchNorm2d(2, momentum=None)) == 0
    assert batchnorm_settle_iters(
        nn.BatchNorm2d(2, track_running_stats=False)) == 0
    young = dict(meta=dict(iter=99))
    assert warn_if_barely_trained(nn.BatchNorm2d(2), young)
    assert not warn_if_barely_trained(nn.BatchNorm2d(2),
                                      dict(meta=dict(iter=100)))
    assert not warn_if_barely_trained(nn.Conv2d(1, 1, 1), young)
    # no iteration count (a converted or hand-made checkpoint): no word
    assert not warn_if_barely_trained(nn.BatchNorm2d(2), dict(meta={}))
    assert not warn_if_barely_trained(nn.BatchNorm2d(2), {'w': 1})

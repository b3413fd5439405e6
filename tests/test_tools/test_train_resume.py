"""Kill a training run after a checkpoint; --resume must lose nothing."""
import os.path as osp
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import ROOT


def _train(config, work_dir, *extra):
    return subprocess.Popen(
        [sys.executable, 'tools/train.py', config, '--work-dir',
         str(work_dir), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _state(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def test_killed_run_resumes_at_next_iteration_with_same_state(
        tiny_config, tmp_path):
    config = tiny_config(max_epochs=3)

    ref = _train(config, tmp_path / 'ref')
    ref_out, _ = ref.communicate(timeout=600)
    assert ref.returncode == 0, ref_out[-3000:]

    # interrupted run: SIGKILL as soon as the first checkpoint is complete
    work = tmp_path / 'killed'
    proc = _train(config, work)
    last = work / 'last_checkpoint'
    deadline = time.time() + 600
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, 'run ended before the kill'
    assert (work / 'epoch_1.pth').exists()
    assert not (work / 'epoch_3.pth').exists()

    resumed = _train(config, work, '--resume')
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:]
    assert 'resumed epoch: 1, iter: 4' in out, out[-3000:]
    # training continues at the next iteration (epoch 2, iteration 5)
    assert 'Epoch(train) [2][1/4]' in out, out[-3000:]

    ref_ckpt = _state(tmp_path / 'ref' / 'epoch_3.pth')
    got_ckpt = _state(work / 'epoch_3.pth')
    assert got_ckpt['meta']['iter'] == ref_ckpt['meta']['iter'] == 12
    for key, value in ref_ckpt['state_dict'].items():
        torch.testing.assert_close(got_ckpt['state_dict'][key], value,
                                   rtol=1e-4, atol=1e-5, msg=key)
    ref_opt = ref_ckpt['optimizer']['state']
    got_opt = got_ckpt['optimizer']['state']
    assert ref_opt.keys() == got_opt.keys()
    for idx in ref_opt:
        for name, value in ref_opt[idx].items():
            torch.testing.assert_close(got_opt[idx][name], value,
                                       rtol=1e-4, atol=1e-5)
    assert got_ckpt['param_schedulers'] == ref_ckpt['param_schedulers']


def test_resume_loads_with_weights_only_default(tiny_config, tmp_path):
    """torch >= 2.6 defaults to weights_only=True: densekit's loader copes."""
    from mmengine.runner.checkpoint import _load_checkpoint

    import densekit  # noqa: F401  (registers the safe loader)
    config = tiny_config(max_epochs=1)
    proc = _train(config, tmp_path / 'run')
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    path = str(tmp_path / 'run' / 'epoch_1.pth')
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location='cpu')  # what mmengine 0.10.7 calls
    ckpt = _load_checkpoint(path, map_location='cpu')
    assert 'message_hub' in ckpt and 'optimizer' in ckpt
    assert osp.exists(tmp_path / 'run' / 'last_checkpoint')

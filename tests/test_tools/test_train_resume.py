"""Kill a training run after a checkpoint; --resume must lose nothing."""
import glob
import json
import os.path as osp
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import ROOT

# random augmentation in two persistent workers, as the shapes configs
# train: the resumed run must draw the same random numbers (ExactResumeHook)
AUGMENTED = """
train_dataloader.update(num_workers=2, persistent_workers=True)
train_dataloader['dataset']['pipeline'] = [
    dict(type='densekit.LoadImageFromFileSafe'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomAffine', max_rotate_degree=0.0, max_shear_degree=0.0,
         max_translate_ratio=0.1, scaling_ratio_range=(0.5, 1.5),
         border_val=(114, 114, 114)),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    *pipeline[2:],
]
"""


def _train(config, work_dir, *extra):
    return subprocess.Popen(
        [sys.executable, 'tools/train.py', config, '--work-dir',
         str(work_dir), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _state(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def _train_losses(work_dir):
    """{iteration: logged losses} of every run in ``work_dir``."""
    rows = {}
    for path in sorted(glob.glob(f'{work_dir}/*/vis_data/scalars.json')):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if 'loss' in row:
                    rows[row['iter']] = {k: v for k, v in row.items()
                                         if k.startswith('loss')}
    return rows


@pytest.mark.slow  # subprocess training run: make test-slow
def test_killed_run_resumes_bit_exactly(tiny_config, tmp_path):
    config = tiny_config(max_epochs=3)
    with open(config, 'a') as f:
        f.write(AUGMENTED)

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

    # the next losses and the final weights are bit-identical
    ref_losses, got_losses = _train_losses(tmp_path / 'ref'), \
        _train_losses(work)
    assert sorted(got_losses) == sorted(ref_losses) == list(range(1, 13))
    for it in range(5, 13):
        assert got_losses[it] == ref_losses[it], (it, got_losses[it],
                                                  ref_losses[it])
    ref_ckpt = _state(tmp_path / 'ref' / 'epoch_3.pth')
    got_ckpt = _state(work / 'epoch_3.pth')
    assert got_ckpt['meta']['iter'] == ref_ckpt['meta']['iter'] == 12
    for name in ('state_dict', 'ema_state_dict'):
        assert ref_ckpt[name].keys() == got_ckpt[name].keys()
        for key, value in ref_ckpt[name].items():
            assert torch.equal(got_ckpt[name][key], value), (name, key)
    ref_opt = ref_ckpt['optimizer']['state']
    got_opt = got_ckpt['optimizer']['state']
    assert ref_opt.keys() == got_opt.keys()
    for idx in ref_opt:
        for name, value in ref_opt[idx].items():
            assert torch.equal(got_opt[idx][name], value)
    assert got_ckpt['param_schedulers'] == ref_ckpt['param_schedulers']


@pytest.mark.slow  # subprocess training run: make test-slow
def test_resume_without_checkpoint_says_so(tiny_config, tmp_path):
    work = tmp_path / 'fresh'
    proc = _train(tiny_config(max_epochs=1), work, '--resume')
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert f'--resume: no checkpoint to resume from in {work}' in out
    assert 'training starts from scratch' in out


@pytest.mark.slow  # subprocess run: make test-slow
def test_truncated_checkpoint_names_the_previous_one(tiny_config, tiny_shapes,
                                                    tmp_path):
    work = tmp_path / 'run'
    proc = _train(tiny_config(max_epochs=2), work)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    last = work / 'epoch_2.pth'
    data = last.read_bytes()
    last.write_bytes(data[:len(data) // 2])  # a disk filled while copying
    assert (work / 'last_checkpoint').read_text().strip() == str(last)

    proc = _train(tiny_config(max_epochs=2), work, '--resume')
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1
    assert 'Traceback' not in out
    line, = [ln for ln in out.splitlines() if 'corrupt or truncated' in ln]
    assert str(last) in line
    assert f'--resume {work / "epoch_1.pth"}' in line
    # the same file given to the demo and to tools/test.py
    for args in (['demo/image_demo.py', str(tiny_shapes / 'val'), '--config',
                  tiny_config(max_epochs=2), '--weights', str(last),
                  '--out-dir', str(tmp_path / 'demo')],
                 ['tools/test.py', tiny_config(max_epochs=2), str(last),
                  '--work-dir', str(tmp_path / 'test')]):
        res = subprocess.run([sys.executable, *args], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 1, res.stderr[-2000:]
        assert f'checkpoint {last} is corrupt or truncated' in res.stderr
        assert 'Traceback' not in res.stderr


@pytest.mark.slow  # subprocess training run: make test-slow
def test_resume_loads_with_weights_only_default(tiny_config, tmp_path):
    """torch >= 2.6 defaults to weights_only=True: densekit's loader copes."""
    from mmengine.runner.checkpoint import _load_checkpoint

    from densekit.utils.compat import install_mmengine_compat
    install_mmengine_compat()  # what densekit's tools do
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

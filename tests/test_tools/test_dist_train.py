"""tools/dist_train.sh: PyTorch DDP through torchrun, 2 CPU processes, gloo."""
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow  # subprocess run: make test-slow
@pytest.mark.timeout(600)
def test_two_process_gloo_training(tiny_config, tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, PORT='29533',
               OMP_NUM_THREADS='1')
    res = subprocess.run(
        ['bash', 'tools/dist_train.sh', tiny_config(max_epochs=1), '2',
         '--work-dir', str(tmp_path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-4000:]
    assert 'Distributed launcher: pytorch' in res.stdout
    assert 'Distributed training: True' in res.stdout
    assert "dist_cfg: {'backend': 'gloo'}" in res.stdout
    # 16 images, batch 4 per process: 2 iterations per epoch with 2
    # processes (a single process would take 4)
    assert 'Epoch(train) [1][2/2]' in res.stdout, res.stdout[-4000:]
    assert (tmp_path / 'epoch_1.pth').exists()

import pickle
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from densekit.utils.compat import (check_amp_available,
                                   revert_sync_batchnorm_cfg, safe_torch_load,
                                   select_dist_backend)
from tests.conftest import ROOT


def _mmengine_like_checkpoint(path):
    buffer = HistoryBuffer()
    buffer.update(1.5)
    torch.save(dict(
        state_dict={'w': torch.ones(2)},
        meta=dict(epoch=1, iter=4, seed=np.int64(3)),
        message_hub=dict(log_scalars={'loss': buffer},
                         runtime_info={'arr': np.arange(3)})), path)


def test_weights_only_loads_mmengine_types(tmp_path):
    path = tmp_path / 'ckpt.pth'
    _mmengine_like_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # torch >= 2.6 default
    ckpt = safe_torch_load(str(path))
    assert ckpt['meta']['seed'] == 3
    assert ckpt['message_hub']['log_scalars']['loss'].current() == 1.5


def test_unknown_objects_fall_back_with_warning(tmp_path):
    path = tmp_path / 'odd.pth'
    torch.save(dict(cfg=pytest.approx(1)), path)  # an arbitrary object
    with mock.patch('densekit.utils.compat.print_log') as log:
        ckpt = safe_torch_load(str(path))
    assert 'cfg' in ckpt
    message = log.call_args.args[0]
    assert 'odd.pth' in message and 'full unpickling' in message
    assert 'Unsupported global' in message


def test_real_mmengine_history_buffer_loads_without_fallback(tmp_path):
    path = tmp_path / 'hub.pth'
    # saved and loaded in fresh processes, as a resumed run does
    save = ('import torch; from mmengine.logging.history_buffer import '
            'HistoryBuffer as H; b = H(); b.update(2.0); '
            f'torch.save(dict(log_scalars=dict(loss=b)), {str(path)!r})')
    load = ('from unittest import mock; import densekit.utils.compat as c\n'
            'with mock.patch.object(c, "print_log") as log:\n'
            f'    ckpt = c.safe_torch_load({str(path)!r})\n'
            'assert not log.called, log.call_args\n'
            'assert ckpt["log_scalars"]["loss"].mean() == 2.0\n')
    for code in (save, load):
        res = subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[-2000:]


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        safe_torch_load(str(tmp_path / 'nope.pth'))


def test_mmengine_is_patched_only_by_an_explicit_install(tmp_path):
    """`import densekit` leaves mmengine alone; install_mmengine_compat()
    (called by the tools) and a densekit config's custom_imports patch it,
    in fresh processes."""
    path = tmp_path / 'ckpt.pth'
    _mmengine_like_checkpoint(path)
    common = ('import densekit, densekit.models\n'
              'from mmengine.runner import checkpoint\n'
              'from densekit.utils.compat import safe_torch_load\n'
              'patched = lambda: checkpoint.CheckpointLoader._schemes[""] '
              'is safe_torch_load\n'
              'assert not patched()\n')
    cases = {
        'install': 'from densekit.utils.compat import '
                   'install_mmengine_compat\ninstall_mmengine_compat()\n',
        'config': 'from mmengine.config import Config\n'
                  'Config.fromfile("configs/det/yolov8_n_shapes.py")\n',
    }
    for name, apply in cases.items():
        code = (common + apply + 'assert patched()\n'
                'from mmengine.runner import runner\n'
                'assert runner.save_checkpoint._densekit_atomic\n'
                f'ckpt = checkpoint._load_checkpoint({str(path)!r})\n'
                'assert ckpt["meta"]["iter"] == 4\n')
        res = subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                             capture_output=True, text=True)
        assert res.returncode == 0, (name, res.stderr[-2000:])


def test_revert_sync_batchnorm_cfg():
    cfg = dict(backbone=dict(norm_cfg=dict(type='SyncBN', eps=1e-3)),
               heads=[dict(norm_cfg=dict(type='SyncBN')),
                      dict(norm_cfg=dict(type='GN'))])
    assert revert_sync_batchnorm_cfg(cfg) == 2
    assert cfg['backbone']['norm_cfg'] == dict(type='BN', eps=1e-3)
    assert cfg['heads'][1]['norm_cfg']['type'] == 'GN'


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU path')
def test_amp_without_cuda_uses_cpu_bf16_or_refuses():
    with mock.patch('densekit.utils.hardware.cpu_supports_bf16',
                    return_value=True):
        assert check_amp_available() == 'densekit.CPUAutocastOptimWrapper'
    with mock.patch('densekit.utils.hardware.cpu_supports_bf16',
                    return_value=False):
        with pytest.raises(SystemExit, match='--amp needs a CUDA device'):
            check_amp_available()


def test_cpu_autocast_optim_wrapper_runs_convs_in_bf16():
    from densekit.engine.optimizers import CPUAutocastOptimWrapper
    from densekit.registry import OPTIM_WRAPPERS
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 4, 3)
    wrapper = OPTIM_WRAPPERS.build(dict(
        type='densekit.CPUAutocastOptimWrapper',
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    assert isinstance(wrapper, CPUAutocastOptimWrapper)
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.rand(2, 3, 8, 8))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().pow(2).mean())
    assert model.weight.dtype == torch.float32
    assert not torch.equal(model.weight, before)
    with pytest.raises(ValueError, match='bfloat16'):
        CPUAutocastOptimWrapper(dtype='float16', optimizer=torch.optim.SGD(
            model.parameters(), lr=0.1))


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU path')
def test_gloo_selected_without_cuda():
    from mmengine.config import Config
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    select_dist_backend(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'

"""tools/train.py fails early, naming what is wrong."""
import pytest
import torch

from tests.conftest import run_tool

CONFIG = 'configs/det/yolov8_n_shapes.py'


def test_missing_dataset_fails_before_training(tmp_path):
    missing = tmp_path / 'synthetic_shapes'  # not generated
    res = run_tool(['tools/train.py', CONFIG, '--work-dir', str(tmp_path),
                    '--cfg-options',
                    f'train_dataloader.dataset.dataset.data_root={missing}'])
    assert res.returncode != 0
    assert 'FileNotFoundError' in res.stdout
    assert str(missing) in res.stdout
    assert 'tools/data/make_synthetic.py shapes' in res.stdout
    assert 'Epoch(train)' not in res.stdout
    assert 'Traceback' not in res.stdout  # the message is enough


def test_unknown_cfg_option_key_lists_close_matches(tmp_path):
    res = run_tool(['tools/train.py', CONFIG, '--work-dir', str(tmp_path),
                    '--cfg-options',
                    'optim_wrapper.optimizer.learning_rate=1'])
    assert res.returncode != 0
    assert "'optim_wrapper.optimizer.learning_rate'" in res.stdout
    assert 'Close matches' in res.stdout
    assert 'Traceback' not in res.stdout


def test_unregistered_type_lists_close_matches(tmp_path):
    res = run_tool(['tools/train.py', CONFIG, '--work-dir', str(tmp_path),
                    '--cfg-options', 'model.neck.type=densekit.YOLOv8PAFN'])
    assert res.returncode != 0
    assert 'model.neck.type' in res.stdout
    assert 'densekit.YOLOv8PAFPN' in res.stdout
    assert 'Traceback' not in res.stdout
    assert 'Failed to search registry' not in res.stdout


@pytest.mark.slow  # subprocess training run: make test-slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU path')
def test_amp_on_cpu_trains_in_bf16_or_is_refused(tiny_config, tmp_path):
    from densekit.utils.hardware import cpu_supports_bf16
    res = run_tool(['tools/train.py', tiny_config(max_epochs=1),
                    '--work-dir', str(tmp_path), '--amp'])
    if cpu_supports_bf16():
        assert res.returncode == 0, res.stdout[-3000:]
        assert "'densekit.CPUAutocastOptimWrapper'" in res.stdout
        assert 'Epoch(train)' in res.stdout
    else:
        assert res.returncode != 0
        assert '--amp needs a CUDA device' in res.stdout


@pytest.mark.parametrize('config', ['configs/det/yolov8_n_coco.py',
                                    'configs/det/mamba_yolo_coco.py'])
def test_missing_coco_says_where_and_how_to_override(config, tmp_path):
    res = run_tool(['tools/train.py', config, '--work-dir', str(tmp_path)])
    assert res.returncode != 0
    assert 'data/coco/annotations/instances_train2017.json' in res.stdout
    assert 'train2017/' in res.stdout
    assert 'cocodataset.org' in res.stdout
    assert ('--cfg-options train_dataloader.dataset.dataset.data_root='
            in res.stdout)
    assert 'Epoch(train)' not in res.stdout


def test_import_densekit_loads_neither_torch_nor_the_runner():
    """`import densekit` stays fast and patches nothing: neither torch nor
    mmengine's runner is imported, and importing the runner afterwards
    finds mmengine's own checkpoint loader (the patches are explicit, see
    densekit/utils/compat.py)."""
    import subprocess
    import sys
    code = ('import sys, densekit\n'
            'assert "torch" not in sys.modules\n'
            'assert "mmengine.runner" not in sys.modules\n'
            'from mmengine.runner import checkpoint, runner\n'
            'from densekit.utils.compat import safe_torch_load\n'
            'assert checkpoint.CheckpointLoader._schemes[""] is not '
            'safe_torch_load\n'
            'assert not getattr(runner.save_checkpoint, "_densekit_atomic", '
            'False)\n')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr[-2000:]

"""configs/det/yolov8_n_finetune_example.py through tools/train.py: a
converted 80-class checkpoint as load_from of the 4-class config; the
class layers are re-initialised with one WARNING line naming them, the rest
loads and training runs."""
import os.path as osp

import pytest
import torch

from tests.conftest import ROOT, run_tool
from tests.converter_cli import convert_cli
from tests.test_models.test_utils.yolov8_sources import UltralyticsYOLOv8


@pytest.mark.slow  # a tools/train.py run, ~40 s on 2 cores
def test_finetune_example_from_a_converted_80_class_checkpoint(
        tiny_config, tmp_path):
    torch.manual_seed(0)
    src, ckpt = tmp_path / 'yolov8n_sd.pth', tmp_path / 'yolov8n.pth'
    torch.save(UltralyticsYOLOv8('n', 80).state_dict(), src)
    assert convert_cli('yolov8_ultralytics')([
        src, ckpt, '--config',
        osp.join(ROOT, 'configs', 'det', 'yolov8_n_coco.py')]) == 0
    config = tiny_config(max_epochs=1, name='tiny_finetune.py',
                         base='yolov8_n_finetune_example.py')
    res = run_tool(['tools/train.py', config, '--work-dir',
                    str(tmp_path / 'work'), '--cfg-options',
                    f'load_from={ckpt}'])
    assert res.returncode == 0, res.stdout[-3000:]
    lines = [line for line in res.stdout.splitlines()
             if 'the checkpoint predicts' in line]
    print(lines[0])
    # the model and EMAHook's copy both load it; mmengine's logger drops
    # the repeated warning
    assert len(lines) == 1 and 'WARNING' in lines[0]
    assert ('YOLOv8Head (bbox_head): the checkpoint predicts 80 classes, '
            'this head 4: re-initialised the class-dependent layers '
            'bbox_head.cls_towers.0.0, ') in lines[0]
    assert f'Load checkpoint from {ckpt}' in res.stdout
    assert 'size mismatch' not in res.stdout

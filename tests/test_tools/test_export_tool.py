"""tools/deploy/export.py: files and meta data on success; one ``error:``
line, exit 1 and nothing written on bad input."""
import importlib.util
import json
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from tests.conftest import ROOT

YOLO = osp.join(ROOT, 'configs', 'det', 'yolov8_n_shapes.py')
MAMBA = osp.join(ROOT, 'configs', 'det', 'mamba_yolo_t_shapes.py')
FASTER = osp.join(ROOT, 'configs', 'det', 'faster-rcnn_r50_fpn_shapes.py')


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'export_tool', osp.join(ROOT, 'tools', 'deploy', 'export.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_checkpoint(config, path):
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    torch.save(dict(state_dict=model.state_dict(), meta=dict(
        dataset_meta=dict(classes=('a', 'b', 'c', 'd')))), path)
    return str(path)


@pytest.fixture(scope='module')
def yolo_ckpt(tmp_path_factory):
    return random_checkpoint(YOLO, tmp_path_factory.mktemp('ck') / 'y.pth')


def test_exports_with_meta(yolo_ckpt, tmp_path, capfd):
    out = tmp_path / 'out'
    assert load_tool().main([YOLO, yolo_ckpt, '--out', str(out),
                             '--dynamic-batch']) == 0
    path = capfd.readouterr().out.strip().splitlines()[-1]
    assert path == str(out / 'yolov8_n_shapes.onnx') and osp.isfile(path)
    meta = json.load(open(out / 'yolov8_n_shapes.json'))
    assert meta['task'] == 'det' and meta['input_shape'] == [256, 256]
    assert meta['classes'] == ['a', 'b', 'c', 'd']
    assert meta['groups'] == [['cls_scores', 3], ['bbox_preds', 3]]
    assert sorted(os.listdir(out)) == ['yolov8_n_shapes.json',
                                       'yolov8_n_shapes.onnx']


@pytest.mark.parametrize('case', ['mismatch', 'format', 'two_stage',
                                  'missing'])
def test_bad_input_is_one_line_and_writes_nothing(case, yolo_ckpt, tmp_path,
                                                  capfd):
    out = tmp_path / 'out'
    config, fmt, ckpt = YOLO, 'onnx', yolo_ckpt
    expected = {
        'mismatch': 'does not match config',
        'format': "format must be one of ('onnx', 'openvino')",
        'two_stage': 'module roi_head (StandardRoIHead)',
        'missing': 'does not exist',
    }[case]
    if case == 'mismatch':  # YOLOv8 weights for a Mamba-YOLO config
        config = MAMBA
    elif case == 'format':
        fmt = 'tensorrt'
    elif case == 'two_stage':
        config = FASTER
        ckpt = random_checkpoint(FASTER, tmp_path / 'f.pth')
    else:
        ckpt = str(tmp_path / 'nope.pth')
    code = load_tool().main([config, ckpt, '--format', fmt, '--out',
                             str(out), '--shape', '64'])
    captured = capfd.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    print(lines)
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith('error: ')
    assert expected in lines[0]
    assert not out.exists() or os.listdir(out) == []

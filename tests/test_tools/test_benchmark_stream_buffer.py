"""tools/analysis/benchmark_stream_buffer.py on small frames (random
weights): the buffer path computes the same detections as recomputing the
window, executes exactly (N + 1) - 1 fewer per-frame backbone + neck passes,
and the table / --check report it."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from tests.conftest import ROOT

DFP = osp.join(ROOT, 'configs', 'stream',
               'streamyolo_yolov8-n_moving-shapes.py')
LSFM = osp.join(ROOT, 'configs', 'stream',
                'damo-streamnet_yolov8-n_moving-shapes.py')
SHAPE = (96, 96)


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'benchmark_stream_buffer',
        osp.join(ROOT, 'tools', 'analysis', 'benchmark_stream_buffer.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return _load_tool()


@pytest.mark.parametrize('config, num_past', [(DFP, 1), (LSFM, 3)])
def test_buffer_saves_the_past_frames_compute(tool, config, num_past):
    torch.manual_seed(0)
    model = tool.build_model(Config.fromfile(config))
    res = tool.benchmark_stream_buffer(model, SHAPE, warmup=1, runs=3)
    assert res['num_past_frames'] == num_past
    rec, buf = res['recompute'], res['buffer']
    # recompute - buffer = N per-frame passes, a positive amount
    per_frame = tool._gflops(tool._FrameFeats(model),
                             (torch.zeros(1, 3, *SHAPE), ))
    assert per_frame > 0
    assert rec['gflops'] - buf['gflops'] == pytest.approx(
        num_past * per_frame, rel=1e-6)
    assert res['max_score_diff'] < 1e-4
    assert rec['median'] > 0 and buf['median'] > 0


def test_cli_table_and_check(tool, capsys):
    rc = tool.main([LSFM, '--shape', *map(str, SHAPE), '--runs', '5',
                    '--warmup', '1', '--threads', '1', '--check'])
    out = capsys.readouterr().out
    # four frames recomputed per new frame vs one: a margin no load hides
    assert rc == 0, out
    assert 'recompute' in out and 'buffer' in out and 'PASS' in out
    assert 'max |score diff|' in out


def test_rejects_a_still_detector(tool):
    model = tool.build_model(Config.fromfile(osp.join(
        ROOT, 'configs', 'det', 'yolov8_n_shapes.py')))
    with pytest.raises(TypeError, match='predict_stream'):
        tool._check_streaming_model(model, 'yolov8_n_shapes.py')

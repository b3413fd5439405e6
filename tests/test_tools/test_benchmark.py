import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from tests.conftest import ROOT

CONFIG = osp.join(ROOT, 'configs', 'det', 'yolov8_n_shapes.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'benchmark', osp.join(ROOT, 'tools', 'analysis', 'benchmark.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def benchmark():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 OpenMP threads crawl on a busy 2-core box
    yield _load_tool()
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    from mmdet.apis import init_detector
    model = init_detector(Config.fromfile(CONFIG), None, device='cpu')
    path = str(tmp_path_factory.mktemp('ckpt') / 'yolov8_n.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def test_main_prints_one_row_per_config(benchmark, checkpoint, capsys):
    assert benchmark.main([
        CONFIG, CONFIG, '--checkpoint', checkpoint, checkpoint, '--shape',
        '128', '--runs', '3', '--warmup', '1', '--device', 'cpu'
    ]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if 'yolov8_n_shapes' in line]
    assert len(rows) == 2
    cells = [c.strip() for c in rows[0].strip('|').split('|')]
    header = next(line for line in out.splitlines() if 'config' in line)
    names = [c.strip() for c in header.strip('|').split('|')]
    row = dict(zip(names, cells))
    assert row['input'] == '128x128' and row['batch'] == '1'
    assert float(row['params (M)']) == pytest.approx(3.0, abs=0.2)
    assert float(row['GFLOPs']) > 0
    full_median = float(row['full median'])
    assert float(row['FPS']) == pytest.approx(1000 / full_median, rel=0.01)
    assert '3 timed runs after 1 warm-up' in out


def test_benchmark_model_statistics(benchmark):
    model = benchmark.build_model(benchmark.load_config(CONFIG))
    result = benchmark.benchmark_model(
        model, (64, 64), batch_size=2, warmup=0, runs=3)
    for key in ('forward', 'full'):
        stats = result[key]
        assert set(stats) == {'median', 'p90', 'mean'}
        assert 0 < stats['median'] <= stats['p90']
    # the full pipeline includes the forward
    assert result['full']['median'] >= 0.5 * result['forward']['median']
    assert result['fps'] == pytest.approx(
        2000 / result['full']['median'])
    with pytest.raises(ValueError, match='runs'):
        benchmark.benchmark_model(model, (64, 64), runs=0)


def test_checkpoint_count_must_match_configs(benchmark, checkpoint):
    with pytest.raises(SystemExit):
        benchmark.main([CONFIG, CONFIG, '--checkpoint', checkpoint])

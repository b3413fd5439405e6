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
    assert '3 timed rounds after 1 warm-up runs' in out


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


ANOMALY_CONFIG = osp.join(ROOT, 'configs', 'anomaly',
                          'efficientad_s_synthetic.py')


@pytest.fixture(scope='module')
def anomaly_checkpoint(tmp_path_factory):
    """A random EfficientAD-S with its statistics, and a tiny synthetic
    test set in MVTec layout for --eval-paths."""
    from densekit.datasets.synthetic import generate_anomaly_mvtec
    from densekit.models.anomaly_detectors import EfficientAD
    root = tmp_path_factory.mktemp('anomaly')
    generate_anomaly_mvtec(str(root / 'data'), num_train=4, num_test_good=3,
                           num_test_defect=3, img_size=256)
    torch.manual_seed(0)
    model = EfficientAD(allow_random_teacher=True).eval()
    images = [torch.rand(1, 3, 256, 256) for _ in range(2)]
    model.set_teacher_stats(images)
    model.set_map_quantiles(images)
    path = str(root / 'efficientad_s.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path, str(root / 'data')


@pytest.mark.slow  # subprocess run: make test-slow
def test_efficientad_paths_table_and_auroc_check(benchmark, anomaly_checkpoint,
                                                 capsys):
    path, data_root = anomaly_checkpoint
    status = benchmark.main([
        ANOMALY_CONFIG, '--checkpoint', path, '--shape', '256', '--runs', '1',
        '--warmup', '0', '--throughput-batch', '2', '--eval-paths',
        '--check', '--min-speedup', '0.01', '--cfg-options',
        f'test_dataloader.dataset.data_root={data_root}'])
    out = capsys.readouterr().out
    assert status == 0, out
    for name in ('eager fp32 (plain)', 'eager fp32 channels-last',
                 'fused fp32 channels-last'):
        assert name in out
    assert 'throughput b2' in out and '1.00x' in out
    assert 'image AUROC' in out and 'largest AUROC difference' in out
    assert 'check: fastest path' in out and 'PASS' in out
    # a speed-up nobody reaches fails the check
    assert benchmark.main([
        ANOMALY_CONFIG, '--shape', '256', '--runs', '1', '--warmup', '0',
        '--throughput-batch', '1', '--check', '--min-speedup', '1000']) == 1


def test_backend_table(benchmark, capsys):
    """--backend: eager, ONNX Runtime and OpenVINO rows with their
    differences from eager."""
    assert benchmark.main([
        CONFIG, '--backend', 'pytorch', 'onnxruntime', 'openvino',
        '--shape', '64', '--runs', '1', '--warmup', '0', '--threads', '1',
        '--device', 'cpu'
    ]) == 0
    out = capsys.readouterr().out
    print(out)
    rows = [line for line in out.splitlines() if 'yolov8_n_shapes' in line]
    assert [r.split('|')[3].strip() for r in rows] == [
        'pytorch eager', 'onnxruntime', 'openvino']
    for row in rows[1:]:
        assert float(row.split('|')[7]) < 1e-4

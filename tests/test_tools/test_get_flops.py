import importlib.util
import os.path as osp

import pytest
import torch

from tests.conftest import ROOT

# ultralytics' published YOLOv8 numbers (README, COCO, 640x640); the
# acceptance tolerances are params +-5% and FLOPs (2 x MACs) +-10%.
PUBLISHED = {
    'n': (3.2, 8.7),
    's': (11.2, 28.6),
    'm': (25.9, 78.9),
    'l': (43.7, 165.2),
    'x': (68.2, 257.8),
}


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'get_flops', osp.join(ROOT, 'tools', 'analysis', 'get_flops.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def get_flops():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 OpenMP threads crawl on a busy 2-core box
    yield _load_tool()
    torch.set_num_threads(threads)


@pytest.mark.parametrize('scale', list(PUBLISHED))
def test_yolov8_matches_published_size(get_flops, scale):
    config = osp.join(ROOT, 'configs', 'det', f'yolov8_{scale}_coco.py')
    info = get_flops.count_complexity(config, (640, 640))
    ref_params, ref_gflops = PUBLISHED[scale]
    params_diff = (info['params_m'] - ref_params) / ref_params
    flops_diff = (info['gflops'] - ref_gflops) / ref_gflops
    print(f'yolov8_{scale}: {info["params_m"]:.2f}M params '
          f'({params_diff:+.1%}), {info["gflops"]:.2f} GFLOPs '
          f'({flops_diff:+.1%})')
    assert info['input_shape'] == (640, 640)
    assert info['flops'] == 2 * info['macs']
    assert abs(params_diff) <= 0.05
    assert abs(flops_diff) <= 0.10
    # the table's reference column is the same published number
    assert get_flops.reference_for(config) == dict(
        params_m=ref_params, gflops=ref_gflops)


def test_main_prints_table_and_conventions(get_flops, capsys):
    config = osp.join(ROOT, 'configs', 'det', 'yolov8_n_shapes.py')
    assert get_flops.main([config, '--shape', '100']) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if 'yolov8_n_shapes' in line)
    # 100 is padded to the data preprocessor's divisor 32, as in inference
    assert '128x128' in row
    assert 'GMACs' in out and 'GFLOPs' in out
    assert '2 x GMACs' in out and 'multiply-adds' in out


def test_flops_scale_with_input_area(get_flops):
    config = osp.join(ROOT, 'configs', 'det', 'yolov8_n_shapes.py')
    model = get_flops.build_model(get_flops.load_config(config))
    small = get_flops.count_model_complexity(model, (128, 128))
    large = get_flops.count_model_complexity(model, (256, 256))
    assert small['params'] == large['params']
    assert large['macs'] == pytest.approx(4 * small['macs'], rel=1e-6)


def test_bad_arguments(get_flops, capsys):
    with pytest.raises(SystemExit):
        get_flops.main([])  # neither configs nor --all-yolov8
    with pytest.raises(FileNotFoundError, match='missing_cfg.py'):
        get_flops.count_complexity('missing_cfg.py')
    with pytest.raises(ValueError, match='shape'):
        get_flops.count_complexity(
            osp.join(ROOT, 'configs', 'det', 'yolov8_n_shapes.py'), (0, 64))


def test_segmentors_count_vit_attention(get_flops):
    """A segmentor's tensor forward is counted, the fused attention of the
    ViT and ATM heads included: mmengine's count matches torch's own
    FLOP counter (which sees every executed matmul) on the same forward."""
    from torch.utils.flop_counter import FlopCounterMode
    cfg = get_flops.load_config(
        osp.join(ROOT, 'configs', 'seg', 'dtop_vit-t-p8_shapes.py'))
    model = get_flops.build_model(cfg)
    info = get_flops.count_model_complexity(model, (192, 192))
    assert '_native_multi_head_attention' not in str(info['uncounted_ops'])
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model._forward(torch.zeros(1, 3, 192, 192))
    torch_macs = counter.get_total_flops() / 2
    assert abs(info['macs'] - torch_macs) / torch_macs < 0.02


def test_upernet_r50_counts(get_flops):
    info = get_flops.count_complexity(
        osp.join(ROOT, 'configs', 'seg', 'upernet_r50_ade20k-512x512.py'),
        (512, 512))
    assert abs(info['params_m'] - 66.5) < 0.1
    assert info['gmacs'] > 200


def test_efficientad_params_and_macs(get_flops, capsys):
    # EfficientAD-S: the paper's PDN-S teacher + student (2 x 384) + AE
    info = get_flops.count_complexity(
        osp.join(ROOT, 'configs', 'anomaly', 'efficientad_s_mvtec.py'),
        (256, 256))
    assert info['params'] == 8_057_856
    assert info['input_shape'] == (256, 256)
    assert info['gmacs'] > 10  # teacher alone is ~15 GMACs at 256x256
    assert get_flops.main([osp.join(ROOT, 'configs', 'anomaly',
                                    'efficientad_s_mvtec.py'),
                           '--shape', '256']) == 0
    assert 'efficientad_s_mvtec' in capsys.readouterr().out

"""The README's learning figures, re-measured (slow: ~13 min each on 2
cores)."""
import re

import pytest

from tests.conftest import run_tool


def _run_benchmark(args, tmp_path):
    # the README target is 15 min; CI allows a little headroom for a busier
    # machine but the quality targets are not relaxed
    res = run_tool(['tools/analysis/learning_benchmark.py', *args,
                    '--work-dir', str(tmp_path / 'bench'),
                    '--max-train-minutes', '20'], timeout=3000)
    print(res.stdout[-2000:])
    assert res.returncode == 0, res.stdout[-4000:]
    assert re.search(r'^result\s+\| PASS$', res.stdout, re.M)


@pytest.mark.slow
@pytest.mark.timeout(3000)
@pytest.mark.parametrize('config, min_map50', [
    ('configs/det/yolov8_n_shapes.py', 0.50),
    ('configs/det/mamba_yolo_t_shapes.py', 0.40),
])
def test_detector_reaches_map50_on_synthetic_shapes(config, min_map50,
                                                    tmp_path):
    _run_benchmark(['--config', config, '--min-map50', str(min_map50)],
                   tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_upernet_reaches_miou_on_synthetic_shapes(tmp_path):
    _run_benchmark(['--config', 'configs/seg/upernet_yolov8-n_shapes.py',
                    '--min-miou', '0.70'], tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_dtop_prunes_compute_on_a_trained_vit(tmp_path):
    """README's DToP table: train the synthetic DToP ViT (~20 min), then
    pruning on vs off on the same validation images must save >= 20% of
    the executed FLOPs and run faster. The mIoU bound is the one measured
    for this small ViT trained from scratch (1.0 point lost at the paper's
    threshold 0.9 / top-5; README), looser than the issue's 0.5-point goal
    for pretrained ViTs, which this machine cannot train or download."""
    res = run_tool(['tools/analysis/benchmark_dtop.py',
                    'configs/seg/dtop-setr_convvit-t_shapes.py',
                    '--work-dir', str(tmp_path / 'dtop'), '--num-images',
                    '100', '--check', '--max-miou-drop', '1.5'],
                   timeout=3000)
    print(res.stdout[-3000:])
    assert res.returncode == 0, res.stdout[-4000:]
    assert res.stdout.count('\nPASS ') == 3


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_efficientad_detects_synthetic_defects(tmp_path):
    """Shortened EfficientAD-S run (150 of the config's 400 iterations,
    bfloat16 autocast where the CPU has it, ~5 min): image and pixel AUROC
    above 0.8 on the synthetic texture defects (README: 400 iterations
    reach >= 0.95 within 15 minutes)."""
    from densekit.engine.optimizers import cpu_supports_bf16
    amp = ['--amp'] if cpu_supports_bf16() else []
    _run_benchmark(['--config', 'configs/anomaly/efficientad_s_synthetic.py',
                    *amp, '--min-image-auroc', '0.8', '--min-pixel-auroc',
                    '0.8', '--cfg-options', 'train_cfg.max_iters=150',
                    'train_cfg.val_interval=1000',  # tools/test.py evaluates
                    'param_scheduler.0.milestones=[142]',
                    'default_hooks.checkpoint.interval=150'], tmp_path)

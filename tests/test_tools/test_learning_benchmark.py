"""Shortened runs of the README's learning benchmarks (slow: 2-6 min each
on 2 cores, about 27 min in all).

Each test trains a config from scratch on its synthetic set for a fraction
of the README schedule (the same recipe, the schedule's length and its
decay scaled down) and checks a quality bound measured for that shortened
run, with margin. The README's figures come from the full schedules
(``tools/analysis/learning_benchmark.py`` without ``--cfg-options``), which
take up to 15 minutes each: too long to re-run all of them in every CI
run. The wall-clock target is not checked here (``--max-train-minutes``
is generous) because CI machines differ in speed; the pytest timeout bounds
each run instead.
"""
import re

import pytest

from tests.conftest import run_tool

# a shortened run must not be judged by the README's 15-minute budget
NO_TIME_LIMIT = ['--max-train-minutes', '120']


def _run_benchmark(args, tmp_path):
    res = run_tool(['tools/analysis/learning_benchmark.py', *args,
                    '--work-dir', str(tmp_path / 'bench'), *NO_TIME_LIMIT],
                   timeout=1500)
    print(res.stdout[-2000:])
    assert res.returncode == 0, res.stdout[-4000:]
    assert re.search(r'^result\s+\| PASS$', res.stdout, re.M)


def _epochs(n, close_mosaic):
    """YOLO shapes configs: ``n`` epochs, the cosine decay over epochs
    1..n, mosaic closed for the last ``close_mosaic`` (custom_hooks.1)."""
    return [f'train_cfg.max_epochs={n}', f'train_cfg.val_interval={n}',
            f'param_scheduler.1.end={n}', f'param_scheduler.1.T_max={n - 1}',
            f'custom_hooks.1.num_last_epochs={close_mosaic}']


def _iters(n, scheduler=1):
    """Iteration-based configs: ``n`` iterations, the decay of
    ``param_scheduler.<scheduler>`` ending there, one checkpoint."""
    return [f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}',
            f'param_scheduler.{scheduler}.end={n}',
            f'default_hooks.checkpoint.interval={n}']


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize('config, min_map50', [
    # README: 7 epochs, mAP@0.5 0.990; these 2: 0.673 in 4.2 min (on half
    # the images, 2 epochs reach only 0.155: not worth the minute saved)
    ('configs/det/yolov8_n_shapes.py', 0.45),
    # README: 6 epochs, mAP@0.5 0.725; these 2: 0.332 in 4.4 min
    ('configs/det/mamba_yolo_t_shapes.py', 0.20),
])
def test_detector_learns_synthetic_shapes(config, min_map50, tmp_path):
    # 2 epochs, the second without mosaic
    _run_benchmark(['--config', config, '--min-map50', str(min_map50),
                    '--cfg-options', *_epochs(2, 1)], tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_upernet_learns_synthetic_shapes(tmp_path):
    # README: 1600 iterations, mIoU 0.780; 500: 0.399 in 4.9 min (the
    # untrained model's is about 0.18: background only)
    _run_benchmark(['--config', 'configs/seg/upernet_yolov8-n_shapes.py',
                    '--min-miou', '0.30', '--cfg-options', *_iters(500)],
                   tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_swin_unet_learns_phantom_organs(tmp_path):
    # README: 2000 iterations, mean Dice 0.994; 400: 0.940 in 1.9 min
    _run_benchmark(['--config', 'configs/medseg/swin-unet_phantom.py',
                    '--min-dice', '0.80', '--cfg-options', *_iters(400)],
                   tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_dtop_prunes_compute_on_a_trained_vit(tmp_path):
    """README's DToP table, shortened: train the synthetic DToP ViT for
    400 of its 1600 iterations, then pruning on vs off on the same
    validation images must save >= 20% of the executed FLOPs and run
    faster. The mIoU bound is looser than the issue's 0.5-point goal for
    pretrained ViTs, which this machine cannot train or download (the
    full schedule loses 0.9 points, README)."""
    res = run_tool(['tools/analysis/benchmark_dtop.py',
                    'configs/seg/dtop-setr_convvit-t_shapes.py',
                    '--work-dir', str(tmp_path / 'dtop'), '--num-images',
                    '40', '--check', '--max-miou-drop', '2.0',
                    '--cfg-options', 'train_cfg.max_iters=400',
                    'train_cfg.val_interval=400', 'param_scheduler.1.end=400',
                    'default_hooks.checkpoint.interval=400'],
                   timeout=1500)
    print(res.stdout[-3000:])
    assert res.returncode == 0, res.stdout[-4000:]
    assert res.stdout.count('\nPASS ') == 3


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_efficientad_detects_synthetic_defects(tmp_path):
    """Shortened EfficientAD-S run (60 of the config's 400 iterations,
    bfloat16 autocast where the CPU has it): image and pixel AUROC above
    0.8 on the synthetic texture defects (README: 400 iterations reach >=
    0.95 within 15 minutes)."""
    from densekit.utils.hardware import cpu_supports_bf16
    amp = ['--amp'] if cpu_supports_bf16() else []
    _run_benchmark(['--config', 'configs/anomaly/efficientad_s_synthetic.py',
                    *amp, '--min-image-auroc', '0.8', '--min-pixel-auroc',
                    '0.8', '--cfg-options', 'train_cfg.max_iters=60',
                    'train_cfg.val_interval=1000',  # tools/test.py evaluates
                    'param_scheduler.0.milestones=[57]',
                    'default_hooks.checkpoint.interval=60'], tmp_path)

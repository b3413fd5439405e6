import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from tests.conftest import ROOT

CONFIG = osp.join(ROOT, 'configs', 'det', 'yolov8_n_shapes.py')
CLASSES = ('circle', 'square', 'triangle', 'star')


def _load_demo():
    spec = importlib.util.spec_from_file_location(
        'image_demo', osp.join(ROOT, 'demo', 'image_demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args):
    # one OpenMP thread: two slow down ~50x when another process holds a core
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, 'demo/image_demo.py', *args],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=300)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    from mmdet.apis import init_detector
    torch.manual_seed(0)
    model = init_detector(Config.fromfile(CONFIG), None, device='cpu')
    path = str(tmp_path_factory.mktemp('ckpt') / 'yolov8_n.pth')
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(dataset_meta=dict(classes=CLASSES))), path)
    return path


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """Three 72x120 (H, W) noise images in a folder."""
    folder = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    for i in range(3):
        img = rng.integers(0, 255, (72, 120, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f'img_{i}.jpg'), img)
    return folder


def test_folder_writes_vis_and_predictions(checkpoint, images, tmp_path):
    out = tmp_path / 'out'
    proc = _run(str(images), '--config', CONFIG, '--weights', checkpoint,
                '--device', 'cpu', '--score-thr', '0.0', '--out-dir',
                str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(os.listdir(out / 'vis')) == [
        'img_0.jpg', 'img_1.jpg', 'img_2.jpg'
    ]
    assert cv2.imread(str(out / 'vis' / 'img_0.jpg')).shape == (72, 120, 3)
    predictions = json.loads((out / 'predictions.json').read_text())
    assert [osp.basename(p['file']) for p in predictions] == [
        'img_0.jpg', 'img_1.jpg', 'img_2.jpg'
    ]
    for record in predictions:
        assert (record['width'], record['height']) == (120, 72)
        assert record['instances'], 'score_thr=0 keeps detections'
        for inst in record['instances']:
            x1, y1, x2, y2 = inst['bbox']
            assert 0 <= x1 <= x2 <= 120 and 0 <= y1 <= y2 <= 72
            assert inst['class_name'] == CLASSES[inst['label']]
        assert set(record['timings']) == {
            'preprocess', 'inference', 'postprocess'
        }
    lines = proc.stdout.splitlines()
    image_lines = [line for line in lines if line.startswith('image ')]
    assert len(image_lines) == 3
    assert image_lines[0].startswith(f'image 1/3 {images}')
    assert ': 72x120 ' in image_lines[0] and image_lines[0].endswith('ms')
    assert any(line.startswith('Speed: ') and 'ms inference' in line
               for line in lines)


def test_bad_files_are_named_and_good_ones_processed(checkpoint, images,
                                                     tmp_path):
    corrupt = tmp_path / 'corrupt.jpg'
    corrupt.write_bytes(b'definitely not a jpeg')
    missing = tmp_path / 'missing.jpg'
    out = tmp_path / 'out'
    proc = _run(str(images / 'img_0.jpg'), str(corrupt), str(missing),
                '--config', CONFIG, '--weights', checkpoint, '--device',
                'cpu', '--out-dir', str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'corrupt.jpg' in proc.stderr and 'missing.jpg' in proc.stderr
    predictions = json.loads((out / 'predictions.json').read_text())
    assert [osp.basename(p['file']) for p in predictions] == ['img_0.jpg']
    assert os.listdir(out / 'vis') == ['img_0.jpg']


def test_no_match_exits_2_naming_the_pattern(tmp_path):
    pattern = str(tmp_path / 'nothing' / '*.jpg')
    proc = _run(pattern, '--config', CONFIG, '--weights', 'unused.pth')
    assert proc.returncode == 2
    assert pattern in proc.stderr


def test_collect_inputs_and_describe(images, tmp_path):
    demo = _load_demo()
    (images / 'notes.txt').write_text('not an image')
    files, unmatched = demo.collect_inputs([
        str(images),
        str(images / '*_1.jpg'),  # duplicate of a folder entry
        str(tmp_path / 'empty_*.png'),
    ])
    assert [osp.basename(f) for f in files] == [
        'img_0.jpg', 'img_1.jpg', 'img_2.jpg'
    ]
    assert unmatched == [str(tmp_path / 'empty_*.png')]

    from densekit.apis import DetResult
    result = DetResult(
        bboxes=np.zeros((4, 4), np.float32),
        scores=np.ones(4, np.float32),
        labels=np.array([3, 0, 0, 0]),
        class_names=['star', 'circle', 'circle', 'circle'],
        img_shape=(8, 8))
    assert demo.describe(result) == '3 circles, 1 star'
    empty = DetResult(np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0),
                      [], (8, 8))
    assert demo.describe(empty) == '(no detections)'


@pytest.fixture(scope='module')
def mamba_checkpoint(tmp_path_factory):
    """A Mamba-YOLO-T shapes checkpoint, as tools/train.py saves one."""
    from mmdet.apis import init_detector
    config = osp.join(ROOT, 'configs', 'det', 'mamba_yolo_t_shapes.py')
    cfg = Config.fromfile(config)
    torch.manual_seed(0)
    model = init_detector(cfg, None, device='cpu')
    path = str(tmp_path_factory.mktemp('ckpt') / 'mamba.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(
        dataset_meta=dict(classes=CLASSES), cfg=cfg.pretty_text,
        experiment_name='mamba_yolo_t_shapes_20250101_120000')), path)
    return path


def test_wrong_model_checkpoint_exits_non_zero(mamba_checkpoint, images,
                                               tmp_path):
    out = tmp_path / 'out'
    proc = _run(str(images), '--config', CONFIG, '--weights',
                mamba_checkpoint, '--device', 'cpu', '--out-dir', str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line, = [ln for ln in proc.stderr.splitlines() if ln.startswith('error')]
    assert f'checkpoint {mamba_checkpoint} does not fit the model of ' \
        f'{CONFIG}' in line
    assert 'missing (first: backbone.' in line
    assert 'saved from configs/det/mamba_yolo_t_shapes.py ' \
        '(densekit.MambaYOLO, densekit.MambaYOLOPAFPN)' in line
    assert '--no-strict' in line
    assert not out.exists()
    # the rare case: load what fits, with a warning
    proc = _run(str(images), '--config', CONFIG, '--weights',
                mamba_checkpoint, '--device', 'cpu', '--out-dir', str(out),
                '--no-strict')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'strict=False: loading the' in proc.stdout + proc.stderr


def test_plural_class_names():
    demo = _load_demo()
    assert [demo.plural(n) for n in (
        'bus', 'sandwich', 'circle', 'person', 'hot dog', 'toothbrush',
        'knife', 'skis', 'wine glass', 'cherry', 'toy')] == [
        'buses', 'sandwiches', 'circles', 'people', 'hot dogs',
        'toothbrushes', 'knives', 'skis', 'wine glasses', 'cherries',
        'toys']
    from densekit.apis import DetResult
    result = DetResult(np.zeros((3, 4), np.float32), np.ones(3, np.float32),
                       np.array([5, 5, 1]), ['bus', 'bus', 'cat'], (8, 8))
    assert demo.describe(result) == '1 cat, 2 buses'

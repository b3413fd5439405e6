"""SegInferencer, draw_segmentation, build_inferencer and the image/video
demos on segmentation configs (UPerNet and DToP)."""
import glob
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from densekit.apis import (DetInferencer, SegInferencer, SegResult,
                           build_inferencer, draw_segmentation)
from densekit.datasets.synthetic.shapes_seg import SHAPES_SEG_CLASSES
from tests.conftest import ROOT, run_tool

UPERNET = osp.join(ROOT, 'configs', 'seg', 'upernet_yolov8-n_shapes.py')
DTOP = osp.join(ROOT, 'configs', 'seg', 'dtop_vit-t-p8_shapes.py')


@pytest.fixture(scope='module')
def seg_images(tmp_path_factory):
    from densekit.datasets.synthetic import generate_shapes_ade
    out = tmp_path_factory.mktemp('shapes_seg')
    generate_shapes_ade(str(out), num_train=2, num_val=3, img_size=96,
                        seed=3)
    return sorted(glob.glob(str(out / 'images' / 'validation' / '*.jpg')))


def random_checkpoint(config, path):
    cfg = Config.fromfile(config)
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return str(path)


@pytest.fixture(scope='module')
def upernet_ckpt(tmp_path_factory):
    return random_checkpoint(UPERNET,
                             tmp_path_factory.mktemp('ck') / 'upernet.pth')


def test_seg_inferencer_returns_full_size_label_maps(seg_images,
                                                     upernet_ckpt):
    inferencer = SegInferencer(UPERNET, upernet_ckpt, device='cpu')
    assert inferencer.classes == SHAPES_SEG_CLASSES  # from the config
    results = inferencer(seg_images[:2])
    assert len(results) == 2
    for path, result in zip(seg_images, results):
        assert isinstance(result, SegResult)
        assert result.img_path == path
        assert result.label_map.shape == (96, 96) == result.img_shape
        assert result.label_map.min() >= 0
        assert result.label_map.max() < len(SHAPES_SEG_CLASSES)
        assert set(result.timings_ms) == {'preprocess', 'inference',
                                          'postprocess'}
        assert abs(sum(result.class_fractions().values()) - 1) < 1e-6
    array = inferencer(cv2.imread(seg_images[0]))
    assert np.array_equal(array.label_map, results[0].label_map)


def test_draw_segmentation_overlays_and_writes_a_legend():
    label_map = np.zeros((64, 80), dtype=np.int64)
    label_map[20:50, 30:70] = 2
    result = SegResult(label_map=label_map, classes=SHAPES_SEG_CLASSES,
                       img_shape=(64, 80))
    img = np.full((64, 80, 3), 200, dtype=np.uint8)
    palette = [(10, 10, 10), (0, 255, 0), (255, 0, 0), (0, 0, 255),
               (255, 255, 0)]
    vis = draw_segmentation(img, result, palette, alpha=0.5, legend=False)
    # square pixels are blended with red (BGR (0, 0, 255))
    assert tuple(vis[40, 60]) == (100, 100, 228)
    with_legend = draw_segmentation(img, result, palette)
    assert not np.array_equal(with_legend[:20, :40], vis[:20, :40])
    assert np.array_equal(with_legend[40:, 40:], vis[40:, 40:])
    with pytest.raises(ValueError, match='differ'):
        draw_segmentation(img[:10], result)


def test_build_inferencer_picks_the_task(upernet_ckpt):
    assert isinstance(build_inferencer(UPERNET, upernet_ckpt, device='cpu'),
                      SegInferencer)
    det = build_inferencer(osp.join(ROOT, 'configs', 'det',
                                    'yolov8_n_shapes.py'), device='cpu')
    assert isinstance(det, DetInferencer)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        build_inferencer('configs/seg/nope.py')


@pytest.mark.parametrize('config', [UPERNET, DTOP])
def test_image_demo_segments(config, seg_images, tmp_path):
    ckpt = random_checkpoint(config, tmp_path / 'model.pth')
    out = tmp_path / 'out'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    res = run_tool(['demo/image_demo.py', *seg_images, '--config', config,
                    '--weights', ckpt, '--out-dir', str(out)], env=env)
    assert res.returncode == 0, res.stdout[-3000:]
    assert 'image 1/3' in res.stdout and '%' in res.stdout
    assert len(glob.glob(str(out / 'vis' / '*.jpg'))) == 3
    masks = sorted(glob.glob(str(out / 'masks' / '*.png')))
    assert len(masks) == 3
    mask = cv2.imread(masks[0], cv2.IMREAD_UNCHANGED)
    assert mask.shape == (96, 96) and mask.max() < 5
    with open(out / 'predictions.json') as f:
        predictions = json.load(f)
    assert len(predictions) == 3
    assert abs(sum(predictions[0]['class_fractions'].values()) - 1) < 1e-3
    assert predictions[0]['mask'].startswith('masks')


def test_video_demo_segments(tmp_path, upernet_ckpt):
    video = tmp_path / 'clip.mp4'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 10,
                             (96, 64))
    for k in range(4):
        frame = np.full((64, 96, 3), 120, np.uint8)
        cv2.circle(frame, (20 + 10 * k, 32), 12, (0, 0, 255), -1)
        writer.write(frame)
    writer.release()
    out = tmp_path / 'seg.mp4'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    res = run_tool(['demo/video_demo.py', str(video), '--config', UPERNET,
                    '--weights', upernet_ckpt, '--out', str(out)], env=env)
    assert res.returncode == 0, res.stdout[-3000:]
    capture = cv2.VideoCapture(str(out))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 4

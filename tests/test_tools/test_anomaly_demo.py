"""demo/image_demo.py and demo/video_demo.py on an EfficientAD config.

The demos' ``main(argv)`` runs in this process: a subprocess would spend
more time importing torch, mmdet and mmseg than scoring the few images
(``test_image_demo.py`` and ``test_video_demo.py`` run the scripts as
commands).
"""
import importlib.util
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT
from tests.test_apis.test_anomaly_inferencer import (CONFIG, IMG_SIZE,
                                                     make_checkpoint,
                                                     make_images)


def _run_demo(name, args, capsys):
    """``demo/<name>.py`` main(args) -> (exit status, stdout)."""
    spec = importlib.util.spec_from_file_location(
        name, osp.join(ROOT, 'demo', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    capsys.readouterr()
    status = module.main([str(a) for a in args])
    return status, capsys.readouterr().out


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp('ckpt') / 'ead.pth')


def test_image_demo_writes_maps_and_decisions(checkpoint, tmp_path, capsys):
    images = make_images(tmp_path / 'data')
    out = tmp_path / 'out'
    status, stdout = _run_demo(
        'image_demo', [*images, '--config', CONFIG, '--weights', checkpoint,
                       '--device', 'cpu', '--score-thr', '0.25', '--out-dir',
                       out], capsys)
    assert status == 0, stdout[-3000:]
    lines = stdout.splitlines()
    image_lines = [line for line in lines if line.startswith('image ')]
    assert len(image_lines) == 2
    assert f': {IMG_SIZE}x{IMG_SIZE} score ' in image_lines[0]
    assert '(thr 0.25)' in image_lines[0]
    predictions = json.loads((out / 'predictions.json').read_text())
    assert [p['file'] for p in predictions] == list(images)
    for path, record in zip(images, predictions):
        assert record['threshold'] == 0.25 and record['calibrated']
        assert record['is_anomalous'] == (record['score'] >= 0.25)
        decision = 'ANOMALOUS' if record['is_anomalous'] else 'normal'
        assert any(path in line and decision in line for line in lines)
        anomaly_map = np.load(out / record['map'])
        assert anomaly_map.shape == (IMG_SIZE, IMG_SIZE)
        assert anomaly_map.dtype == np.float32
        # the score is the map's maximum (nelson1425's image score)
        assert abs(anomaly_map.max() - record['score']) <= 1e-5
        # vis/<name>.jpg and maps/<name>.npy share the deduplicated name
        name = osp.splitext(osp.basename(record['map']))[0]
        vis = cv2.imread(str(out / 'vis' / f'{name}.jpg'))
        assert vis.shape == (IMG_SIZE, IMG_SIZE, 3)
        assert not np.array_equal(vis, cv2.imread(path))
    assert sorted(os.listdir(out / 'maps')) == ['000.npy', '000_1.npy']
    anomalous = sum(p['is_anomalous'] for p in predictions)
    assert f'{anomalous}/2 image(s) anomalous (score >= 0.25)' in stdout
    assert 'vis/, maps/, predictions.json' in stdout


def test_video_demo_writes_frame_scores(checkpoint, tmp_path, capsys):
    video = tmp_path / 'clip.mp4'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 10,
                             (96, 64))
    for k in range(2):
        frame = np.full((64, 96, 3), 120, np.uint8)
        cv2.circle(frame, (20 + 20 * k, 32), 10, (0, 0, 255), -1)
        writer.write(frame)
    writer.release()
    out = tmp_path / 'scored.mp4'
    status, stdout = _run_demo(
        'video_demo', [video, '--config', CONFIG, '--weights', checkpoint,
                       '--device', 'cpu', '--out', out], capsys)
    assert status == 0, stdout[-3000:]
    capture = cv2.VideoCapture(str(out))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames == 2
    records = [json.loads(line) for line in
               (tmp_path / 'scored.jsonl').read_text().splitlines()]
    assert [r['frame'] for r in records] == [1, 2]
    for record in records:
        assert record['threshold'] == 0.3  # the documented default
        assert record['is_anomalous'] == (record['score'] >= 0.3)
    anomalous = sum(r['is_anomalous'] for r in records)
    assert f'{anomalous}/2 frame(s) anomalous (score >= 0.3)' in stdout

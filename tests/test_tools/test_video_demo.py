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
WIDTH, HEIGHT = 128, 96


def _run(*args):
    # one OpenMP thread: two slow down ~50x when another process holds a core
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, 'demo/video_demo.py', *args],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=300)


def _count_frames(path):
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f'cannot open {path}'
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    from mmdet.apis import init_detector
    torch.manual_seed(0)
    model = init_detector(Config.fromfile(CONFIG), None, device='cpu')
    path = str(tmp_path_factory.mktemp('ckpt') / 'yolov8_n.pth')
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(
                dataset_meta=dict(
                    classes=('circle', 'square', 'triangle', 'star')))),
        path)
    return path


@pytest.fixture(scope='module')
def video(tmp_path_factory):
    """A 5-frame 128x96 mp4v video of a moving square."""
    path = tmp_path_factory.mktemp('video') / 'clip.mp4'
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*'mp4v'), 10, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for i in range(5):
        frame = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
        cv2.rectangle(frame, (10 + 15 * i, 30), (40 + 15 * i, 60),
                      (0, 200, 255), -1)
        writer.write(frame)
    writer.release()
    assert len(_count_frames(path)) == 5
    return path


def test_writes_every_frame_annotated(checkpoint, video, tmp_path):
    out = tmp_path / 'out' / 'annotated.mp4'
    proc = _run(str(video), '--config', CONFIG, '--weights', checkpoint,
                '--out', str(out), '--device', 'cpu', '--score-thr', '0.0')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    frames = _count_frames(out)
    assert len(frames) == 5
    assert frames[0].shape == (HEIGHT, WIDTH, 3)
    summary = proc.stdout.strip().splitlines()[-1]
    assert '5 frames' in summary and 'FPS' in summary
    assert 'median latency' in summary and str(out) in summary


def test_max_frames(checkpoint, video, tmp_path):
    out = tmp_path / 'three.mp4'
    proc = _run(str(video), '--config', CONFIG, '--weights', checkpoint,
                '--out', str(out), '--max-frames', '3')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(_count_frames(out)) == 3


def test_missing_or_corrupt_video_fails_naming_it(tmp_path):
    missing = tmp_path / 'missing.mp4'
    proc = _run(str(missing), '--config', CONFIG, '--weights', 'unused.pth')
    assert proc.returncode != 0
    assert 'missing.mp4' in proc.stderr

    corrupt = tmp_path / 'corrupt.mp4'
    corrupt.write_bytes(b'\x00not a video' * 100)
    proc = _run(str(corrupt), '--config', CONFIG, '--weights', 'unused.pth')
    assert proc.returncode != 0
    assert 'corrupt.mp4' in proc.stderr


STREAM_CONFIG = osp.join(ROOT, 'configs', 'stream',
                         'streamyolo_yolov8-n_moving-shapes.py')


@pytest.fixture(scope='module')
def stream_checkpoint(tmp_path_factory):
    from mmdet.apis import init_detector
    torch.manual_seed(0)
    model = init_detector(Config.fromfile(STREAM_CONFIG), None, device='cpu')
    path = str(tmp_path_factory.mktemp('ckpt') / 'streamyolo.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(
        dataset_meta=dict(classes=('circle', 'square', 'triangle',
                                   'star')))), path)
    return path


def test_streaming_replay_of_a_forecasting_model(stream_checkpoint, video,
                                                 tmp_path):
    out = tmp_path / 'stream.mp4'
    # 10 FPS video, 0.15 s per frame = 1.5 frame intervals: frames 0, 1, 3
    # are processed (frame 4's output would finish after the end), 2 and 4
    # dropped; frames 0-1 show nothing, 2 shows frame 0's forecast
    proc = _run(str(video), '--streaming', '--config', STREAM_CONFIG,
                '--weights', stream_checkpoint, '--out', str(out),
                '--device', 'cpu', '--fixed-runtime', '0.15')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    frames = _count_frames(out)
    assert len(frames) == 5 and frames[0].shape == (HEIGHT, WIDTH, 3)
    summary = proc.stdout.strip().splitlines()[-1]
    assert 'streamed 5 frames at 10 FPS' in summary, summary
    assert 'forecasting t+1' in summary
    assert '3 processed, 2 dropped' in summary
    assert 'median end-to-end latency 150.0ms' in summary


def test_streaming_options_need_streaming(video):
    proc = _run(str(video), '--config', CONFIG, '--weights', 'x.pth',
                '--fixed-runtime', '0.1')
    assert proc.returncode != 0 and '--streaming' in proc.stderr

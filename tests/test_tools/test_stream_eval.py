"""tools/stream/stream_eval.py and densekit.apis.stream_detector on a tiny
generated Argoverse-HD-format fixture (2 sequences x 4 frames).

Each frame holds a static square and a circle moving 10 px per frame (8x8
boxes, IoU 0 with the previous position); see
tests/test_evaluation/test_streaming_ap.py for the hand computation of AP.
"""
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

from densekit.apis import FrameDetector, MMDetFrameDetector, run_stream_replay
from tests.conftest import ROOT

CONFIG = osp.join(ROOT, 'configs', 'det', 'yolov8_n_shapes.py')
CLASSES = ('circle', 'square', 'triangle', 'star')
WIDTH, HEIGHT, NUM_FRAMES, FPS = 64, 48, 4, 30.0
STATIC = [40.0, 30.0, 8.0, 8.0]


def _moving(fid):
    return [10.0 * fid, 10.0, 8.0, 8.0]


@pytest.fixture(scope='module')
def stream_data(tmp_path_factory):
    """data_root with frames/<seq>/<fid:06d>.jpg and annotations/val.json
    in the Argoverse-HD format (sequences, seq_dirs, sid, fid, track)."""
    root = tmp_path_factory.mktemp('argoverse_hd')
    images, anns = [], []
    sequences = ['seq_a', 'seq_b']
    seq_dirs = [f'frames/{name}' for name in sequences]
    for sid, seq_dir in enumerate(seq_dirs):
        os.makedirs(root / seq_dir)
        for fid in range(NUM_FRAMES):
            img_id = len(images)
            name = f'{fid:06d}.jpg'
            frame = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
            for box, cat, track in ((STATIC, 1, 0), (_moving(fid), 0, 1)):
                x, y, w, h = (int(v) for v in box)
                cv2.rectangle(frame, (x, y), (x + w, y + h), (0, 200, 255),
                              -1)
                anns.append(dict(id=len(anns) + 1, image_id=img_id,
                                 bbox=list(box), category_id=cat,
                                 area=box[2] * box[3], iscrowd=0,
                                 track=sid * 10 + track))
            cv2.imwrite(str(root / seq_dir / name), frame)
            images.append(dict(id=img_id, file_name=name, name=name, sid=sid,
                               fid=fid, width=WIDTH, height=HEIGHT))
    os.makedirs(root / 'annotations')
    ann_file = root / 'annotations' / 'val.json'
    ann_file.write_text(json.dumps(dict(
        images=images, annotations=anns,
        categories=[dict(id=i, name=n) for i, n in enumerate(CLASSES)],
        sequences=sequences, seq_dirs=seq_dirs)))
    return str(root), str(ann_file)


class OracleDetector(FrameDetector):
    """Outputs the ground truth of its input frame (square 0.9, circle
    0.8) and records its calls."""
    classes = CLASSES

    def __init__(self, ann_file):
        with open(ann_file) as f:
            gt = json.load(f)
        self.anns = {}
        for ann in gt['annotations']:
            self.anns.setdefault(ann['image_id'], []).append(ann)
        self.resets = 0
        self.calls = []

    def reset(self):
        self.resets += 1

    def __call__(self, frame_bgr, frame_info):
        assert frame_bgr.shape == (HEIGHT, WIDTH, 3)
        self.calls.append((frame_info['seq_name'], frame_info['fid']))
        anns = self.anns[frame_info['img_id']]
        boxes = np.array([[a['bbox'][0], a['bbox'][1],
                           a['bbox'][0] + a['bbox'][2],
                           a['bbox'][1] + a['bbox'][3]] for a in anns])
        labels = np.array([a['category_id'] for a in anns])
        return boxes, np.where(labels == 1, 0.9, 0.8), labels


def test_replay_one_frame_late_hand_value(stream_data):
    data_root, ann_file = stream_data
    det = OracleDetector(ann_file)
    report = run_stream_replay(det, ann_file, data_root, fps=FPS,
                               fixed_runtime=1 / FPS)
    # per sequence: frames 0, 1, 2 processed (finish 1, 2, 3); frame 3's
    # output would finish at the end of the stream. Frame 0 is a miss,
    # frames 1-3 score the previous frame's boxes. COCO AP averages the
    # categories: square (static) 6 TPs of 8 -> recall 0.75 -> 76/101,
    # circle (moving) 0 TPs -> 0: sAP = 38/101; offline AP is perfect.
    assert report['sAP'] == pytest.approx(38 / 101, abs=1e-12)
    assert report['AP'] == pytest.approx(1.0)
    assert report['dropped_frames'] == 2
    assert report['missed_frames'] == 2
    assert report['processed_frames'] == 6 and report['num_frames'] == 8
    assert report['latency_ms_median'] == pytest.approx(1e3 / FPS)
    assert [s['input_fids'] for s in report['sequences']] == [[0, 1, 2]] * 2
    assert det.resets == 3  # warm-up + one per sequence
    # warm-up call on the first frame, then frames 0-3 of each (frame 3's
    # output is computed, then discarded)
    assert det.calls == [('seq_a', 0)] + [(s, f) for s in ('seq_a', 'seq_b')
                                           for f in range(4)]


def test_replay_max_seqs_and_perf_factor(stream_data):
    data_root, ann_file = stream_data
    report = run_stream_replay(OracleDetector(ann_file), ann_file, data_root,
                               fixed_runtime=3 / FPS, perf_factor=2.0,
                               max_seqs=1, warmup=0)
    # 1.5 frames: outputs of frames 0, 1 at 1.5, 3 -> frames 2, 3 score
    # them. COCO AP averages the categories: square 2 TPs of 4 (recall 0.5,
    # 51/101), circle none (0) -> 25.5/101
    assert [s['name'] for s in report['sequences']] == ['seq_a']
    assert report['sAP'] == pytest.approx(25.5 / 101, abs=1e-12)
    assert report['dropped_frames'] == 2


def test_replay_reports_missing_frames(stream_data, tmp_path):
    data_root, ann_file = stream_data
    with open(ann_file) as f:
        gt = json.load(f)
    gt['images'] = [img for img in gt['images']
                    if not (img['sid'] == 1 and img['fid'] == 2)]
    gap = tmp_path / 'gap.json'
    gap.write_text(json.dumps(gt))
    with pytest.raises(ValueError, match=r'seq_b \(sid 1\) lacks frames '
                       r'fid \[2\]'):
        run_stream_replay(OracleDetector(ann_file), str(gap), data_root,
                          fixed_runtime=0.0)
    with pytest.raises(FileNotFoundError, match='000000.jpg'):
        run_stream_replay(OracleDetector(ann_file), ann_file,
                          str(tmp_path), fixed_runtime=0.0)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    from mmdet.apis import init_detector
    torch.manual_seed(0)
    model = init_detector(Config.fromfile(CONFIG), None, device='cpu')
    path = str(tmp_path_factory.mktemp('ckpt') / 'yolov8_n.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=CLASSES))), path)
    return path


def test_adapter_plain_and_stream_hooks(checkpoint):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    det = MMDetFrameDetector(CONFIG, checkpoint, device='cpu')
    assert det.classes == CLASSES and not det.streaming
    frame = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    info = dict(img_id=0, sid=0, fid=0)
    bboxes, scores, labels = det(frame, info)
    assert bboxes.shape == (len(scores), 4) and labels.shape == scores.shape

    # documented hook: predict_stream(batch_inputs, batch_data_samples)
    seen = {}

    def predict_stream(inputs, samples):
        seen['shape'] = tuple(inputs.shape)
        out = DetDataSample(metainfo=samples[0].metainfo)
        out.pred_instances = InstanceData(
            bboxes=torch.tensor([[1., 2., 3., 4.], [5., 6., 7., 8.]]),
            scores=torch.tensor([0.9, 0.1]), labels=torch.tensor([2, 3]))
        return [out]

    resets = []
    det.model.predict_stream = predict_stream
    det.model.reset_stream = lambda: resets.append(1)
    det.streaming = True
    det.score_thr = 0.5
    det.reset()
    bboxes, scores, labels = det(frame, info)
    assert resets == [1]
    assert seen['shape'] == (1, 3, 256, 256)  # the config's test pipeline
    np.testing.assert_allclose(bboxes, [[1, 2, 3, 4]])
    assert labels.tolist() == [2] and scores.shape == (1, )


def test_cli_prints_table_and_writes_json(stream_data, checkpoint, tmp_path):
    data_root, ann_file = stream_data
    out = tmp_path / 'res' / 'stream.json'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, 'tools/stream/stream_eval.py', CONFIG, checkpoint,
         '--ann-file', ann_file, '--data-root', data_root,
         '--fixed-runtime', str(1.5 / FPS), '--device', 'cpu',
         '--out', str(out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for row in ('| sAP |', '| sAP50 |', '| sAP75 |', '| offline AP |',
                '| dropped frames | 4 |', '| median latency (ms) |',
                '| frames processed | 4/8 |'):
        assert row in proc.stdout, proc.stdout
    report = json.loads(out.read_text())
    # 1.5 frame intervals: frames 0 and 1 of each sequence (see
    # test_stream_simulation.py); frame 3's output comes after the end
    assert [s['input_fids'] for s in report['sequences']] == [[0, 1]] * 2
    np.testing.assert_allclose(
        [s['finish_times'] for s in report['sequences']],
        [[1.5 / FPS, 3 / FPS]] * 2)
    assert report['dropped_frames'] == 4
    assert report['latency_ms_median'] == pytest.approx(
        1e3 * 1.75 / FPS)  # latencies 1.5 and 2 frame intervals
    for key in ('sAP', 'sAP50', 'sAP75', 'AP'):
        assert 0.0 <= report[key] <= 1.0 or report[key] == -1


def test_cli_rejects_bad_paths(checkpoint, tmp_path):
    proc = subprocess.run(
        [sys.executable, 'tools/stream/stream_eval.py', CONFIG, checkpoint,
         '--ann-file', str(tmp_path / 'none.json'), '--data-root',
         str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        timeout=120)
    assert proc.returncode == 2
    assert 'none.json does not exist' in proc.stderr

"""Streaming AP: pairing, hand-computed sAP values, StreamingAPMetric.

The hand cases use one sequence of F frames with two 10x10 objects: a static
one and one moving 20 px per frame (IoU 0 with its position one frame
earlier). An "oracle" detector outputs both ground-truth boxes of its input
frame (static score 0.9, moving 0.8). With COCO's 101 recall thresholds and
all true positives ranked first, AP = (number of thresholds <= recall) / 101
= (floor(100 * recall) + 1) / 101 at every IoU threshold.
"""
import json
from fractions import Fraction

import numpy as np
import pytest
import torch

from densekit.evaluation.functional import (offline_coco_eval,
                                            pair_stream_predictions,
                                            simulate_stream,
                                            streaming_coco_eval)

FPS = 30.0
STATIC = [200.0, 200.0, 10.0, 10.0]  # x, y, w, h
CATEGORIES = [dict(id=0, name='person'), dict(id=1, name='car')]


def _moving(fid):
    return [20.0 * fid, 50.0, 10.0, 10.0]


def make_gt(num_seqs=1, num_frames=4):
    """Argoverse-HD-format ground truth; image ids start at 0 as in
    Argoverse-HD, annotation ids at 1 (pycocotools needs ids > 0)."""
    images, anns = [], []
    for sid in range(num_seqs):
        for fid in range(num_frames):
            img_id = sid * 100 + fid
            images.append(dict(id=img_id, file_name=f'{fid:06d}.jpg',
                               sid=sid, fid=fid, width=320, height=320))
            for box in (STATIC, _moving(fid)):
                anns.append(dict(id=len(anns) + 1, image_id=img_id,
                                 bbox=list(box), category_id=0,
                                 area=box[2] * box[3], iscrowd=0, track=0))
    return dict(images=images, annotations=anns, categories=CATEGORIES,
                sequences=[f'seq{s}' for s in range(num_seqs)],
                seq_dirs=[f'frames/seq{s}' for s in range(num_seqs)])


@pytest.fixture
def ann_file(tmp_path):
    path = tmp_path / 'val.json'
    path.write_text(json.dumps(make_gt()))
    return str(path)


def _xyxy(box):
    x, y, w, h = box
    return [x, y, x + w, y + h]


def oracle(fids):
    """Perfect per-frame outputs: both objects of each input frame."""
    return dict(
        fids=list(fids),
        bboxes=[np.array([_xyxy(STATIC), _xyxy(_moving(f))]) for f in fids],
        scores=[np.array([0.9, 0.8]) for _ in fids],
        labels=[np.array([0, 0]) for _ in fids])


def hand_ap(num_tp, num_gt):
    return (np.floor(100 * num_tp / num_gt + 1e-9) + 1) / 101


# ------------------------------------------------------------- pairing
def test_pairing_latest_finished_ties_count():
    frames = np.arange(5) / FPS
    finish = np.array([0.5, 1.0, 1.0, 3.2]) / FPS
    # frame 0: none; 1: ties with outputs 1 and 2 -> the latest (2);
    # 2, 3: still 2; 4: output 3
    assert pair_stream_predictions(frames, finish).tolist() == \
        [-1, 2, 2, 2, 3]
    assert pair_stream_predictions(frames, []).tolist() == [-1] * 5
    # round-off: 5/30 + 1/30 < 6/30 still counts for frame 6
    assert pair_stream_predictions([6 / FPS], [5 / FPS + 1 / FPS]) == [0]


def official_pairing(num_frames, fps, timestamps):
    """sap-toolkit ``det/streaming_eval.py``'s pairing (eta = 0): frame
    ``ii`` gets the latest output with ``timestamps[j] <= ii / fps``."""
    paired, tidx_p1 = [], 0
    for ii in range(num_frames):
        t = ii / fps
        while tidx_p1 < len(timestamps) and timestamps[tidx_p1] <= t:
            tidx_p1 += 1
        paired.append(tidx_p1 - 1)  # -1: no output yet (a miss)
    return paired


def test_pairing_is_exact_where_float_sums_drift():
    """Output j finishes (j + 1) / 30 s after frame 0: 39 back-to-back
    steps of exactly one frame interval. By hand every frame f gets output
    f - 1 (a tie: it finishes exactly at frame f). As floats, the running
    sum of 1/30 passes (j + 1) / 30 from j = 33 on, and a strict float
    comparison (the toolkit's) pairs frames 34-39 one output too early."""
    hand = [f - 1 for f in range(40)]
    exact = np.cumsum([Fraction(1, 30)] * 39).tolist()
    floats = np.cumsum([1 / 30] * 39)
    frames = [Fraction(f, 30) for f in range(40)]
    assert pair_stream_predictions(frames, exact).tolist() == hand
    # float inputs pair exactly as the official float loop does
    official = official_pairing(40, FPS, floats.tolist())
    assert pair_stream_predictions(np.arange(40) / FPS,
                                   floats).tolist() == official
    moved = [f for f in range(40) if official[f] != hand[f]]
    drift = max(abs(Fraction(float(t)) - e) for t, e in zip(floats, exact))
    print(f'float sums of 1/30: max drift {float(drift):.3e} s; frames '
          f'paired differently by float round-off: {moved}')
    assert moved == list(range(34, 40))
    # no tolerance: one float above the tie is after the frame
    assert pair_stream_predictions([Fraction(1, 5)],
                                   [np.nextafter(0.2, 1.0)]).tolist() == [-1]
    assert pair_stream_predictions([Fraction(1, 5)], [0.2]).tolist() == [0]


def test_simulated_exact_times_pair_as_by_hand():
    """Runtime 1.5 frames over 24 frames: output j finishes at 1.5 (j + 1)
    frames, so frame f gets output floor(2 f / 3) - 1, ties at f = 3, 6,
    ..., 21 included; sap-toolkit's float clock lands output 13 after
    frame 21 (and picks frame 11 instead of 12 at step 8)."""
    s = simulate_stream(24, FPS, 1.5 / FPS)
    hand = [2 * f // 3 - 1 for f in range(24)]
    frames = [Fraction(f, 30) for f in range(24)]
    assert pair_stream_predictions(frames,
                                   s.exact_finish_times).tolist() == hand
    from tests.test_evaluation.test_stream_simulation import \
        official_srt_schedule
    _, stamps = official_srt_schedule(24, FPS, 1.5 / FPS)
    official = official_pairing(24, FPS, stamps)
    moved = [(f, official[f], hand[f]) for f in range(24)
             if official[f] != hand[f]]
    print(f'official float clock + pairing vs exact (frame, official, '
          f'exact): {moved}')
    assert (21, 12, 13) in moved


def test_pairing_rejects_decreasing_finish_times():
    with pytest.raises(ValueError, match='output 2 finishes'):
        pair_stream_predictions([0.0], [0.1, 0.2, 0.15])
    with pytest.raises(ValueError, match=r'finish_times\[0\]'):
        pair_stream_predictions([0.0], [float('nan')])


# ---------------------------------------------------- hand-built cases
def test_zero_latency_sap_equals_offline_ap(ann_file):
    """(a) outputs finishing at their frame's arrival: sAP == AP, for an
    imperfect detector (jittered boxes, false positives, random scores)."""
    rng = np.random.default_rng(0)
    fids = list(range(4))
    pred = dict(fids=fids, finish_times=np.asarray(fids) / FPS,
                bboxes=[], scores=[], labels=[])
    for f in fids:
        gt = np.array([_xyxy(STATIC), _xyxy(_moving(f))])
        corner = rng.uniform(0, 280, (3, 2))
        false_pos = np.concatenate([corner, corner + 12], axis=1)
        boxes = np.concatenate([gt + rng.normal(0, 1.5, gt.shape),
                                false_pos])
        pred['bboxes'].append(boxes)
        pred['scores'].append(rng.uniform(0.05, 1, len(boxes)))
        pred['labels'].append(rng.integers(0, 2, len(boxes)))
    stream = streaming_coco_eval(ann_file, {0: pred}, FPS)
    offline = offline_coco_eval(ann_file, {0: pred})
    for suffix in ('', '50', '75', '_s', '_m', '_l'):
        assert stream['sAP' + suffix] == offline['AP' + suffix]
    assert 0 < stream['sAP'] < 1
    assert stream['num_missed'] == 0 and stream['num_in_time'] == 4
    assert stream['mean_frame_lag'] == 0


def test_one_frame_late_scores_the_hand_computed_value(ann_file):
    """(b) + (c) each output finishes one frame late (exactly at the next
    frame's time, a tie that counts). Frame 0 has no output: both its
    objects are misses. Frames 1-3 get the previous frame's boxes: the
    static one is a true positive (IoU 1), the moving one a false positive
    (IoU 0) and the moving object a miss. 3 TPs ranked first of 8 GT:
    recall 3/8 -> AP = 38/101 at every IoU threshold."""
    fids = np.arange(4)
    pred = dict(oracle(fids), finish_times=fids / FPS + 1 / FPS)
    stream = streaming_coco_eval(ann_file, {'seq0': pred}, FPS)
    offline = offline_coco_eval(ann_file, {'seq0': pred})
    assert offline['AP'] == pytest.approx(1.0)
    assert stream['sAP'] == pytest.approx(38 / 101, abs=1e-12)
    assert stream['sAP'] == pytest.approx(hand_ap(3, 8), abs=1e-12)
    assert stream['sAP50'] == stream['sAP75'] == stream['sAP']
    assert stream['sAP_s'] == stream['sAP']  # 10x10 boxes are small
    assert stream['sAP_m'] == stream['sAP_l'] == -1  # no such GT
    assert stream['num_missed'] == 1
    assert stream['num_in_time'] == 0
    assert stream['mean_frame_lag'] == 1.0


def test_frames_before_the_first_output_are_misses(ann_file):
    """(c) 2.5 frames of latency: frames 0, 1, 2 have no output yet (3
    misses); frame 3 gets frame 0's output: 1 TP of 8 GT -> 13/101."""
    fids = np.arange(4)
    pred = dict(oracle(fids), finish_times=(fids + 2.5) / FPS)
    stream = streaming_coco_eval(ann_file, {0: pred}, FPS)
    assert stream['num_missed'] == 3
    assert stream['sAP'] == pytest.approx(13 / 101, abs=1e-12)
    # no output at all: every frame is a miss, AP 0
    empty = dict(fids=[], finish_times=[], bboxes=[], scores=[], labels=[])
    none = streaming_coco_eval(ann_file, {0: empty}, FPS)
    assert none['num_missed'] == 4 and none['sAP'] == 0.0


def test_simulated_schedule_end_to_end(ann_file):
    """Runtime 1.5 frames over the 4-frame stream: outputs of frames 0 and
    1 finish at 1.5 and 3 (frame 3's at 4.5 > end is discarded). Frames 0,
    1 are misses, frame 2 gets output 0, frame 3 output 1 (tie): 2 static
    TPs of 8 GT -> recall 0.25 -> AP = 26/101."""
    s = simulate_stream(4, FPS, 1.5 / FPS)
    assert s.input_fids.tolist() == [0, 1]
    pred = dict(oracle(s.input_fids), finish_times=s.finish_times)
    stream = streaming_coco_eval(ann_file, {0: pred}, FPS)
    assert stream['num_missed'] == 2
    assert stream['sAP'] == pytest.approx(26 / 101, abs=1e-12)
    # the exact times (what StreamingAPMetric passes) score the same
    exact = streaming_coco_eval(
        ann_file, {0: dict(pred, finish_times=s.exact_finish_times)}, FPS)
    assert exact['num_missed'] == 2 and exact['sAP'] == stream['sAP']


def test_image_ids_and_cat_ids(ann_file):
    """Predictions by input image id, labels mapped through cat_ids."""
    pred = oracle(range(4))
    pred['img_ids'] = pred.pop('fids')  # image id == fid in sequence 0
    pred['labels'] = [np.array([1, 1]) for _ in range(4)]
    pred['finish_times'] = np.arange(4) / FPS
    # label 1 -> category 0 ('person', the GT's category)
    good = streaming_coco_eval(ann_file, {0: pred}, FPS, cat_ids=[1, 0])
    assert good['sAP'] == pytest.approx(1.0)
    wrong = streaming_coco_eval(ann_file, {0: pred}, FPS)  # label 1 -> car
    assert wrong['sAP'] == 0.0
    off = offline_coco_eval(ann_file, {0: pred}, cat_ids=[1, 0])
    assert off['AP'] == pytest.approx(1.0) and off['num_frames'] == 4
    everything = offline_coco_eval(
        ann_file, {0: dict(pred, img_ids=[0, 1], bboxes=pred['bboxes'][:2],
                           scores=pred['scores'][:2],
                           labels=pred['labels'][:2],
                           finish_times=pred['finish_times'][:2])},
        cat_ids=[1, 0], eval_frames='all')
    assert everything['num_frames'] == 4
    assert everything['AP'] == pytest.approx(hand_ap(4, 8), abs=1e-12)


# ----------------------------------------------------------- bad input
def _pred(**overrides):
    pred = dict(oracle(range(4)), finish_times=np.arange(4) / FPS)
    pred.update(overrides)
    return pred


@pytest.mark.parametrize('preds, match', [
    ({0: _pred(fids=[0, 1, 2, 9])}, r'seq0 \(sid 0\), output 3: input fid 9'),
    ({0: _pred(finish_times=np.array([0, 2, 1, 3]) / FPS)},
     r'seq0.*output 2 \(input fid 2\) finishes'),
    ({0: _pred(finish_times=np.array([0, 1, 2, 2.5]) / FPS)},
     r'seq0.*output 3: finishes .* before its input frame fid 3'),
    ({5: _pred()}, 'sequence 5'),
    ({'nope': _pred()}, "sequence 'nope'"),
    ({0: _pred(labels=[np.array([0, 2])] * 4)}, r'labels must be .*\[0, 2\)'),
    ({0: _pred(bboxes=[np.zeros((2, 5))] * 4)}, r'output 0 \(input fid 0\)'),
    ({0: _pred(scores=[np.ones(2)] * 3)}, '4 outputs but 3 entries'),
    ({0: {k: v for k, v in _pred().items() if k != 'finish_times'}},
     'finish_times'),
])
def test_bad_predictions_name_the_sequence(ann_file, preds, match):
    with pytest.raises(ValueError, match=match):
        streaming_coco_eval(ann_file, preds, FPS)


def test_missing_sequences_and_duplicates(tmp_path):
    path = tmp_path / 'two.json'
    path.write_text(json.dumps(make_gt(num_seqs=2)))
    with pytest.raises(ValueError, match=r"no predictions for sequences "
                       r"\['seq1'\]"):
        streaming_coco_eval(str(path), {0: _pred()}, FPS)
    # restricted to the predicted sequence it works
    out = streaming_coco_eval(str(path), {0: _pred()}, FPS, seqs=[0])
    assert out['num_frames'] == 4
    with pytest.raises(ValueError, match='outputs for input fid 1'):
        offline_coco_eval(str(path), {0: oracle([0, 1, 1])}, seqs=['seq0'])
    gt = make_gt()
    gt['images'][1]['fid'] = 0
    dup = tmp_path / 'dup.json'
    dup.write_text(json.dumps(gt))
    with pytest.raises(ValueError, match='several images with fid 0'):
        streaming_coco_eval(str(dup), {0: _pred()}, FPS)
    del gt['images'][2]['sid']
    dup.write_text(json.dumps(gt))
    with pytest.raises(ValueError, match='image id 2 .* has no "sid"'):
        streaming_coco_eval(str(dup), {0: _pred()}, FPS)


# ---------------------------------------------------- StreamingAPMetric
def _samples(sid, fids, with_runtime=None):
    out = []
    for f in fids:
        boxes = torch.tensor([_xyxy(STATIC), _xyxy(_moving(f))])
        sample = dict(
            sid=sid, fid=f, img_id=sid * 100 + f, cur_img_id=sid * 100 + f,
            pred_instances=dict(bboxes=boxes,
                                scores=torch.tensor([0.9, 0.8]),
                                labels=torch.tensor([0, 0])))
        if with_runtime is not None:
            sample['runtime'] = with_runtime
        out.append(sample)
    return out


def test_metric_one_frame_runtime(tmp_path):
    from densekit.registry import METRICS
    path = tmp_path / 'two.json'
    path.write_text(json.dumps(make_gt(num_seqs=2)))
    metric = METRICS.build(
        dict(type='densekit.StreamingAPMetric', ann_file=str(path),
             runtime=1 / FPS))
    metric.dataset_meta = dict(classes=('person', 'car'))
    # frames of both sequences, interleaved and out of order
    samples = _samples(1, [3, 1]) + _samples(0, [0, 1, 2, 3]) + \
        _samples(1, [0, 2])
    metric.process({}, samples)
    out = metric.evaluate(size=len(samples))
    # per sequence as the one-frame-late hand case (frame 3's output would
    # finish at the end of the stream: discarded = 1 dropped frame)
    assert out['stream/sAP'] == pytest.approx(38 / 101, abs=1e-12)
    assert out['stream/AP'] == pytest.approx(1.0)
    assert out['stream/dropped_frames'] == 2
    assert out['stream/missed_frames'] == 2
    assert out['stream/latency_ms_median'] == pytest.approx(1e3 / FPS)


def test_metric_runtime_key_and_perf_factor(ann_file):
    from densekit.evaluation import StreamingAPMetric

    # measured 3 frames, perf_factor 2 -> 1.5 frames: the end-to-end case
    metric = StreamingAPMetric(ann_file, runtime_key='runtime',
                               perf_factor=2.0)
    metric.process({}, _samples(0, range(4), with_runtime=3 / FPS))
    out = metric.evaluate(size=4)
    assert out['stream/sAP'] == pytest.approx(26 / 101, abs=1e-12)
    assert out['stream/dropped_frames'] == 2


def test_metric_errors(ann_file):
    from densekit.evaluation import StreamingAPMetric
    with pytest.raises(ValueError, match='exactly one latency model'):
        StreamingAPMetric(ann_file)
    with pytest.raises(ValueError, match='exactly one latency model'):
        StreamingAPMetric(ann_file, runtime=0.1, runtime_key='rt')
    with pytest.raises(ValueError, match='perf_factor'):
        StreamingAPMetric(ann_file, runtime=0.1, perf_factor=0)
    metric = StreamingAPMetric(ann_file, runtime_key='runtime')
    with pytest.raises(ValueError, match=r"lacks \['runtime'\]"):
        metric.process({}, _samples(0, [0]))
    bad = _samples(0, [0])
    del bad[0]['fid']
    with pytest.raises(ValueError, match='"sid" and "fid"'):
        StreamingAPMetric(ann_file, runtime=0.0).process({}, bad)
    # a gap inside the input stream: frame 1 picked but never predicted
    metric = StreamingAPMetric(ann_file, runtime=0.0)
    metric.process({}, _samples(0, [0, 2, 3]))
    with pytest.raises(ValueError, match=r'seq0 \(sid 0\).*frames \[1\]'):
        metric.evaluate(size=3)


def test_metric_under_mmengine_evaluator(ann_file):
    """DetDataSamples as a Runner's test loop hands them over."""
    from mmdet.structures import DetDataSample
    from mmengine.evaluator import Evaluator
    from mmengine.structures import InstanceData
    evaluator = Evaluator(
        dict(type='densekit.StreamingAPMetric', ann_file=ann_file,
             runtime=0.0))
    evaluator.dataset_meta = dict(classes=('person', 'car'))
    for entry in _samples(0, range(4)):
        sample = DetDataSample(metainfo=dict(
            sid=entry['sid'], fid=entry['fid'], img_id=entry['img_id'],
            cur_img_id=entry['cur_img_id']))
        sample.pred_instances = InstanceData(**entry['pred_instances'])
        evaluator.process([sample], dict())
    out = evaluator.evaluate(4)
    # zero latency, perfect boxes
    assert out['stream/sAP'] == pytest.approx(1.0)
    assert out['stream/AP'] == pytest.approx(1.0)
    assert out['stream/dropped_frames'] == 0

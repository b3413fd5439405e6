"""The synthetic moving-shapes videos in the Argoverse-HD layout."""
import importlib.util
import json
import os
import os.path as osp
import time

import cv2
import numpy as np
import pytest

from densekit.datasets import ArgoverseHDDataset
from densekit.datasets.synthetic import (MOTION_TYPES, MOVING_SHAPES_CLASSES,
                                         MOVING_SHAPES_METAINFO,
                                         generate_moving_shapes_argoverse,
                                         render_moving_shapes_sequence)
from densekit.datasets.synthetic.moving_shapes import (META_FILE,
                                                       MIN_VISIBLE_FRACTION)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = dict(num_train_seqs=2, num_val_seqs=1, frames_per_seq=5, img_size=64)


def _read_bytes(path):
    with open(path, 'rb') as f:
        return f.read()


def _all_files(root):
    return sorted(
        osp.relpath(osp.join(d, f), root) for d, _, files in os.walk(root)
        for f in files if f != META_FILE)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('moving'))
    return generate_moving_shapes_argoverse(out, seed=0, **TINY)


def test_layout_is_argoverse_hd(tiny):
    out = tiny['out_dir']
    assert tiny['ann_files'] == {
        s: osp.join(out, 'annotations', f'{s}.json') for s in ('train', 'val')
    }
    with open(tiny['ann_files']['train']) as f:
        data = json.load(f)
    assert {'images', 'annotations', 'categories', 'sequences',
            'seq_dirs'} <= set(data)
    assert data['sequences'] == data['seq_dirs'] == ['train_0000',
                                                     'train_0001']
    assert [c['name'] for c in data['categories']] == list(
        MOVING_SHAPES_CLASSES)
    assert [c['id'] for c in data['categories']] == [0, 1, 2, 3]
    assert [(i['id'], i['sid'], i['fid']) for i in data['images']] == [
        (q * 5 + f, q, f) for q in range(2) for f in range(5)]
    for img in data['images']:
        assert img['file_name'] == img['name'] == f'{img["fid"]:06d}.jpg'
        path = osp.join(out, 'frames', data['seq_dirs'][img['sid']],
                        img['file_name'])
        assert cv2.imread(path).shape == (64, 64, 3)
    ann_ids = [a['id'] for a in data['annotations']]
    assert ann_ids == list(range(1, len(ann_ids) + 1))
    assert all({'track', 'bbox', 'area', 'iscrowd', 'category_id'} <= set(a)
               for a in data['annotations'])
    # a track keeps its class, and tracks of different sequences differ
    cls_of, seq_of = {}, {}
    sid_of = {i['id']: i['sid'] for i in data['images']}
    for a in data['annotations']:
        assert cls_of.setdefault(a['track'], a['category_id']) == \
            a['category_id']
        assert seq_of.setdefault(a['track'], sid_of[a['image_id']]) == \
            sid_of[a['image_id']]


def test_dataset_reads_it(tiny):
    ds = ArgoverseHDDataset(
        data_root=tiny['out_dir'], ann_file='annotations/val.json',
        data_prefix=dict(img=tiny['img_prefix']),
        metainfo=MOVING_SHAPES_METAINFO)
    assert len(ds) == 4  # 1 sequence, fids 0..3 forecast 1..4
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        for path in [*info['past_img_paths'], info['img_path'],
                     info['future_img_path']]:
            assert osp.isfile(path)
        assert all(0 <= inst['trend_iou'] <= 1 for inst in info['instances'])
        assert all(inst['track_id'] >= 0 for inst in info['instances'])


def test_deterministic_and_reused(tiny, tmp_path):
    again = generate_moving_shapes_argoverse(str(tmp_path / 'a'), seed=0,
                                             **TINY)
    assert not again['reused']
    files = _all_files(tiny['out_dir'])
    assert files == _all_files(again['out_dir'])
    for rel in files:  # byte-identical JSON and JPEGs
        assert _read_bytes(osp.join(tiny['out_dir'], rel)) == _read_bytes(
            osp.join(again['out_dir'], rel)), rel
    assert generate_moving_shapes_argoverse(again['out_dir'], seed=0,
                                            **TINY)['reused']
    other = generate_moving_shapes_argoverse(str(tmp_path / 'b'), seed=1,
                                             **TINY)
    assert _read_bytes(other['ann_files']['train']) != _read_bytes(
        again['ann_files']['train'])
    # the val split does not depend on the number of train sequences
    more = generate_moving_shapes_argoverse(
        str(tmp_path / 'c'), seed=0, **dict(TINY, num_train_seqs=3))
    assert _read_bytes(more['ann_files']['val']) == _read_bytes(
        again['ann_files']['val'])


def test_changed_params_regenerate_and_foreign_dir_is_kept(tmp_path):
    out = str(tmp_path / 'd')
    generate_moving_shapes_argoverse(out, seed=0, **TINY)
    info = generate_moving_shapes_argoverse(out, seed=0,
                                            **dict(TINY, frames_per_seq=6))
    assert not info['reused']
    assert sorted(os.listdir(osp.join(out, 'frames', 'val_0000'))) == [
        f'{f:06d}.jpg' for f in range(6)]
    foreign = tmp_path / 'foreign'
    (foreign / 'frames').mkdir(parents=True)
    (foreign / 'frames' / 'mine.jpg').write_bytes(b'x')
    with pytest.raises(FileExistsError, match='no synthetic_meta.json'):
        generate_moving_shapes_argoverse(str(foreign), **TINY)


def test_boxes_match_the_drawn_pixels(tiny):
    """JSON boxes == bounding boxes of the rendered visible masks, and the
    JPEGs are the rendered frames."""
    with open(tiny['ann_files']['train']) as f:
        data = json.load(f)
    first_track = 0
    for q in range(2):
        seq = render_moving_shapes_sequence(
            [0, 0, q], num_frames=5, img_size=64)
        first_id = q * 5
        anns = [a for a in data['annotations']
                if first_id <= a['image_id'] < first_id + 5]
        assert len(anns) == int(seq.annotated.sum())
        for a in anns:
            fid, k = a['image_id'] - first_id, a['track'] - first_track
            assert seq.annotated[fid, k]
            ys, xs = np.nonzero(seq.masks[fid, k])
            assert a['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                 ys.max() - ys.min() + 1]
            assert a['area'] == len(xs)
            assert a['category_id'] == seq.labels[k]
        first_track += len(seq.labels)
        for fid in range(5):
            path = osp.join(tiny['frames_dir'], f'train_{q:04d}',
                            f'{fid:06d}.jpg')
            # the file is exactly the rendered frame, JPEG-encoded
            ok, jpg = cv2.imencode('.jpg', seq.frames[fid],
                                   [cv2.IMWRITE_JPEG_QUALITY, 95])
            assert ok and _read_bytes(path) == jpg.tobytes()


def test_visible_masks_and_motion():
    seq = render_moving_shapes_sequence([5], num_frames=60, img_size=128,
                                        min_objects=4, max_objects=4)
    f, k = seq.annotated.shape
    assert (f, k) == (60, 4)
    # visible masks are disjoint
    assert seq.masks.sum(1).max() <= 1
    # objects are annotated iff enough of them is visible
    assert seq.annotated.mean() > 0.5
    # several px per frame at 128 px (0.75-3 px base speed), and changing
    step = np.linalg.norm(np.diff(seq.centres, axis=0), axis=-1)
    assert 0.5 < step.mean() < 5
    accel = np.linalg.norm(np.diff(seq.centres, 2, axis=0), axis=-1)
    assert (accel > 0.05).mean() > 0.1
    # the objects stay inside the image
    assert (seq.centres >= 0).all() and (seq.centres <= 128).all()


def test_motion_types_occur():
    kinds = np.concatenate([
        render_moving_shapes_sequence([0, 0, q], num_frames=2,
                                      img_size=64).motions for q in range(12)
    ])
    assert set(kinds.tolist()) == set(range(len(MOTION_TYPES)))


def test_constant_speed_and_turning():
    seqs = [render_moving_shapes_sequence([0, 0, q], num_frames=30,
                                          img_size=256) for q in range(6)]
    const = [(s, i) for s in seqs for i in np.flatnonzero(
        s.motions == MOTION_TYPES.index('constant'))]
    turn = [(s, i) for s in seqs for i in np.flatnonzero(
        s.motions == MOTION_TYPES.index('turn'))]
    assert const and turn
    for s, i in const:
        speed = np.linalg.norm(np.diff(s.centres[:, i], axis=0), axis=1)
        # constant speed except at bounces (which mirror the position)
        assert (np.abs(speed - np.median(speed)) < 1e-6).mean() > 0.7
    for s, i in turn:
        vel = np.diff(s.centres[:, i], axis=0)
        heading = np.unwrap(np.arctan2(vel[:, 1], vel[:, 0]))
        assert np.ptp(heading) > np.deg2rad(20)


def test_min_visible_fraction_rule():
    seq = render_moving_shapes_sequence([2], num_frames=20, img_size=64,
                                        min_objects=5, max_objects=5)
    visible = seq.masks.reshape(20, 5, -1).sum(-1)
    # annotated objects have at least 8 visible pixels
    assert (visible[seq.annotated] >= 8).all()
    assert np.isnan(seq.boxes[~seq.annotated]).all()
    assert 0 < MIN_VISIBLE_FRACTION < 1


def test_default_size_is_fast(tmp_path):
    start = time.time()
    info = generate_moving_shapes_argoverse(
        str(tmp_path / 'fast'), num_train_seqs=2, num_val_seqs=0,
        frames_per_seq=60, img_size=256)
    elapsed = time.time() - start
    assert info['num_images'] == dict(train=120, val=0)
    assert elapsed < 10, f'120 frames at 256 px took {elapsed:.1f}s'


def test_val_sequences_can_be_longer(tmp_path):
    import json
    info = generate_moving_shapes_argoverse(
        str(tmp_path / 'v'), **dict(TINY, val_frames_per_seq=7))
    assert info['num_images'] == dict(train=10, val=7)
    with open(info['ann_files']['val']) as f:
        assert sorted(i['fid'] for i in json.load(f)['images']) == list(
            range(7))
    # the same options reuse the set; a different val length regenerates
    again = generate_moving_shapes_argoverse(
        str(tmp_path / 'v'), **dict(TINY, val_frames_per_seq=7))
    assert again['reused']
    other = generate_moving_shapes_argoverse(str(tmp_path / 'v'), **TINY)
    assert not other['reused'] and other['num_images']['val'] == 5


@pytest.mark.parametrize('kwargs,error', [
    (dict(num_train_seqs=-1), ValueError),
    (dict(frames_per_seq=1), ValueError),
    (dict(val_frames_per_seq=1), ValueError),
    (dict(img_size=16), ValueError),
    (dict(min_objects=3, max_objects=2), ValueError),
    (dict(seed=1.5), TypeError),
    (dict(max_size=60), ValueError),
    (dict(max_speed=40.0), ValueError),
])
def test_bad_args(tmp_path, kwargs, error):
    with pytest.raises(error):
        generate_moving_shapes_argoverse(str(tmp_path), **dict(TINY, **kwargs))


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'make_synthetic', osp.join(REPO_ROOT, 'tools', 'data',
                                   'make_synthetic.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_synthetic_cli(tmp_path, capsys):
    tool = _load_tool()
    out = str(tmp_path / 'cli')
    args = ['moving_shapes', '--out', out, '--num-train-seqs', '1',
            '--num-val-seqs', '1', '--frames-per-seq', '3', '--img-size',
            '64']
    tool.main(args)
    printed = capsys.readouterr().out
    assert 'train: 1 sequences, 3 frames' in printed
    assert osp.isfile(osp.join(out, 'annotations', 'val.json'))
    tool.main(args)
    assert 'reused existing dataset' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='frames_per_seq must be >= 2'):
        tool.main(args[:3] + ['--frames-per-seq', '1'])

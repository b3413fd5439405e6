"""ArgoverseHDDataset on a tiny hand-written file in the Argoverse-HD format.

Two sequences of 5 frames (64 x 64). In every frame of ``seq_a`` a car
(track 7) moves 2 px right per frame, box [10 + 2f, 20, 10, 10] (xywh), so
the IoU of consecutive boxes is 80 / 120 = 2/3; a person without a track id
stands still at [40, 40, 8, 8]. ``seq_a`` frame 2 also has a bicycle
(track 9, absent elsewhere) and a crowd box. ``seq_b`` has a truck (track
3) standing still.
"""
import json
import os.path as osp
import warnings

import numpy as np
import pytest

from densekit.datasets import ARGOVERSE_HD_CLASSES, ArgoverseHDDataset
from densekit.datasets.argoverse_hd_dataset import pairwise_iou, trend_ious
from densekit.registry import DATASETS

CAR, PERSON, BICYCLE, TRUCK = 2, 0, 1, 5  # Argoverse-HD category ids


def make_argoverse_json(num_frames=5):
    """The fixture's annotation dict (see the module docstring)."""
    images, anns = [], []

    def add_ann(image_id, bbox, cat, **extra):
        anns.append(dict(id=len(anns) + 1, image_id=image_id, bbox=bbox,
                         category_id=cat, area=bbox[2] * bbox[3], iscrowd=0,
                         **extra))

    for sid in range(2):
        for fid in range(num_frames):
            image_id = len(images)
            images.append(dict(id=image_id, sid=sid, fid=fid,
                               file_name=f'{fid:06d}.jpg',
                               name=f'{fid:06d}.jpg', width=64, height=64))
            if sid == 0:
                add_ann(image_id, [10 + 2 * fid, 20, 10, 10], CAR, track=7)
                add_ann(image_id, [40, 40, 8, 8], PERSON)
                if fid == 2:
                    add_ann(image_id, [2, 50, 6, 6], BICYCLE, track=9)
                    anns.append(dict(id=len(anns) + 1, image_id=image_id,
                                     bbox=[30, 2, 10, 5], category_id=CAR,
                                     area=50, iscrowd=1, track=11))
            else:
                add_ann(image_id, [5, 5, 20, 12], TRUCK, track=3)
    return dict(
        images=images, annotations=anns,
        categories=[dict(id=i, name=n)
                    for i, n in enumerate(ARGOVERSE_HD_CLASSES)],
        sequences=['seq_a', 'seq_b'],
        seq_dirs=['train/seq_a/ring_front_center',
                  'train/seq_b/ring_front_center'])


def write(tmp_path, data, name='ann.json'):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def build(tmp_path, data=None, **kwargs):
    data = make_argoverse_json() if data is None else data
    kwargs.setdefault('data_prefix', dict(img='tracking/'))
    return ArgoverseHDDataset(
        data_root=str(tmp_path), ann_file=write(tmp_path, data), **kwargs)


def frame(tmp_path, seq, fid):
    return osp.join(str(tmp_path), 'tracking', 'train', seq,
                    'ring_front_center', f'{fid:06d}.jpg')


def test_registered():
    assert DATASETS.get('ArgoverseHDDataset') is ArgoverseHDDataset


def test_default_samples(tmp_path):
    ds = build(tmp_path)
    # 4 samples per sequence: fid 4 has no fid 5 to forecast.
    assert len(ds) == 8
    info = ds.get_data_info(0)
    assert info['img_path'] == frame(tmp_path, 'seq_a', 0)
    # t - 1 precedes the sequence: the first frame is repeated
    assert info['past_img_paths'] == [frame(tmp_path, 'seq_a', 0)]
    assert info['future_img_path'] == frame(tmp_path, 'seq_a', 1)
    assert (info['img_id'], info['cur_img_id']) == (1, 0)
    assert (info['sid'], info['fid'], info['seq_name']) == (0, 0, 'seq_a')

    info = ds.get_data_info(1)  # t = 1 -> target frame 2
    assert info['past_img_paths'] == [frame(tmp_path, 'seq_a', 0)]
    assert info['img_id'] == 2 and info['cur_img_id'] == 1
    insts = info['instances']
    assert [i['bbox_label'] for i in insts] == [2, 0, 1, 2]
    assert insts[0]['bbox'] == [14.0, 20.0, 24.0, 30.0]
    assert [i['track_id'] for i in insts] == [7, -1, 9, 11]
    assert [i['ignore_flag'] for i in insts] == [0, 0, 0, 1]
    trend = [i['trend_iou'] for i in insts]
    # car: same track, shifted 2 px -> 80 / 120; person: no track, same
    # class and box at t -> 1; bicycle: track 9 absent at t and no bicycle
    # at t -> 0; crowd car (track 11 absent at t): max IoU with the car at t
    # ([12, 20, 22, 30] vs [30, 2, 40, 7]) -> 0
    np.testing.assert_allclose(trend, [2 / 3, 1.0, 0.0, 0.0], atol=1e-6)

    info = ds.get_data_info(4)  # first sample of seq_b
    assert (info['seq_name'], info['sid'], info['img_id']) == ('seq_b', 1, 6)
    assert info['img_path'] == frame(tmp_path, 'seq_b', 0)
    assert info['instances'][0]['trend_iou'] == pytest.approx(1.0)


def test_past_window_and_offset(tmp_path):
    ds = build(tmp_path, num_past_frames=2, frame_stride=2, forecast_offset=2)
    assert len(ds) == 6  # t = 0, 1, 2 per sequence
    info = ds.get_data_info(2)  # seq_a, t = 2
    assert info['fid'] == 2 and info['past_fids'] == [0, 0]
    assert info['future_img_path'] == frame(tmp_path, 'seq_a', 4)
    assert info['img_id'] == 4 and info['cur_img_id'] == 2
    # car box at 4 ([18, 20, 28, 30]) vs at 2 ([14, 20, 24, 30]): 60 / 140
    assert info['instances'][0]['trend_iou'] == pytest.approx(60 / 140)

    ds = build(tmp_path, num_past_frames=3, frame_stride=1, forecast_offset=1)
    info = ds.get_data_info(3)  # seq_a, t = 3
    assert info['past_fids'] == [0, 1, 2]
    assert info['past_img_paths'] == [
        frame(tmp_path, 'seq_a', f) for f in (0, 1, 2)]


def test_no_forecast_is_still_detection(tmp_path):
    ds = build(tmp_path, forecast_offset=0, num_past_frames=0)
    assert len(ds) == 10
    info = ds.get_data_info(3)
    assert info['img_id'] == info['cur_img_id'] == 3
    assert info['past_img_paths'] == []
    assert info['future_img_path'] == info['img_path']
    assert [i['trend_iou'] for i in info['instances']] == [1.0, 1.0]


def test_gap_is_reported_and_spanning_samples_skipped(tmp_path):
    data = make_argoverse_json()
    data['images'] = [
        img for img in data['images'] if (img['sid'], img['fid']) != (1, 2)
    ]
    data['annotations'] = [a for a in data['annotations']
                           if a['image_id'] != 7]
    with pytest.warns(UserWarning, match=r"sequence 'seq_b' .* missing fids "
                      r'2 \(of 0-4\); skipped the 2 samples') as record:
        ds = build(tmp_path, data)
    assert len([w for w in record if 'seq_a' in str(w.message)]) == 0
    seq_b = [ds.get_data_info(i) for i in range(len(ds))
             if ds.get_data_info(i)['sid'] == 1]
    # t = 1 (target 2 missing) and t = 3 (past frame 2 missing) are skipped
    assert [info['fid'] for info in seq_b] == [0]
    assert ds.skipped_by_gap == {'seq_b': 2}


def test_gap_range_in_message(tmp_path):
    data = make_argoverse_json(num_frames=8)
    data['images'] = [
        img for img in data['images']
        if not (img['sid'] == 0 and img['fid'] in (2, 3, 4))
    ]
    kept = {img['id'] for img in data['images']}
    data['annotations'] = [
        a for a in data['annotations'] if a['image_id'] in kept]
    with pytest.warns(UserWarning, match=r"'seq_a' .* missing fids 2-4"):
        build(tmp_path, data)


def test_out_of_order_frames_are_reordered(tmp_path):
    ordered = build(tmp_path)
    data = make_argoverse_json()
    seq_a = data['images'][:5]
    data['images'] = [seq_a[3], seq_a[0], seq_a[4], seq_a[1], seq_a[2]
                      ] + data['images'][5:]
    with pytest.warns(UserWarning,
                      match=r"frames of sequence 'seq_a' \(sid 0\) are not "
                      'in fid order') as record:
        shuffled = build(tmp_path, data)
    assert not any('seq_b' in str(w.message) for w in record)
    assert [shuffled.get_data_info(i) for i in range(len(shuffled))] == [
        ordered.get_data_info(i) for i in range(len(ordered))
    ]


def test_ordered_file_gives_no_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        build(tmp_path)


def test_duplicate_fid_is_an_error(tmp_path):
    data = make_argoverse_json()
    data['images'][8]['fid'] = 1  # seq_b has fid 1 twice (ids 6 and 8)
    with pytest.raises(ValueError,
                       match=r"sequence 'seq_b' \(sid 1\).* has fid 1 more "
                       r'than once \(image ids \[6, 8\]\)'):
        build(tmp_path, data)


def test_bad_sid_names_the_image(tmp_path):
    data = make_argoverse_json()
    data['images'][3]['sid'] = 5
    with pytest.raises(ValueError,
                       match=r'image id 3 \(000003.jpg\) in .*ann.json has '
                       r'sid 5, but seq_dirs has 2 entries'):
        build(tmp_path, data)


@pytest.mark.parametrize('key', ['seq_dirs', 'sequences', 'images'])
def test_missing_top_level_key(tmp_path, key):
    data = make_argoverse_json()
    del data[key]
    with pytest.raises(ValueError, match=f'ann.json has no top-level key '
                       f'"{key}"'):
        build(tmp_path, data)


def test_missing_image_key_names_the_image(tmp_path):
    data = make_argoverse_json()
    del data['images'][2]['fid']
    with pytest.raises(ValueError, match=r'image #2 \(id 2\) .* lacks '
                       r"\['fid'\]"):
        build(tmp_path, data)


def test_annotation_of_unknown_image(tmp_path):
    data = make_argoverse_json()
    data['annotations'][0]['image_id'] = 99
    with pytest.raises(ValueError, match='annotation id 1 .* image_id 99'):
        build(tmp_path, data)


def test_official_name_key(tmp_path):
    data = make_argoverse_json()
    for img in data['images']:
        del img['file_name']  # the official files only have "name"
    ds = build(tmp_path, data)
    assert ds.get_data_info(0)['img_path'] == frame(tmp_path, 'seq_a', 0)


def test_custom_metainfo(tmp_path):
    ds = build(tmp_path, metainfo=dict(classes=('car', 'person')))
    labels = [i['bbox_label'] for i in ds.get_data_info(1)['instances']]
    assert labels == [0, 1, 0]  # the bicycle is not a class here
    assert ds.metainfo['classes'] == ('car', 'person')
    # ' ' and '_' are the same ('traffic light' == 'traffic_light')
    build(tmp_path, metainfo=dict(classes=('traffic light', )))
    with pytest.raises(ValueError, match=r"classes \['circle'\] of metainfo "
                       'are not among the categories'):
        build(tmp_path, metainfo=dict(classes=('circle', 'car')))


def test_filter_empty_gt(tmp_path):
    data = make_argoverse_json()
    data['annotations'] = [a for a in data['annotations']
                           if a['image_id'] != 7]  # seq_b fid 2 unlabelled
    ds = build(tmp_path, data, filter_cfg=dict(filter_empty_gt=True))
    assert 7 not in [ds.get_data_info(i)['img_id'] for i in range(len(ds))]
    assert len(ds) == 7
    ds = build(tmp_path, data, filter_cfg=dict(filter_empty_gt=True),
               test_mode=True)
    assert len(ds) == 8


@pytest.mark.parametrize('kwargs,error', [
    (dict(num_past_frames=-1), ValueError),
    (dict(frame_stride=0), ValueError),
    (dict(forecast_offset=1.5), TypeError),
    (dict(data_prefix=dict(img_path='')), ValueError),
])
def test_bad_args(tmp_path, kwargs, error):
    with pytest.raises(error):
        build(tmp_path, **kwargs)


def test_trend_ious_by_hand():
    target = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 4, 4.]])
    cur = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 25, 30, 35.]])
    np.testing.assert_allclose(
        pairwise_iou(target, cur),
        [[50 / 150, 1, 0], [0, 0, 50 / 150], [0, 16 / 100, 0]])
    trend = trend_ious(target, np.array([0, 1, 0]), np.array([4, -1, 8]),
                       cur, np.array([0, 0, 1]), np.array([4, 5, -1]))
    # 0: track 4 at t -> its IoU (1/3), not the class max (1)
    # 1: no track -> max IoU over class-1 boxes at t -> 1/3
    # 2: track 8 absent -> max over class 0 -> 0.16
    np.testing.assert_allclose(trend, [1 / 3, 1 / 3, 0.16], rtol=1e-6)
    assert trend_ious(target, np.zeros(3), -np.ones(3), np.zeros((0, 4)),
                      np.zeros(0), np.zeros(0)).tolist() == [0, 0, 0]


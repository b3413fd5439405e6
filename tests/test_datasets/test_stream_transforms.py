"""LoadStreamFrames, LoadStreamAnnotations, StreamFilterAnnotations and
PackStreamInputs, and mmdet's geometric transforms on stacked frames.

Fixture: one Argoverse-HD-format sequence of 4 random 40 x 56 frames (PNG, so
pixels are exact), one car per frame (track 5) moving 3 px right and a crowd
person box.
"""
import json
import os
import re

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmdet.datasets.transforms import FilterAnnotations

from densekit.datasets import ArgoverseHDDataset
from densekit.datasets.transforms import (LoadStreamAnnotations,
                                          LoadStreamFrames, PackStreamInputs,
                                          StreamFilterAnnotations)
from densekit.registry import TRANSFORMS

H, W = 40, 56


@pytest.fixture
def seq_root(tmp_path):
    seq_dir = tmp_path / 'frames' / 'seq0'
    seq_dir.mkdir(parents=True)
    images, anns = [], []
    for fid in range(4):
        img = np.random.default_rng(fid).integers(0, 256, (H, W, 3),
                                                  dtype=np.uint8)
        cv2.imwrite(str(seq_dir / f'{fid:06d}.png'), img)
        images.append(dict(id=fid, sid=0, fid=fid, file_name=f'{fid:06d}.png',
                           width=W, height=H))
        anns.append(dict(id=len(anns) + 1, image_id=fid,
                         bbox=[4 + 3 * fid, 6, 12, 10], category_id=2,
                         area=120, iscrowd=0, track=5))
        anns.append(dict(id=len(anns) + 1, image_id=fid, bbox=[30, 20, 8, 9],
                         category_id=0, area=72, iscrowd=1))
    data = dict(images=images, annotations=anns,
                categories=[dict(id=0, name='person'),
                            dict(id=2, name='car')],
                sequences=['seq0'], seq_dirs=['seq0'])
    (tmp_path / 'ann.json').write_text(json.dumps(data))
    return tmp_path


def dataset(root, **kwargs):
    return ArgoverseHDDataset(
        data_root=str(root), ann_file='ann.json',
        data_prefix=dict(img='frames/'),
        metainfo=dict(classes=('person', 'car')), **kwargs)


def read(path):
    return cv2.imread(path, cv2.IMREAD_COLOR)


def test_registered():
    for name in ('LoadStreamFrames', 'LoadStreamAnnotations',
                 'PackStreamInputs', 'StreamFilterAnnotations', 'StreamPad'):
        assert TRANSFORMS.get(f'densekit.{name}') is not None
    assert isinstance(TRANSFORMS.build(dict(type='densekit.LoadStreamFrames')),
                      LoadStreamFrames)


def test_load_stream_frames(seq_root):
    info = dataset(seq_root, num_past_frames=2).get_data_info(2)  # t = 2
    results = LoadStreamFrames()(dict(info))
    img = results['img']
    assert img.shape == (H, W, 9) and img.dtype == np.uint8
    assert img.flags.c_contiguous
    for block, path in enumerate(info['past_img_paths'] + [info['img_path']]):
        np.testing.assert_array_equal(img[..., 3 * block:3 * block + 3],
                                      read(path))
    assert results['img_shape'] == results['ori_shape'] == (H, W)
    assert results['num_past_frames'] == 2
    assert results['has_future_frame'] is False

    results = LoadStreamFrames(load_future_frame=True,
                               to_float32=True)(dict(info))
    assert results['img'].shape == (H, W, 12)
    assert results['img'].dtype == np.float32
    np.testing.assert_array_equal(results['img'][..., 9:],
                                  read(info['future_img_path']))
    assert results['has_future_frame'] is True


def test_missing_and_mismatched_frames(seq_root):
    info = dataset(seq_root).get_data_info(1)  # past 0, current 1
    os.remove(info['past_img_paths'][0])
    missing = re.escape(f'frame {info["past_img_paths"][0]} does not')
    with pytest.raises(FileNotFoundError, match=missing):
        LoadStreamFrames()(dict(info))
    cv2.imwrite(info['past_img_paths'][0], np.zeros((H, W + 2, 3), np.uint8))
    with pytest.raises(ValueError,
                       match=re.escape(f'frame {info["past_img_paths"][0]} '
                                       'has size (40, 58) but the current')):
        LoadStreamFrames()(dict(info))
    with pytest.raises(KeyError, match='past_img_paths'):
        LoadStreamFrames()(dict(img_path=info['img_path']))


def _single_frame_results(stacked_info, path):
    """A results dict for one frame, as LoadImageFromFile would give."""
    img = read(path)
    results = dict(stacked_info, img=img, img_shape=img.shape[:2],
                   ori_shape=img.shape[:2])
    return LoadStreamAnnotations()(results)


@pytest.mark.parametrize('geometric', [
    [dict(type='mmdet.Resize', scale=(90, 70), keep_ratio=False)],
    [dict(type='mmdet.Resize', scale=(100, 100), keep_ratio=True)],
    [dict(type='mmdet.RandomFlip', prob=1.0, direction='horizontal')],
    [dict(type='mmdet.RandomFlip', prob=1.0, direction='vertical')],
    [dict(type='mmdet.RandomFlip', prob=1.0, direction='diagonal')],
    [dict(type='mmdet.RandomCrop', crop_size=(30, 24))],
    [dict(type='densekit.StreamPad', size_divisor=32, pad_val=dict(img=114))],
    [dict(type='densekit.StreamPad', size=(64, 64),
          pad_val=dict(img=(1, 2, 3)))],
    [dict(type='densekit.StreamPad', size=(64, 64), padding_mode='reflect')],
    [dict(type='mmdet.Resize', scale=(72, 72), keep_ratio=True),
     dict(type='mmdet.RandomFlip', prob=1.0),
     dict(type='densekit.StreamPad', size=(96, 96), pad_val=dict(img=114))],
])
def test_mmdet_geometric_transforms_keep_frames_aligned(seq_root, geometric):
    info = dataset(seq_root, num_past_frames=2).get_data_info(2)
    np.random.seed(0)  # RandomCrop draws its offset from np.random
    stacked = Compose([LoadStreamFrames(), LoadStreamAnnotations(),
                       *geometric])(dict(info))
    paths = info['past_img_paths'] + [info['img_path']]
    assert stacked['img'].shape[2] == 3 * len(paths)
    for block, path in enumerate(paths):
        # The same transforms applied to that frame alone (mmdet's Pad for
        # StreamPad: they agree on 3 channels).
        single_cfg = [dict(t, type='mmdet.Pad') if t['type'] ==
                      'densekit.StreamPad' else t for t in geometric]
        frame = _single_frame_results(info, path)
        np.random.seed(0)
        single = Compose(single_cfg)(frame)
        np.testing.assert_array_equal(
            stacked['img'][..., 3 * block:3 * block + 3], single['img'])
        assert stacked['img_shape'] == single['img_shape']
        torch.testing.assert_close(stacked['gt_bboxes'].tensor,
                                   single['gt_bboxes'].tensor)


@pytest.mark.parametrize('pad_val', [dict(img=114), dict(img=(114, ) * 6)])
def test_mmdet_pad_fails_on_stacked_frames(seq_root, pad_val):
    """Why densekit.StreamPad exists: cv2.copyMakeBorder takes at most 4
    border values."""
    results = LoadStreamFrames()(dict(dataset(seq_root).get_data_info(1)))
    pad = TRANSFORMS.build(
        dict(type='mmdet.Pad', size_divisor=32, pad_val=pad_val))
    with pytest.raises(cv2.error):
        pad(results)


def test_stream_pad_values(seq_root):
    results = LoadStreamFrames()(dict(dataset(seq_root).get_data_info(1)))
    out = TRANSFORMS.build(dict(
        type='densekit.StreamPad', size=(60, 48),
        pad_val=dict(img=(1, 2, 3, 4, 5, 6))))(dict(results))
    assert out['img'].shape == (48, 60, 6)
    assert out['pad_shape'] == (48, 60, 6) and out['img_shape'] == (48, 60)
    assert (out['img'][H:, :] == np.arange(1, 7)).all()
    assert (out['img'][:, W:] == np.arange(1, 7)).all()
    np.testing.assert_array_equal(out['img'][:H, :W], results['img'])
    with pytest.raises(ValueError, match='must be a number, 3 values'):
        TRANSFORMS.build(dict(type='densekit.StreamPad', size=(60, 48),
                              pad_val=dict(img=(1, 2))))(dict(results))


def test_load_stream_annotations(seq_root):
    info = dataset(seq_root).get_data_info(1)  # t = 1, target frame 2
    results = LoadStreamAnnotations()(dict(info))
    np.testing.assert_allclose(results['gt_bboxes'].tensor.numpy(),
                               [[10, 6, 22, 16], [30, 20, 38, 29]])
    np.testing.assert_array_equal(results['gt_bboxes_labels'], [1, 0])
    np.testing.assert_array_equal(results['gt_ignore_flags'], [False, True])
    # car: [7, 6, 19, 16] at t vs [10, 6, 22, 16] -> 90 / 150; crowd person
    # (no track): same box at t -> 1
    np.testing.assert_allclose(results['gt_trend_ious'], [0.6, 1.0],
                               rtol=1e-6)
    assert results['gt_trend_ious'].dtype == np.float32
    np.testing.assert_array_equal(results['gt_track_ids'], [5, -1])
    assert results['gt_track_ids'].dtype == np.int64

    bad = dict(info, instances=[dict(bbox=[0, 0, 2, 2], bbox_label=0,
                                     ignore_flag=0)])
    with pytest.raises(KeyError, match='instance 0 of .*000001.png has no'):
        LoadStreamAnnotations()(bad)


def _with_thin_box(info):
    """Add a 0.5 px wide box between the two real ones."""
    thin = dict(bbox=[1, 1, 1.5, 9], bbox_label=1, ignore_flag=0,
                track_id=42, trend_iou=0.25)
    return dict(info, instances=[info['instances'][0], thin,
                                 info['instances'][1]])


def test_stream_filter_annotations_keeps_arrays_aligned(seq_root):
    info = _with_thin_box(dataset(seq_root).get_data_info(1))
    results = Compose([LoadStreamAnnotations(),
                       StreamFilterAnnotations(min_gt_bbox_wh=(1, 1))
                       ])(dict(info))
    np.testing.assert_array_equal(results['gt_track_ids'], [5, -1])
    np.testing.assert_allclose(results['gt_trend_ious'], [0.6, 1.0],
                               rtol=1e-6)
    np.testing.assert_array_equal(results['gt_bboxes_labels'], [1, 0])
    assert len(results['gt_bboxes']) == 2
    np.testing.assert_array_equal(results['gt_ignore_flags'], [False, True])

    # mmdet's FilterAnnotations would leave them misaligned: packing fails.
    results = Compose([LoadStreamAnnotations(),
                       FilterAnnotations(min_gt_bbox_wh=(1, 1))])(dict(info))
    with pytest.raises(ValueError, match='gt_trend_ious of .* has 3 entries '
                       'but gt_bboxes has 2'):
        PackStreamInputs()(results)


def test_pack_stream_inputs(seq_root):
    info = dataset(seq_root).get_data_info(1)
    results = Compose([LoadStreamFrames(), LoadStreamAnnotations(),
                       PackStreamInputs()])(dict(info))
    inputs, sample = results['inputs'], results['data_samples']
    assert inputs.shape == (6, H, W) and inputs.dtype == torch.uint8
    np.testing.assert_array_equal(
        inputs[3:].permute(1, 2, 0).numpy(), read(info['img_path']))
    torch.testing.assert_close(sample.gt_instances.trend_ious,
                               torch.tensor([0.6]))
    assert sample.gt_instances.track_ids.tolist() == [5]
    assert sample.gt_instances.labels.tolist() == [1]
    assert sample.ignored_instances.track_ids.tolist() == [-1]
    meta = sample.metainfo
    assert meta['img_id'] == 2 and meta['cur_img_id'] == 1
    assert (meta['sid'], meta['fid'], meta['seq_name']) == (0, 1, 'seq0')
    assert meta['num_past_frames'] == 1
    assert meta['has_future_frame'] is False


def test_pack_checks_channel_count(seq_root):
    info = dataset(seq_root).get_data_info(1)
    results = LoadStreamFrames()(dict(info))
    results['num_past_frames'] = 2
    with pytest.raises(ValueError, match='has 6 channels, but 3 stacked '
                       'frames need 9'):
        PackStreamInputs()(results)

"""StreamDataPreprocessor, and the whole streaming data path end to end."""
import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.dataset import pseudo_collate

from densekit.datasets import (MOVING_SHAPES_METAINFO, ArgoverseHDDataset,
                               generate_moving_shapes_argoverse)
from densekit.models.data_preprocessors import StreamDataPreprocessor
from densekit.registry import MODELS

MEAN, STD = (10., 20., 30.), (2., 4., 8.)


def sample(path, h, w):
    s = DetDataSample()
    s.set_metainfo(dict(img_path=path, img_shape=(h, w)))
    return s


def test_registered():
    pre = MODELS.build(dict(type='densekit.StreamDataPreprocessor'))
    assert isinstance(pre, StreamDataPreprocessor)


def test_normalise_pad_and_stack():
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (6, 5, 7), generator=gen, dtype=torch.uint8)
    b = torch.randint(0, 256, (6, 9, 4), generator=gen, dtype=torch.uint8)
    pre = StreamDataPreprocessor(mean=MEAN, std=STD, bgr_to_rgb=True,
                                 pad_size_divisor=4, pad_value=-1)
    data = pre(dict(inputs=[a, b],
                    data_samples=[sample('a.jpg', 5, 7),
                                  sample('b.jpg', 9, 4)]))
    out = data['inputs']
    assert out.shape == (2, 2, 3, 12, 8) and out.dtype == torch.float32
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    for i, img in enumerate((a, b)):
        h, w = img.shape[1:]
        for t in range(2):
            bgr = img[3 * t:3 * t + 3].float()
            expect = (bgr[[2, 1, 0]] - mean) / std  # per frame BGR -> RGB
            torch.testing.assert_close(out[i, t, :, :h, :w], expect)
        # padding after normalisation, at the bottom and right
        assert (out[i, :, :, h:, :] == -1).all()
        assert (out[i, :, :, :, w:] == -1).all()
    metas = [s.metainfo for s in data['data_samples']]
    assert [m['batch_input_shape'] for m in metas] == [(12, 8), (12, 8)]
    assert [m['pad_shape'] for m in metas] == [(8, 8), (12, 4)]


def test_batched_tensor_input():
    x = torch.arange(2 * 9 * 2 * 3, dtype=torch.uint8).view(2, 9, 2, 3)
    out = StreamDataPreprocessor()(dict(inputs=x, data_samples=None))
    assert out['inputs'].shape == (2, 3, 3, 2, 3)
    torch.testing.assert_close(out['inputs'].flatten(1),
                               x.float().flatten(1))


def test_errors_name_the_sample():
    pre = StreamDataPreprocessor()
    with pytest.raises(ValueError, match=r'input of b.jpg has shape '
                       r'\(5, 4, 4\); expected \(3T, H, W\)'):
        pre(dict(inputs=[torch.zeros(6, 4, 4), torch.zeros(5, 4, 4)],
                 data_samples=[sample('a.jpg', 4, 4), sample('b.jpg', 4, 4)]))
    with pytest.raises(ValueError, match='input of b.jpg has 1 frames but '
                       'a.jpg has 2'):
        pre(dict(inputs=[torch.zeros(6, 4, 4), torch.zeros(3, 4, 4)],
                 data_samples=[sample('a.jpg', 4, 4), sample('b.jpg', 4, 4)]))
    with pytest.raises(ValueError, match='mean must have 3 values'):
        StreamDataPreprocessor(mean=(0, ) * 6, std=(1, ) * 6)


@pytest.fixture(scope='module')
def tiny_moving_shapes(tmp_path_factory):
    out = tmp_path_factory.mktemp('moving_shapes')
    generate_moving_shapes_argoverse(str(out), num_train_seqs=2,
                                     num_val_seqs=1, frames_per_seq=5,
                                     img_size=64, seed=3)
    return out


def test_end_to_end(tiny_moving_shapes):
    """Dataset -> transforms -> PackStreamInputs -> StreamDataPreprocessor
    gives (B, T, 3, H, W) whose frames are the right, aligned frames."""
    geometric = [
        dict(type='mmdet.Resize', scale=(80, 80), keep_ratio=True),
        dict(type='mmdet.RandomFlip', prob=1.0, direction='horizontal'),
        dict(type='densekit.StreamPad', size_divisor=32,
             pad_val=dict(img=114)),
    ]
    ds = ArgoverseHDDataset(
        data_root=str(tiny_moving_shapes), ann_file='annotations/train.json',
        data_prefix=dict(img='frames/'), metainfo=MOVING_SHAPES_METAINFO,
        num_past_frames=2, forecast_offset=1,
        pipeline=[dict(type='densekit.LoadStreamFrames'),
                  dict(type='densekit.LoadStreamAnnotations'), *geometric,
                  dict(type='densekit.PackStreamInputs')])
    assert len(ds) == 2 * 4
    # the same geometric transforms on one frame at a time
    single = ArgoverseHDDataset(
        data_root=str(tiny_moving_shapes), ann_file='annotations/train.json',
        data_prefix=dict(img='frames/'), metainfo=MOVING_SHAPES_METAINFO,
        pipeline=[dict(type='LoadImageFromFile'), *geometric[:2],
                  dict(type='mmdet.Pad', size_divisor=32,
                       pad_val=dict(img=114)),
                  dict(type='mmdet.PackDetInputs')])
    pre = StreamDataPreprocessor(mean=(1., 2., 3.), std=(50., 60., 70.),
                                 bgr_to_rgb=True, pad_size_divisor=32)
    batch = pre(pseudo_collate([ds[2], ds[5]]))
    inputs, samples = batch['inputs'], batch['data_samples']
    assert inputs.shape == (2, 3, 3, 96, 96)
    for b, index in enumerate((2, 5)):
        info = ds.get_data_info(index)
        paths = info['past_img_paths'] + [info['img_path']]
        for t, path in enumerate(paths):
            j = next(i for i in range(len(single))
                     if single.get_data_info(i)['img_path'] == path)
            ref = pre(pseudo_collate([single[j]]))['inputs'][0, 0]
            torch.testing.assert_close(inputs[b, t], ref)
        meta = samples[b].metainfo
        assert meta['img_id'] == info['img_id']
        assert meta['flip'] is True and meta['num_past_frames'] == 2
        gt = samples[b].gt_instances
        assert len(gt.trend_ious) == len(gt.bboxes) == len(gt.track_ids)
        # boxes were flipped with the image: x1 = 80 - x2 of the original
        boxes = np.array([i['bbox'] for i in info['instances']
                          if not i['ignore_flag']]).reshape(-1, 4) * 80 / 64
        np.testing.assert_allclose(gt.bboxes.numpy()[:, 0],
                                   80 - boxes[:, 2], rtol=1e-5)

"""CascadedUpsamplerHead (TransUNet's DecoderCup + segmentation head):
shapes, skip wiring, the official decoder size, pluggable scSE and errors."""
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from densekit.models.decode_heads import CascadedUpsamplerHead
from densekit.models.layers import SCSE

SMALL = dict(in_channels=[8, 16, 32, 24], head_channels=32,
             decoder_channels=(24, 16, 8, 4), num_classes=3,
             norm_cfg=dict(type='BN'))


def features(n=2, size=64, channels=(8, 16, 32, 24), strides=(2, 4, 8, 16)):
    gen = torch.Generator().manual_seed(0)
    return [torch.rand(n, c, size // s, size // s, generator=gen)
            for c, s in zip(channels, strides)]


def test_logits_at_input_resolution():
    head = CascadedUpsamplerHead(**SMALL).eval()
    with torch.no_grad():
        feat = head._forward_feature(features())
        logits = head(features())
    assert feat.shape == (2, 4, 64, 64)
    assert logits.shape == (2, 3, 64, 64)
    assert head.conv_seg.kernel_size == (3, 3)  # official SegmentationHead
    assert head.dropout is None


@pytest.mark.parametrize('n_skip,skips', [(3, [32, 16, 8, 0]),
                                          (1, [32, 0, 0, 0]),
                                          (0, [0, 0, 0, 0])])
def test_skips_deepest_first(n_skip, skips):
    head = CascadedUpsamplerHead(**dict(SMALL, n_skip=n_skip)).eval()
    prev = [32, 24, 16, 8]
    for block, skip, p in zip(head.blocks, skips, prev):
        assert block.skip_channels == skip
        assert block.conv1.conv.in_channels == p + skip
        assert block.conv1.conv.bias is None  # BN follows
    with torch.no_grad():
        assert head(features()).shape == (2, 3, 64, 64)


def test_official_decoder_size():
    # TransUNet R50-ViT-B/16, 9 classes, counted from the official
    # DecoderCup + SegmentationHead (Beckschen/TransUNet
    # networks/vit_seg_modeling.py): conv_more 3,539,968 + blocks
    # 2,950,144 + 737,792 + 147,712 + 11,584 + head 1,305 = 7,388,505
    head = CascadedUpsamplerHead(in_channels=[64, 256, 512, 768],
                                 num_classes=9)
    assert sum(p.numel() for p in head.parameters()) == 7_388_505


def test_scse_after_every_block():
    cfg = dict(SMALL, decoder_attention=dict(type='densekit.SCSE'))
    head = CascadedUpsamplerHead(**cfg).eval()
    assert [type(b.attention) for b in head.blocks] == [SCSE] * 4
    assert [b.attention.in_channels for b in head.blocks] == [24, 16, 8, 4]
    torch.manual_seed(0)
    plain = CascadedUpsamplerHead(**SMALL).eval()
    missing, unexpected = plain.load_state_dict(head.state_dict(),
                                                strict=False)
    assert not missing and all('attention' in k for k in unexpected)
    with torch.no_grad():
        with_scse, without = head(features()), plain(features())
    assert with_scse.shape == without.shape
    assert not torch.allclose(with_scse, without)


def test_loss_is_finite_and_reaches_the_skips():
    head = CascadedUpsamplerHead(**dict(SMALL, loss_decode=[
        dict(type='mmseg.CrossEntropyLoss', loss_weight=0.5,
             loss_name='loss_ce'),
        dict(type='densekit.ClassDiceLoss', loss_weight=0.5,
             loss_name='loss_dice')]))
    feats = [f.requires_grad_() for f in features()]
    samples = []
    for _ in range(2):
        sample = SegDataSample(gt_sem_seg=PixelData(
            data=torch.randint(0, 3, (1, 64, 64))))
        sample.set_metainfo(dict(img_shape=(64, 64)))
        samples.append(sample)
    losses = head.loss(feats, samples, train_cfg=dict())
    assert set(losses) >= {'loss_ce', 'loss_dice'}
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(n_skip=4), ValueError, r'n_skip must be in 0\.\.3'),
    (dict(channels=16), TypeError, 'sets channels itself'),
    (dict(in_channels=24), ValueError, 'in_channels must list'),
    (dict(decoder_attention=SCSE(4)), TypeError, 'must be a config dict'),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        CascadedUpsamplerHead(**dict(SMALL, **kwargs))


def test_skip_of_the_wrong_size_names_in_index():
    head = CascadedUpsamplerHead(**SMALL).eval()
    feats = features()
    feats[2] = torch.rand(2, 32, 5, 5)  # not twice the stride-16 map
    with pytest.raises(ValueError, match='check in_index'):
        head(feats)

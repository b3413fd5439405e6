"""scSE (Roy et al., MICCAI 2018): shapes, both branches against their
formulas, the combination modes, gradients, the mmcv plugin path, and
SCSEUNet (scSE placed in mmseg's UNet)."""
import pytest
import torch
import torch.nn.functional as F

from densekit.models.backbones import SCSEUNet
from densekit.models.layers import SCSE


def _block(channels=6, reduction=2, mode='max', seed=0):
    torch.manual_seed(seed)
    return SCSE(channels, reduction=reduction, mode=mode)


@pytest.mark.parametrize('mode', ['max', 'add'])
@pytest.mark.parametrize('channels,reduction,size',
                         [(6, 2, (5, 7)), (8, 16, (1, 1)), (1, 1, (3, 2))])
def test_shape_is_kept(mode, channels, reduction, size):
    block = _block(channels, reduction, mode)
    x = torch.randn(2, channels, *size)
    y = block(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    # hidden width C // r, at least one unit
    assert block.channel_fc1.out_features == max(1, channels // reduction)
    assert block.channel_fc2.out_features == channels
    assert tuple(block.spatial_conv.weight.shape) == (1, channels, 1, 1)


def test_channel_branch_matches_formula():
    block = _block(6, 2)
    x = torch.randn(3, 6, 4, 5)
    # cSE: global average pool -> FC(C -> C/r) -> ReLU -> FC -> sigmoid
    z = x.mean(dim=(2, 3))
    h = torch.relu(z @ block.channel_fc1.weight.T + block.channel_fc1.bias)
    s = torch.sigmoid(h @ block.channel_fc2.weight.T +
                      block.channel_fc2.bias)
    gate = block.channel_gate(x)
    assert gate.shape == (3, 6, 1, 1)
    torch.testing.assert_close(gate[:, :, 0, 0], s)
    # one weight per (sample, channel), shared by all positions
    torch.testing.assert_close((x * gate)[:, :, 1, 2], x[:, :, 1, 2] * s)


def test_spatial_branch_matches_formula():
    block = _block(6, 2)
    x = torch.randn(3, 6, 4, 5)
    # sSE: sigmoid(sum_c w_c x_c + b), one weight per position
    w = block.spatial_conv.weight.view(6)
    q = torch.sigmoid(torch.einsum('nchw,c->nhw', x, w) +
                      block.spatial_conv.bias)
    gate = block.spatial_gate(x)
    assert gate.shape == (3, 1, 4, 5)
    torch.testing.assert_close(gate[:, 0], q)


@pytest.mark.parametrize('mode', ['max', 'add'])
def test_combination(mode):
    block = _block(6, 3, mode)
    x = torch.randn(2, 6, 3, 3)
    channel = x * block.channel_gate(x)
    spatial = x * block.spatial_gate(x)
    expected = (torch.maximum(channel, spatial) if mode == 'max' else
                channel + spatial)
    torch.testing.assert_close(block(x), expected)


def test_hand_checked_values():
    # zero weights: both gates are sigmoid(0) = 1/2 everywhere, so max-out
    # halves the input and addition returns it unchanged
    x = torch.arange(8, dtype=torch.float32).view(1, 2, 2, 2) - 3
    for mode, factor in (('max', 0.5), ('add', 1.0)):
        block = SCSE(2, reduction=1, mode=mode)
        for p in block.parameters():
            torch.nn.init.zeros_(p)
        torch.testing.assert_close(block(x), x * factor)


@pytest.mark.parametrize('mode', ['max', 'add'])
def test_gradients(mode):
    block = _block(6, 2, mode)
    x = torch.randn(2, 6, 4, 4, requires_grad=True)
    block(x).square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # addition sends gradient through both branches; max-out through the
    # larger one at each element, here some of each
    assert block.spatial_conv.weight.grad.abs().sum() > 0
    assert block.channel_fc2.weight.grad.abs().sum() > 0


def test_gradcheck_float64():
    block = _block(4, 2, 'add').double()
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x, ))


@pytest.mark.parametrize('kwargs,match', [
    (dict(in_channels=0), 'in_channels must be an int >= 1'),
    (dict(in_channels=4.0), 'in_channels must be an int >= 1'),
    (dict(in_channels=4, reduction=0), 'reduction must be an int >= 1'),
    (dict(in_channels=4, mode='mul'), r"mode must be one of \('max', "
     r"'add'\), but got 'mul'"),
])
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SCSE(**kwargs)


def test_bad_input_shape():
    with pytest.raises(ValueError, match=r'\(N, 4, H, W\), but got '
                       r'\(1, 3, 2, 2\)'):
        SCSE(4)(torch.zeros(1, 3, 2, 2))


def test_mmcv_plugin():
    from mmcv.cnn import build_plugin_layer
    name, layer = build_plugin_layer(
        dict(type='densekit.SCSE', reduction=4), postfix='_1',
        in_channels=8)
    assert name == 'scse_1' and isinstance(layer, SCSE)
    assert layer.in_channels == 8 and layer.reduction == 4


def test_plugs_into_mmseg_resnet_bottleneck():
    from mmseg.models.backbones import ResNetV1c
    net = ResNetV1c(
        depth=50, num_stages=1, strides=(1, ), dilations=(1, ),
        out_indices=(0, ), base_channels=8, stem_channels=8,
        plugins=[dict(cfg=dict(type='densekit.SCSE'), stages=(True, ),
                      position='after_conv3')])
    blocks = [m for m in net.modules() if isinstance(m, SCSE)]
    assert len(blocks) == 3  # one per bottleneck of the stage
    assert {b.in_channels for b in blocks} == {32}  # planes 8 x expansion 4
    out, = net(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 32, 8, 8)


def _tiny_unet(**kwargs):
    torch.manual_seed(0)
    return SCSEUNet(
        unet=dict(type='mmseg.UNet', in_channels=1, base_channels=4,
                  num_stages=4, strides=(1, 1, 1, 1),
                  enc_num_convs=(1, 1, 1, 1), dec_num_convs=(1, 1, 1),
                  downsamples=(True, True, True),
                  enc_dilations=(1, 1, 1, 1), dec_dilations=(1, 1, 1)),
        **kwargs)


def test_scse_unet_contract_and_placement():
    model = _tiny_unet()
    assert model.out_channels == [32, 16, 8, 4]
    assert model.out_strides == [8, 4, 2, 1]
    assert [b.in_channels for b in model.encoder_scse] == [4, 8, 16, 32]
    assert [b.in_channels for b in model.decoder_scse] == [4, 8, 16]
    outs = model(torch.randn(2, 1, 16, 16))
    assert [tuple(o.shape) for o in outs] == [
        (2, c, 16 // s, 16 // s)
        for c, s in zip(model.out_channels, model.out_strides)
    ]
    # the UNet's own parameters keep their names under `unet.`
    keys = set(model.state_dict())
    assert 'unet.encoder.0.0.convs.0.conv.weight' in keys
    assert 'encoder_scse.3.spatial_conv.weight' in keys


def test_scse_unet_changes_the_unet_and_trains():
    model = _tiny_unet()
    x = torch.randn(2, 1, 16, 16)
    plain = model.unet(x)[-1]
    outs = model(x)
    assert not torch.allclose(outs[-1], plain)
    sum(o.square().mean() for o in outs).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_scse_unet_decoder_only_matches_manual_forward():
    model = _tiny_unet(encoder=False).eval()
    assert all(isinstance(m, torch.nn.Identity) for m in model.encoder_scse)
    x = torch.randn(1, 1, 16, 16)
    unet = model.unet
    skips, h = [], x
    for enc in unet.encoder:
        h = enc(h)
        skips.append(h)
    for j in reversed(range(len(unet.decoder))):
        h = model.decoder_scse[j](unet.decoder[j](skips[j], h))
    torch.testing.assert_close(model(x)[-1], h)


def test_scse_unet_bad_args():
    with pytest.raises(TypeError, match='mmseg UNet or its config dict, '
                       'but got Conv2d'):
        SCSEUNet(unet=torch.nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match='encoder and decoder are both '
                       'False'):
        _tiny_unet(encoder=False, decoder=False)


def test_scse_unet_heads_read_its_contract():
    from densekit.registry import MODELS
    model = MODELS.build(dict(
        type='densekit.SegEncoderDecoder',
        backbone=dict(type='densekit.SCSEUNet',
                      unet=_tiny_unet().unet),
        decode_head=dict(type='mmseg.FCNHead', in_index=3, channels=4,
                         num_convs=1, num_classes=3),
        test_cfg=dict(mode='whole')))
    assert model.decode_head.in_channels == 4
    logits = model(torch.randn(1, 1, 16, 16), mode='tensor')
    assert F.softmax(logits, 1).shape == (1, 3, 16, 16)

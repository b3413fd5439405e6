"""EfficientAD checkpoint conversion (densekit/models/utils/
efficient_ad_convert.py and tools/model_converters/efficientad_to_densekit
.py): state dicts in nelson1425/EfficientAD's and anomalib's layouts, built
here, converted and loaded strictly, with the official forward passes
compared numerically; and the whole test-time computation of both
references (their maps, borders, image scores and quantiles), restated here
from their source, against a converted densekit model in float64."""
import importlib.util
import math
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.runner import load_checkpoint
from mmengine.structures import BaseDataElement

from densekit.models.anomaly_detectors.efficient_ad import EfficientAD
from densekit.models.anomaly_detectors.efficient_ad_convert import (
    NELSON_AE_CONVS, NELSON_AE_CONVS_NO_DROPOUT, NELSON_PDN_CONVS,
    convert_anomalib_efficientad, convert_autoencoder,
    convert_nelson_efficientad, convert_pdn, efficientad_arch,
    efficientad_model_args, load_teacher_checkpoint, teacher_state_dict)
from densekit.models.layers.patch_description_network import (
    EfficientADAutoencoder, PatchDescriptionNetwork)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
C = 384  # teacher channels of both implementations


# ---------------------------------------------------------------------------
# nelson1425/EfficientAD's networks (common.py: get_pdn_small,
# get_pdn_medium with padding=False, get_autoencoder): the same layers in the
# same nn.Sequential order, so the state dict keys are the official ones
# ---------------------------------------------------------------------------
def _relu():
    return nn.ReLU(inplace=True)


def _pool():
    return nn.AvgPool2d(kernel_size=2, stride=2)


def nelson_pdn(size, out_channels):
    if size == 'S':
        layers = [nn.Conv2d(3, 128, 4), _relu(), _pool(),
                  nn.Conv2d(128, 256, 4), _relu(), _pool(),
                  nn.Conv2d(256, 256, 3), _relu(),
                  nn.Conv2d(256, out_channels, 4)]
    else:
        layers = [nn.Conv2d(3, 256, 4), _relu(), _pool(),
                  nn.Conv2d(256, 512, 4), _relu(), _pool(),
                  nn.Conv2d(512, 512, 1), _relu(),
                  nn.Conv2d(512, 512, 3), _relu(),
                  nn.Conv2d(512, out_channels, 4), _relu(),
                  nn.Conv2d(out_channels, out_channels, 1)]
    return nn.Sequential(*layers)


def nelson_autoencoder(out_channels=C, dropout=True):
    """``get_autoencoder``: with ``dropout`` as in common.py since b970d54
    (2023-05-09: ``nn.Dropout(0.2)`` after each of the first six decoder
    ReLUs), without it as in the first version (a44786c)."""
    layers = []
    for cin, cout in ((3, 32), (32, 32), (32, 64), (64, 64), (64, 64)):
        layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), _relu()]
    layers.append(nn.Conv2d(64, 64, 8))
    # the resize targets are fixed for 256x256 inputs
    for size in (3, 8, 15, 32, 63, 127):
        layers += [nn.Upsample(size=size, mode='bilinear'),
                   nn.Conv2d(64, 64, 4, stride=1, padding=2), _relu()]
        if dropout:
            layers.append(nn.Dropout(0.2))
    layers += [nn.Upsample(size=56, mode='bilinear'),
               nn.Conv2d(64, 64, 3, stride=1, padding=1), _relu(),
               nn.Conv2d(64, out_channels, 3, stride=1, padding=1)]
    return nn.Sequential(*layers)


def seeded(module, seed):
    """Random weights of a fixed seed, and non-zero biases (PyTorch's
    default init already gives them; re-drawn to be independent of the
    construction order)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) *
                    (0.5 / max(p[0].numel(), 1)**0.5))
    return module.eval()


@pytest.fixture(scope='module')
def nelson_s():
    """A trained-like nelson1425 EfficientAD-S: teacher, student, AE."""
    return (seeded(nelson_pdn('S', C), 0), seeded(nelson_pdn('S', 2 * C), 1),
            seeded(nelson_autoencoder(), 2))


def anomalib_state_dict(size='S', mean_std=True, quantiles=True, seed=3):
    """An anomalib EfficientAd Lightning ``state_dict`` (torch_model.py:
    ``EfficientAdModel`` under ``model.``; ``mean_std`` and ``quantiles``
    ParameterDicts), plus Lightning-module entries outside ``model.``."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for prefix, net in (('model.teacher.', PatchDescriptionNetwork(size, C)),
                        ('model.student.',
                         PatchDescriptionNetwork(size, 2 * C)),
                        ('model.ae.', EfficientADAutoencoder(C))):
        for k, v in net.state_dict().items():
            sd[prefix + k] = torch.randn(v.shape, generator=g) * 0.05
    sd['model.mean_std.mean'] = (torch.randn(1, C, 1, 1, generator=g)
                                 if mean_std else torch.zeros(1, C, 1, 1))
    sd['model.mean_std.std'] = (torch.rand(1, C, 1, 1, generator=g) + 0.5
                                if mean_std else torch.zeros(1, C, 1, 1))
    values = (0.1, 0.7, 0.2, 1.5) if quantiles else (0., 0., 0., 0.)
    for name, value in zip(('qa_st', 'qb_st', 'qa_ae', 'qb_ae'), values):
        sd[f'model.quantiles.{name}'] = torch.tensor(value)
    sd['image_threshold.value'] = torch.tensor(0.5)
    sd['pixel_threshold.value'] = torch.tensor(0.5)
    return sd


def max_diff(a, b):
    diff = (a - b).abs().max().item()
    print(f'max abs difference {diff:.3g}')
    return diff


# ---------------------------------------------------------------------------
# convert_pdn / convert_autoencoder
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('size', ['S', 'M'])
def test_nelson_pdn_parity(size):
    official = seeded(nelson_pdn(size, C), 10)
    converted = convert_pdn(official.state_dict(), size)
    assert sorted(converted) == sorted(
        PatchDescriptionNetwork(size, C).state_dict())
    ours = PatchDescriptionNetwork(size, C).eval()
    ours.load_state_dict(converted, strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected, out = official(x.clone()), ours(x.clone())
    assert out.shape == expected.shape == (1, C, 8, 8)
    assert max_diff(out, expected) < 1e-5
    # an nn.Module works as well, and densekit keys come back unchanged
    assert convert_pdn(official).keys() == converted.keys()
    again = convert_pdn(converted)
    assert all(torch.equal(again[k], converted[k]) for k in converted)


def test_nelson_sequential_indices():
    # conv layers sit at NELSON_PDN_CONVS in both official PDNs
    for size, n in (('S', 4), ('M', 6)):
        convs = [i for i, m in enumerate(nelson_pdn(size, C))
                 if isinstance(m, nn.Conv2d)]
        assert convs == list(NELSON_PDN_CONVS[:n])


@pytest.mark.parametrize('dropout,decoder_convs',
                         [(True, [12, 16, 20, 24, 28, 32, 36, 38]),
                          (False, [12, 15, 18, 21, 24, 27, 30, 32])])
def test_nelson_autoencoder_indices(dropout, decoder_convs):
    # the indices of git -C nelson1425/EfficientAD show b970d54:common.py
    # (dropout) and a44786c:common.py (none)
    convs = [i for i, m in enumerate(nelson_autoencoder(dropout=dropout))
             if isinstance(m, nn.Conv2d)]
    assert convs == [0, 2, 4, 6, 8, 10] + decoder_convs
    table = NELSON_AE_CONVS if dropout else NELSON_AE_CONVS_NO_DROPOUT
    assert list(table) == convs
    assert list(table.values()) == [f'encoder.enconv{i}' for i in
                                    range(1, 7)] + \
        [f'decoder.deconv{i}' for i in range(1, 9)]


@pytest.mark.parametrize('dropout', [True, False])
def test_nelson_autoencoder_parity(dropout):
    official = seeded(nelson_autoencoder(dropout=dropout), 11).double()
    ours = EfficientADAutoencoder(C).eval()  # dropout off
    ours.load_state_dict(convert_autoencoder(official.state_dict()),
                         strict=True)
    ours.double()
    x = torch.randn(1, 3, 256, 256, dtype=torch.float64)
    with torch.no_grad():
        expected, out = official(x.clone()), ours(x.clone())
    assert out.shape == expected.shape == (1, C, 56, 56)
    assert max_diff(out, expected) < 1e-12 * expected.abs().max()
    converted = convert_autoencoder(ours.state_dict())
    assert converted.keys() == ours.state_dict().keys()
    # a module of either version converts too
    assert convert_autoencoder(official).keys() == converted.keys()


def test_nelson_autoencoder_layout_errors():
    current = nelson_autoencoder().state_dict()
    first = nelson_autoencoder(dropout=False).state_dict()
    mixed = dict(current, **{'15.weight': first['15.weight']})
    with pytest.raises(KeyError, match='are of both nelson1425 autoencoder '
                       'layout'):
        convert_autoencoder(mixed)
    encoder_only = {k: v for k, v in current.items()
                    if int(k.split('.')[0]) <= 10}
    with pytest.raises(KeyError, match=r'indices \[0, 2, 4, 6, 8, 10\] are '
                       'of neither'):
        convert_autoencoder(encoder_only)


def test_convert_errors():
    sd = nelson_pdn('S', C).state_dict()
    with pytest.raises(ValueError, match="size='M' was asked, but the "
                       'weights are those of PDN-S'):
        convert_pdn(sd, 'M')
    with pytest.raises(KeyError, match=r"1 keys not in the nelson1425 "
                       r"nn.Sequential PDN layout: \['5.weight'\]"):
        convert_pdn(dict(sd, **{'5.weight': torch.zeros(1)}))
    ours = PatchDescriptionNetwork('S', C).state_dict()
    with pytest.raises(KeyError, match=r"\['head.weight', 'avgpool.x'\]"):
        convert_pdn(dict(ours, **{'head.weight': torch.zeros(1),
                                  'avgpool.x': torch.zeros(1)}))
    partial = {k: v for k, v in sd.items() if not k.startswith('8.')}
    with pytest.raises(ValueError, match=r"\['conv1', 'conv2', 'conv3'\] "
                       'are neither PDN-S'):
        convert_pdn(partial)
    no_bias = {k: v for k, v in sd.items() if k != '6.bias'}
    with pytest.raises(ValueError, match=r"lack \['conv3.bias'\]"):
        convert_pdn(no_bias)
    ae = nelson_autoencoder(dropout=False).state_dict()
    with pytest.raises(ValueError, match='2 weights absent'):
        convert_autoencoder({k: v for k, v in ae.items()
                             if not k.startswith('32.')})
    with pytest.raises(KeyError, match=r"\['11.weight'\]"):
        convert_autoencoder(dict(ae, **{'11.weight': torch.zeros(1)}))


# ---------------------------------------------------------------------------
# whole models
# ---------------------------------------------------------------------------
def nelson_maps(teacher, student, autoencoder, x):
    """efficientad.py ``predict`` without statistics (mean 0, std 1) and
    without quantiles."""
    t, s, a = teacher(x), student(x), autoencoder(x)
    map_st = ((t - s[:, :C])**2).mean(1, keepdim=True)
    map_ae = ((a - s[:, C:])**2).mean(1, keepdim=True)
    return map_st, map_ae


def test_convert_nelson_efficientad(nelson_s):
    state = convert_nelson_efficientad(*nelson_s, size='S')
    assert efficientad_arch(state) == ('S', C)
    model = EfficientAD(model_size='S', allow_random_teacher=True).eval()
    model.load_state_dict(state, strict=True)
    assert not model.has_teacher_stats and not model.has_quantiles
    assert torch.equal(model.teacher_std, torch.ones(1, C, 1, 1))
    x = torch.randn(1, 3, 256, 256)  # ImageNet-normalised, as nelson's
    with torch.no_grad():
        expected = nelson_maps(*nelson_s, x.clone())
        ours = model.raw_maps(x.clone())
    for out, ref in zip(ours, expected):
        assert out.shape == ref.shape == (1, 1, 56, 56)
        assert max_diff(out, ref) < 1e-5
    # modules or state dicts, size inferred; a wrong size is refused
    from_modules = convert_nelson_efficientad(*nelson_s)
    assert from_modules.keys() == state.keys()
    with pytest.raises(ValueError, match='PDN-S'):
        convert_nelson_efficientad(*nelson_s, size='M')
    teacher, student, ae = nelson_s
    with pytest.raises(ValueError, match='student has 384 output channels'):
        convert_nelson_efficientad(teacher, teacher, ae)


def test_convert_anomalib_efficientad():
    sd = anomalib_state_dict('S')
    state = convert_anomalib_efficientad({'state_dict': sd})
    model = EfficientAD(model_size='S', allow_random_teacher=True).eval()
    model.load_state_dict(state, strict=True)
    assert model.has_teacher_stats and model.has_quantiles
    assert torch.equal(model.teacher_mean, sd['model.mean_std.mean'])
    assert torch.equal(model.teacher_std, sd['model.mean_std.std'])
    assert torch.equal(model.student.conv4.weight,
                       sd['model.student.conv4.weight'])
    assert torch.equal(model.autoencoder.decoder.deconv8.bias,
                       sd['model.ae.decoder.deconv8.bias'])
    # our order (qa_st, qb_st, qa_ae, qb_ae), used as such by the maps
    assert model.quantiles.tolist() == pytest.approx([0.1, 0.7, 0.2, 1.5])
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        normed = model.normalize_inputs(x)
        teacher = model.teacher(normed)
        student = model.student(normed)
        ae = model.autoencoder(normed)
        # anomalib's compute_student_teacher_distance / compute_maps,
        # before padding and resizing
        t = (teacher - sd['model.mean_std.mean']) / sd['model.mean_std.std']
        raw_st = ((t - student[:, :C])**2).mean(1, keepdim=True)
        raw_ae = ((ae - student[:, C:])**2).mean(1, keepdim=True)
        _, map_st, map_ae = model.anomaly_maps(normed)
    unpad = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    for out, ref in ((map_st, 0.1 * (raw_st - 0.1) / 0.6),
                     (map_ae, 0.1 * (raw_ae - 0.2) / 1.3)):
        assert max_diff(out[unpad], ref) <= 1e-5 * ref.abs().max()
    # already converted: unchanged
    again = convert_anomalib_efficientad(state)
    assert all(torch.equal(again[k], state[k]) for k in state)


def test_anomalib_size_m_and_is_set_rule():
    state = convert_anomalib_efficientad(
        anomalib_state_dict('M', mean_std=False, quantiles=False))
    assert efficientad_arch(state) == ('M', C)
    model = EfficientAD(model_size='M', allow_random_teacher=True)
    model.load_state_dict(state, strict=True)
    # anomalib's is_set: unset -> our defaults (std 1, not anomalib's 0)
    assert not model.has_teacher_stats and not model.has_quantiles
    assert torch.equal(model.teacher_std, torch.ones(1, C, 1, 1))
    # any non-zero sum sets the whole dict (a zero mean with a std is set)
    sd = anomalib_state_dict('S', mean_std=False, quantiles=False)
    sd['model.mean_std.std'] = torch.full((1, C, 1, 1), 2.)
    sd['model.quantiles.qb_ae'] = torch.tensor(1.)
    state = convert_anomalib_efficientad(sd)
    assert state['has_teacher_stats'] and state['has_quantiles']
    assert state['quantiles'].tolist() == [0., 0., 0., 1.]
    # the torch model's own state dict (no model. prefix) converts too
    plain = {k[len('model.'):]: v for k, v in anomalib_state_dict().items()
             if k.startswith('model.')}
    assert convert_anomalib_efficientad(plain).keys() == state.keys()


def test_anomalib_errors():
    sd = anomalib_state_dict()
    with pytest.raises(KeyError, match=r"\['head.weight'\]"):
        convert_anomalib_efficientad(dict(sd, **{'model.head.weight':
                                                 torch.zeros(1)}))
    del sd['model.quantiles.qb_ae']
    with pytest.raises(KeyError, match=r"absent \['quantiles.qb_ae'\]"):
        convert_anomalib_efficientad(sd)


# ---------------------------------------------------------------------------
# the references' test-time computation, restated from their source, against
# converted densekit models in float64 (random, non-degenerate weights)
# ---------------------------------------------------------------------------
# ImageNet constants as float32 tensors (densekit's input_mean / input_std
# buffers and anomalib's imagenet_norm_batch both hold float32 values)
_MEAN = torch.tensor([0.485, 0.456, 0.406])[None, :, None, None]
_STD = torch.tensor([0.229, 0.224, 0.225])[None, :, None, None]


def nelson_predict(image, teacher, student, autoencoder, teacher_mean,
                   teacher_std, q_st_start=None, q_st_end=None,
                   q_ae_start=None, q_ae_end=None):
    """nelson1425 efficientad.py ``predict``."""
    teacher_output = teacher(image)
    teacher_output = (teacher_output - teacher_mean) / teacher_std
    student_output = student(image)
    autoencoder_output = autoencoder(image)
    map_st = torch.mean((teacher_output - student_output[:, :C])**2,
                        dim=1, keepdim=True)
    map_ae = torch.mean((autoencoder_output - student_output[:, C:])**2,
                        dim=1, keepdim=True)
    if q_st_start is not None:
        map_st = 0.1 * (map_st - q_st_start) / (q_st_end - q_st_start)
    if q_ae_start is not None:
        map_ae = 0.1 * (map_ae - q_ae_start) / (q_ae_end - q_ae_start)
    map_combined = 0.5 * map_st + 0.5 * map_ae
    return map_combined, map_st, map_ae


def nelson_test_one(image, orig_height, orig_width, *nets_and_stats):
    """nelson1425 efficientad.py ``test``, one image: the map written to
    the .tiff and ``y_score_image``."""
    map_combined, map_st, map_ae = nelson_predict(image, *nets_and_stats)
    map_combined = F.pad(map_combined, (4, 4, 4, 4))
    map_combined = F.interpolate(map_combined, (orig_height, orig_width),
                                 mode='bilinear')
    map_combined = map_combined[0, 0]
    return map_combined, map_combined.max()


def nelson_teacher_normalization(teacher, images):
    """nelson1425 efficientad.py ``teacher_normalization``."""
    mean_outputs = []
    for train_image in images:
        teacher_output = teacher(train_image)
        mean_outputs.append(torch.mean(teacher_output, dim=[0, 2, 3]))
    channel_mean = torch.mean(torch.stack(mean_outputs), dim=0)
    channel_mean = channel_mean[None, :, None, None]
    mean_distances = []
    for train_image in images:
        teacher_output = teacher(train_image)
        distance = (teacher_output - channel_mean)**2
        mean_distances.append(torch.mean(distance, dim=[0, 2, 3]))
    channel_var = torch.mean(torch.stack(mean_distances), dim=0)
    channel_var = channel_var[None, :, None, None]
    return channel_mean, torch.sqrt(channel_var)


def nelson_map_normalization(images, *nets_and_stats):
    """nelson1425 efficientad.py ``map_normalization``."""
    maps_st, maps_ae = [], []
    for image in images:
        _, map_st, map_ae = nelson_predict(image, *nets_and_stats)
        maps_st.append(map_st)
        maps_ae.append(map_ae)
    maps_st, maps_ae = torch.cat(maps_st), torch.cat(maps_ae)
    return (torch.quantile(maps_st, q=0.9), torch.quantile(maps_st, q=0.995),
            torch.quantile(maps_ae, q=0.9), torch.quantile(maps_ae, q=0.995))


def test_nelson_reference_maps_and_scores():
    """A current-layout nelson1425 run converted, with statistics,
    quantiles, the padded and resized map and the image score computed by
    nelson1425's code and by densekit (model args of the converter)."""
    nets = [seeded(nelson_pdn('S', C), 20).double(),
            seeded(nelson_pdn('S', 2 * C), 21).double(),
            seeded(nelson_autoencoder(), 22).double()]
    state = convert_nelson_efficientad(*nets)
    args = efficientad_model_args(state, 'nelson')
    assert args == dict(model_size='S', out_channels=C,
                        map_postprocess='nelson1425')
    model = EfficientAD(allow_random_teacher=True, **args).double().eval()
    model.load_state_dict(state, strict=True)
    g = torch.Generator().manual_seed(23)
    x = torch.rand(1, 3, 256, 256, generator=g, dtype=torch.float64)
    image = (x - _MEAN.double()) / _STD.double()  # default_transform
    with torch.no_grad():
        mean, std = nelson_teacher_normalization(nets[0], [image])
        quantiles = nelson_map_normalization([image], *nets, mean, std)
        expected, score = nelson_test_one(image, 300, 280, *nets, mean, std,
                                          *quantiles)
        model.set_teacher_stats([x])
        ours_q = model.set_map_quantiles([x])
        sample = model.predict(x, [BaseDataElement(
            metainfo=dict(ori_shape=(300, 280)))])[0]
    assert max_diff(model.teacher_mean, mean) < 1e-12 * mean.abs().max()
    # one float64 pass (E[x^2] - mean^2) against nelson1425's two: the
    # cancellation costs a few digits
    assert max_diff(model.teacher_std, std) < 1e-9 * std.abs().max()
    assert max_diff(ours_q, torch.stack(quantiles)) < 1e-12
    assert sample.anomaly_map.shape == expected.shape == (300, 280)
    assert max_diff(sample.anomaly_map, expected) < 1e-12
    assert max_diff(sample.pred_score, score) < 1e-12
    # the border is 0 on the normalised scale, the map is not degenerate
    assert float(expected[0, 0]) == 0 and float(expected.std()) > 0.01


def imagenet_norm_batch(x):
    """anomalib torch_model.py ``imagenet_norm_batch``."""
    mean = torch.tensor([0.485, 0.456, 0.406])[None, :, None, None].to(
        x.device)
    std = torch.tensor([0.229, 0.224, 0.225])[None, :, None, None].to(
        x.device)
    return (x - mean) / std


class AnomalibSmallPDN(nn.Module):
    """anomalib ``SmallPatchDescriptionNetwork``."""

    def __init__(self, out_channels, padding=False):
        super().__init__()
        pad_mult = 1 if padding else 0
        self.conv1 = nn.Conv2d(3, 128, kernel_size=4, stride=1,
                               padding=3 * pad_mult)
        self.conv2 = nn.Conv2d(128, 256, kernel_size=4, stride=1,
                               padding=3 * pad_mult)
        self.conv3 = nn.Conv2d(256, 256, kernel_size=3, stride=1,
                               padding=1 * pad_mult)
        self.conv4 = nn.Conv2d(256, out_channels, kernel_size=4, stride=1,
                               padding=0 * pad_mult)
        self.avgpool1 = nn.AvgPool2d(kernel_size=2, stride=2,
                                     padding=1 * pad_mult)
        self.avgpool2 = nn.AvgPool2d(kernel_size=2, stride=2,
                                     padding=1 * pad_mult)

    def forward(self, x):
        x = imagenet_norm_batch(x)
        x = F.relu(self.conv1(x))
        x = self.avgpool1(x)
        x = F.relu(self.conv2(x))
        x = self.avgpool2(x)
        x = F.relu(self.conv3(x))
        return self.conv4(x)


class AnomalibEncoder(nn.Module):
    """anomalib ``Encoder``."""

    def __init__(self):
        super().__init__()
        self.enconv1 = nn.Conv2d(3, 32, kernel_size=4, stride=2, padding=1)
        self.enconv2 = nn.Conv2d(32, 32, kernel_size=4, stride=2, padding=1)
        self.enconv3 = nn.Conv2d(32, 64, kernel_size=4, stride=2, padding=1)
        self.enconv4 = nn.Conv2d(64, 64, kernel_size=4, stride=2, padding=1)
        self.enconv5 = nn.Conv2d(64, 64, kernel_size=4, stride=2, padding=1)
        self.enconv6 = nn.Conv2d(64, 64, kernel_size=8, stride=1, padding=0)

    def forward(self, x):
        for i in range(1, 6):
            x = F.relu(getattr(self, f'enconv{i}')(x))
        return self.enconv6(x)


class AnomalibDecoder(nn.Module):
    """anomalib ``Decoder`` (dropout 0.2 after deconv1..6, inactive in
    eval mode)."""

    def __init__(self, out_channels, padding):
        super().__init__()
        self.padding = padding
        for i in range(1, 7):
            setattr(self, f'deconv{i}',
                    nn.Conv2d(64, 64, kernel_size=4, stride=1, padding=2))
        self.deconv7 = nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=1)
        self.deconv8 = nn.Conv2d(64, out_channels, kernel_size=3, stride=1,
                                 padding=1)
        for i in range(1, 7):
            setattr(self, f'dropout{i}', nn.Dropout(p=0.2))

    def forward(self, x, image_size):
        last_upsample = (
            math.ceil(image_size[0] / 4) if self.padding else
            math.ceil(image_size[0] / 4) - 8,
            math.ceil(image_size[1] / 4) if self.padding else
            math.ceil(image_size[1] / 4) - 8,
        )
        sizes = [(image_size[0] // 64 - 1, image_size[1] // 64 - 1),
                 (image_size[0] // 32, image_size[1] // 32),
                 (image_size[0] // 16 - 1, image_size[1] // 16 - 1),
                 (image_size[0] // 8, image_size[1] // 8),
                 (image_size[0] // 4 - 1, image_size[1] // 4 - 1),
                 (image_size[0] // 2 - 1, image_size[1] // 2 - 1)]
        for i, size in enumerate(sizes, 1):
            x = F.interpolate(x, size=size, mode='bilinear')
            x = F.relu(getattr(self, f'deconv{i}')(x))
            x = getattr(self, f'dropout{i}')(x)
        x = F.interpolate(x, size=last_upsample, mode='bilinear')
        x = F.relu(self.deconv7(x))
        return self.deconv8(x)


class AnomalibAutoEncoder(nn.Module):
    """anomalib ``AutoEncoder``."""

    def __init__(self, out_channels, padding):
        super().__init__()
        self.encoder = AnomalibEncoder()
        self.decoder = AnomalibDecoder(out_channels, padding)

    def forward(self, x, image_size):
        x = imagenet_norm_batch(x)
        x = self.encoder(x)
        return self.decoder(x, image_size)


class AnomalibEfficientAdModel(nn.Module):
    """anomalib ``EfficientAdModel`` (size S) at test time: ``forward`` in
    eval mode, ``get_maps`` and the Lightning module's
    ``map_norm_quantiles``."""

    def __init__(self, teacher_out_channels, padding=False, pad_maps=True):
        super().__init__()
        self.pad_maps = pad_maps
        self.teacher = AnomalibSmallPDN(teacher_out_channels, padding).eval()
        self.student = AnomalibSmallPDN(teacher_out_channels * 2, padding)
        self.ae = AnomalibAutoEncoder(teacher_out_channels, padding)
        self.teacher_out_channels = teacher_out_channels
        self.mean_std = nn.ParameterDict({
            'mean': torch.zeros((1, teacher_out_channels, 1, 1)),
            'std': torch.zeros((1, teacher_out_channels, 1, 1))})
        self.quantiles = nn.ParameterDict({
            'qa_st': torch.tensor(0.0), 'qb_st': torch.tensor(0.0),
            'qa_ae': torch.tensor(0.0), 'qb_ae': torch.tensor(0.0)})

    @staticmethod
    def is_set(p_dic):
        return any(value.sum() != 0 for _, value in p_dic.items())

    def forward(self, batch, normalize=True):
        student_output, distance_st = \
            self.compute_student_teacher_distance(batch)
        map_st, map_stae = self.compute_maps(batch, student_output,
                                             distance_st, normalize)
        anomaly_map = 0.5 * map_st + 0.5 * map_stae
        pred_score = torch.amax(anomaly_map, dim=(-2, -1))
        return pred_score, anomaly_map

    def compute_student_teacher_distance(self, batch):
        with torch.no_grad():
            teacher_output = self.teacher(batch)
            if self.is_set(self.mean_std):
                teacher_output = (teacher_output - self.mean_std['mean']) / \
                    self.mean_std['std']
        student_output = self.student(batch)
        distance_st = torch.pow(
            teacher_output -
            student_output[:, :self.teacher_out_channels, :, :], 2)
        return student_output, distance_st

    def compute_maps(self, batch, student_output, distance_st,
                     normalize=True):
        image_size = batch.shape[-2:]
        with torch.no_grad():
            ae_output = self.ae(batch, image_size)
            map_st = torch.mean(distance_st, dim=1, keepdim=True)
            map_stae = torch.mean(
                (ae_output - student_output[:, self.teacher_out_channels:])
                ** 2, dim=1, keepdim=True)
        if self.pad_maps:
            map_st = F.pad(map_st, (4, 4, 4, 4))
            map_stae = F.pad(map_stae, (4, 4, 4, 4))
        map_st = F.interpolate(map_st, size=image_size, mode='bilinear')
        map_stae = F.interpolate(map_stae, size=image_size, mode='bilinear')
        if self.is_set(self.quantiles) and normalize:
            q = self.quantiles
            map_st = 0.1 * (map_st - q['qa_st']) / (q['qb_st'] - q['qa_st'])
            map_stae = 0.1 * (map_stae - q['qa_ae']) / \
                (q['qb_ae'] - q['qa_ae'])
        return map_st, map_stae

    def get_maps(self, batch, normalize=False):
        student_output, distance_st = \
            self.compute_student_teacher_distance(batch)
        return self.compute_maps(batch, student_output, distance_st,
                                 normalize)

    def map_norm_quantiles(self, images):
        """lightning_model.py ``map_norm_quantiles`` /
        ``_get_quantiles_of_maps`` (fewer than 2**24 elements: no
        sampling)."""
        maps_st, maps_ae = [], []
        for img in images:
            map_st, map_ae = self.get_maps(img, normalize=False)
            maps_st.append(map_st)
            maps_ae.append(map_ae)
        out = {}
        for name, maps in (('st', maps_st), ('ae', maps_ae)):
            maps_flat = torch.cat(maps).flatten()
            out[f'qa_{name}'] = torch.quantile(maps_flat, q=0.9)
            out[f'qb_{name}'] = torch.quantile(maps_flat, q=0.995)
        return out


@pytest.mark.parametrize('padding,pad_maps', [(False, True), (True, True),
                                              (False, False)])
def test_anomalib_reference_maps_and_scores(padding, pad_maps):
    """anomalib's EfficientAdModel with statistics: its anomaly map (pad,
    resize, then normalise), image score and quantiles, against a densekit
    model converted from its Lightning checkpoint with the converter's
    model args, in float64."""
    reference = AnomalibEfficientAdModel(C, padding, pad_maps)
    for i, net in enumerate((reference.teacher, reference.student,
                             reference.ae)):
        seeded(net, 30 + i)
    reference.eval().double()
    g = torch.Generator().manual_seed(31)
    x = torch.rand(1, 3, 256, 256, generator=g, dtype=torch.float64)

    def as_saved(value):  # anomalib's statistics are float32
        return value.float().double()

    with torch.no_grad():
        teacher = reference.teacher(x)
        # non-degenerate statistics near the teacher's
        reference.mean_std['mean'].copy_(as_saved(
            teacher.mean(dim=(0, 2, 3), keepdim=True)))
        reference.mean_std['std'].copy_(as_saved(
            teacher.std(dim=(0, 2, 3), keepdim=True) *
            (0.8 + 0.4 * torch.rand(1, C, 1, 1, generator=g,
                                    dtype=torch.float64))))
        reference_q = reference.map_norm_quantiles([x])
        for name, value in reference_q.items():
            reference.quantiles[name].copy_(as_saved(value))
        score, expected = reference(x)
    checkpoint = {'state_dict': {f'model.{k}': v for k, v in
                                 reference.state_dict().items()},
                  'hyper_parameters': dict(model_size='small',
                                           padding=padding,
                                           pad_maps=pad_maps)}
    state = convert_anomalib_efficientad(checkpoint)
    args = efficientad_model_args(state, 'anomalib',
                                  checkpoint['hyper_parameters'])
    assert args == dict(model_size='S', out_channels=C,
                        map_postprocess='anomalib', padding=padding,
                        pad_maps=pad_maps)
    model = EfficientAD(allow_random_teacher=True, **args).double().eval()
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        sample = model.predict(x, [BaseDataElement(
            metainfo=dict(ori_shape=(256, 256)))])[0]
        quantiles = model.quantiles.clone()
        recomputed = model.set_map_quantiles([x])
    assert sample.anomaly_map.shape == expected.shape[-2:] == (256, 256)
    print('anomaly map:', end=' ')
    assert max_diff(sample.anomaly_map, expected[0, 0]) < 1e-12
    print('image score:', end=' ')
    assert max_diff(sample.pred_score, score[0, 0]) < 1e-12
    print('quantiles (densekit set_map_quantiles vs anomalib):', end=' ')
    assert max_diff(recomputed, torch.stack(
        [reference_q[k] for k in ('qa_st', 'qb_st', 'qa_ae', 'qb_ae')])) \
        < 1e-12
    # the border is the normalised 0 of both maps (with padding)
    q = quantiles.tolist()
    border = 0.5 * (-0.1 * q[0] / (q[1] - q[0])) + \
        0.5 * (-0.1 * q[2] / (q[3] - q[2]))
    if pad_maps:
        assert float(expected[0, 0, 0, 0]) == pytest.approx(border,
                                                            rel=1e-9)
    assert float(expected.std()) > 0.01
    # nelson1425's order, same weights and quantiles: another border with
    # padded maps; without padding the orders agree (resizing is affine)
    nelson = EfficientAD(allow_random_teacher=True,
                         **dict(args, map_postprocess='nelson1425'))
    nelson.double().eval()
    nelson.load_state_dict(model.state_dict())
    nelson.quantiles.copy_(quantiles)
    with torch.no_grad():
        other = nelson.predict(x, [BaseDataElement(
            metainfo=dict(ori_shape=(256, 256)))])[0]
    print('nelson1425 order vs anomalib:', end=' ')
    diff = max_diff(other.anomaly_map, expected[0, 0])
    assert diff > 1e-3 if pad_maps else diff < 1e-12


# ---------------------------------------------------------------------------
# load_teacher_checkpoint
# ---------------------------------------------------------------------------
def test_load_teacher_checkpoint_layouts(tmp_path, nelson_s):
    official = nelson_s[0]
    expected = official.state_dict()
    ours = convert_pdn(expected)
    densekit_model = EfficientAD(model_size='S', allow_random_teacher=True)
    densekit_model.teacher.load_state_dict(ours)
    anomalib = anomalib_state_dict()
    anomalib.update({f'model.teacher.{k}': v for k, v in ours.items()})
    files = [
        # models/teacher_small.pth
        ('nelson1425 nn.Sequential teacher', expected),
        # anomalib's pretrained_teacher_small.pth
        ('PDN state dict', ours),
        # tools/anomaly/distill_teacher.py
        ('PDN state dict', {'state_dict': ours, 'meta': {}}),
        ('anomalib Lightning model', {'state_dict': anomalib}),
        ('whole EfficientAD model', {'state_dict':
                                     densekit_model.state_dict()}),
    ]
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        reference = official(x)
    for i, (layout, content) in enumerate(files):
        path = str(tmp_path / f'teacher{i}.pth')
        torch.save(content, path)
        teacher = PatchDescriptionNetwork('S', C).eval()
        assert load_teacher_checkpoint(teacher, path) == layout
        with torch.no_grad():
            assert torch.equal(teacher(x), reference), layout
    # through the model's init_weights
    model = EfficientAD(model_size='S', teacher_checkpoint=path)
    model.init_weights()
    assert torch.equal(model.teacher.conv4.weight, ours['conv4.weight'])
    assert teacher_state_dict(expected)[1] == \
        'nelson1425 nn.Sequential teacher'


def test_load_teacher_checkpoint_errors(tmp_path, nelson_s):
    missing = str(tmp_path / 'nowhere.pth')
    with pytest.raises(FileNotFoundError, match='nowhere.pth does not exist'):
        load_teacher_checkpoint(PatchDescriptionNetwork('S'), missing)
    # nelson1425's teacher_final.pth: torch.save(module)
    pickled = str(tmp_path / 'teacher_final.pth')
    torch.save(nelson_s[0], pickled)
    with pytest.raises(ValueError, match=r'teacher_final.pth is not a plain '
                       r'state dict \(.*Unsupported global.*\).*'
                       r'efficientad_to_densekit.py nelson .*--unsafe-load'):
        load_teacher_checkpoint(PatchDescriptionNetwork('S'), pickled)
    # a PDN-S file for a PDN-M teacher
    small = str(tmp_path / 'teacher_small.pth')
    torch.save(nelson_s[0].state_dict(), small)
    with pytest.raises(ValueError) as err:
        load_teacher_checkpoint(PatchDescriptionNetwork('M'), small)
    message = str(err.value)
    print(message)
    assert 'teacher_small.pth (nelson1425 nn.Sequential teacher) does not ' \
        'fit the teacher (PDN-M with 384 channels)' in message
    assert 'missing in checkpoint: conv5.weight' in message
    assert 'shape of conv1.weight: checkpoint (128, 3, 4, 4), model ' \
        '(256, 3, 4, 4)' in message
    # another channel count
    with pytest.raises(ValueError, match=r'shape of conv4.weight: '
                       r'checkpoint \(384, 256, 4, 4\), model '
                       r'\(16, 256, 4, 4\)'):
        load_teacher_checkpoint(PatchDescriptionNetwork('S', 16), small)
    # keys of no known layout
    odd = str(tmp_path / 'odd.pth')
    torch.save({'backbone.stem.weight': torch.zeros(1),
                'fc.weight': torch.zeros(1)}, odd)
    with pytest.raises(ValueError, match=r"odd.pth: convert_pdn: 2 keys not "
                       r".*\['backbone.stem.weight', 'fc.weight'\]"):
        load_teacher_checkpoint(PatchDescriptionNetwork('S'), odd)


# ---------------------------------------------------------------------------
# the CLI
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def convert():
    """``convert.py efficientad *argv`` -> exit status."""
    from tests.converter_cli import convert_cli
    return convert_cli('efficientad')


@pytest.fixture(scope='module')
def old_tool():
    """The old command, now an alias of convert.py."""
    spec = importlib.util.spec_from_file_location(
        'efficientad_to_densekit',
        osp.join(ROOT, 'tools', 'model_converters',
                 'efficientad_to_densekit.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool_nelson(tmp_path, capsys, convert, old_tool, nelson_s):
    names = ('teacher', 'student', 'autoencoder')
    args = []
    for name, module in zip(names, nelson_s):
        path = tmp_path / f'{name}_final.pth'
        torch.save(module, path)  # as efficientad.py does
        args += [f'--{name}', str(path)]
    dst = str(tmp_path / 'densekit.pth')
    # whole pickled modules: refused without --unsafe-load, nothing written
    assert convert([tmp_path, dst]) == 1
    line = capsys.readouterr().out.splitlines()[0]
    assert 'weights_only=True' in line and '--unsafe-load' in line
    assert not osp.exists(dst)
    # the run directory (teacher_final.pth, ...) with the old command's
    # arguments through the alias
    assert old_tool.main(['nelson', *args, '--size', 'S', dst,
                          '--unsafe-load', '--check']) == 0
    out = capsys.readouterr().out
    assert 'every key and shape matches EfficientAD-S' in out
    assert "model=dict(model_size='S')" in out
    model = EfficientAD(model_size='S', allow_random_teacher=True)
    saved = load_checkpoint(model, dst, map_location='cpu', strict=True)
    assert saved['meta']['converter'] == 'convert_efficientad'
    assert saved['meta']['source'] == 'nelson'
    assert saved['meta']['model_size'] == 'S'
    assert saved['meta']['model_args']['map_postprocess'] == 'nelson1425'
    assert not saved['meta']['has_teacher_stats']
    assert torch.equal(model.student.conv2.weight, nelson_s[1][3].weight)
    assert torch.equal(model.autoencoder.decoder.deconv1.weight,
                       nelson_s[2][12].weight)
    # the current layout (decoder dropout): deconv8 is index 38
    assert torch.equal(model.autoencoder.decoder.deconv8.weight,
                       nelson_s[2][38].weight)
    # the converted file is a teacher_checkpoint as well
    teacher = PatchDescriptionNetwork('S', C)
    assert load_teacher_checkpoint(teacher, dst) == 'whole EfficientAD model'
    assert torch.equal(teacher.conv1.weight, nelson_s[0][0].weight)
    # the directory form of convert.py; a wrong --size is refused
    assert convert([tmp_path, dst, '--unsafe-load']) == 0
    capsys.readouterr()
    assert convert([tmp_path, dst, '--unsafe-load', '--size', 'M']) == 1
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith('cannot convert') and 'PDN-S' in line


def test_tool_anomalib(tmp_path, capsys, convert):
    src, dst = str(tmp_path / 'model.ckpt'), str(tmp_path / 'densekit.pth')
    sd = anomalib_state_dict('S')
    torch.save({'state_dict': sd, 'epoch': 3, 'global_step': 70000,
                'hyper_parameters': {'model_size': 'small', 'padding': True,
                                     'lr': 1e-4}}, src)
    assert convert([src, dst, '--check']) == 0
    out = capsys.readouterr().out
    assert 'teacher statistics set, quantiles set' in out
    # anomalib's map order (pads even with padding=True, pad_maps default)
    assert "model=dict(model_size='S', padding=True, " \
        "map_postprocess='anomalib')" in out
    model = EfficientAD(model_size='S', padding=True,
                        map_postprocess='anomalib',
                        allow_random_teacher=True)
    assert model.pad_maps
    saved = load_checkpoint(model, dst, map_location='cpu', strict=True)
    assert saved['meta']['anomalib_hyper_parameters'] == dict(
        model_size='small', padding=True)
    assert saved['meta']['model_args'] == dict(
        model_size='S', out_channels=C, map_postprocess='anomalib',
        padding=True, pad_maps=True)
    assert model.has_quantiles and model.has_teacher_stats
    assert torch.equal(model.teacher_mean, sd['model.mean_std.mean'])
    # pad_maps=False recorded; no hyper-parameters: anomalib's defaults
    torch.save({'state_dict': sd, 'hyper_parameters': {'pad_maps': False}},
               src)
    assert convert([src, dst]) == 0
    assert "model=dict(model_size='S', pad_maps=False, " \
        "map_postprocess='anomalib')" in capsys.readouterr().out
    torch.save({'state_dict': sd}, src)
    assert convert([src, dst, '--check']) == 0
    out = capsys.readouterr().out
    assert "defaults padding=False, pad_maps=True assumed" in out
    assert "model=dict(model_size='S', map_postprocess='anomalib')" in out
    # keys of no EfficientAD layout: one line, status 1, nothing written
    bad = str(tmp_path / 'bad.ckpt')
    torch.save({'state_dict': dict(sd, **{'model.head.weight':
                                          torch.zeros(1)})}, bad)
    assert convert([bad, str(tmp_path / 'no.pth')]) == 1
    line = capsys.readouterr().out.splitlines()[0]
    assert 'not in the anomalib EfficientAdModel layout' in line
    assert not (tmp_path / 'no.pth').exists()


def test_efficientad_model_args():
    state = convert_anomalib_efficientad(anomalib_state_dict('M'))
    assert efficientad_model_args(state, 'anomalib') == dict(
        model_size='M', out_channels=C, map_postprocess='anomalib',
        padding=False, pad_maps=True)
    assert efficientad_model_args(state, 'nelson') == dict(
        model_size='M', out_channels=C, map_postprocess='nelson1425')
    with pytest.raises(ValueError, match="'nelson' or 'anomalib', got 'x'"):
        efficientad_model_args(state, 'x')


def test_tool_check_reports_mismatches(nelson_s):
    from densekit.models.utils.checkpoint import state_dict_problems
    from densekit.models.weight_converters import CONVERTERS
    spec = CONVERTERS['efficientad']
    state = convert_nelson_efficientad(*nelson_s)
    found = spec.describe(state, {'teacher': {}, 'student': {},
                                  'autoencoder': {}}, None)
    model = spec.default_model(state, found, False, None)
    assert state_dict_problems(state, model.state_dict())[0] == []
    state.pop('quantiles')
    state['teacher_std'] = torch.ones(1, 8, 1, 1)
    problems = state_dict_problems(state, model.state_dict())[0]
    assert 'missing in checkpoint: quantiles' in problems
    assert any(p.startswith('shape of teacher_std') for p in problems)

"""EfficientAD checkpoint conversion (densekit/models/utils/
efficient_ad_convert.py and tools/model_converters/efficientad_to_densekit
.py): state dicts in nelson1425/EfficientAD's and anomalib's layouts, built
here, converted and loaded strictly, with the official forward passes
compared numerically."""
import importlib.util
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.runner import load_checkpoint

from densekit.models.anomaly_detectors.efficient_ad import EfficientAD
from densekit.models.layers.patch_description_network import (
    EfficientADAutoencoder, PatchDescriptionNetwork)
from densekit.models.utils.efficient_ad_convert import (
    NELSON_PDN_CONVS, convert_anomalib_efficientad, convert_autoencoder,
    convert_nelson_efficientad, convert_pdn, efficientad_arch,
    load_teacher_checkpoint, teacher_state_dict)

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


def nelson_autoencoder(out_channels=C):
    layers = []
    for cin, cout in ((3, 32), (32, 32), (32, 64), (64, 64), (64, 64)):
        layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), _relu()]
    layers.append(nn.Conv2d(64, 64, 8))
    # the resize targets are fixed for 256x256 inputs
    for size in (3, 8, 15, 32, 63, 127):
        layers += [nn.Upsample(size=size, mode='bilinear'),
                   nn.Conv2d(64, 64, 4, stride=1, padding=2), _relu()]
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


def test_nelson_autoencoder_parity():
    official = seeded(nelson_autoencoder(), 11)
    ours = EfficientADAutoencoder(C).eval()  # dropout off
    ours.load_state_dict(convert_autoencoder(official.state_dict()),
                         strict=True)
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        expected, out = official(x.clone()), ours(x.clone())
    assert out.shape == expected.shape == (1, C, 56, 56)
    assert max_diff(out, expected) < 1e-5
    converted = convert_autoencoder(ours.state_dict())
    assert converted.keys() == ours.state_dict().keys()


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
    ae = nelson_autoencoder().state_dict()
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
def tool():
    spec = importlib.util.spec_from_file_location(
        'efficientad_to_densekit',
        osp.join(ROOT, 'tools', 'model_converters',
                 'efficientad_to_densekit.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool_nelson(tmp_path, capsys, tool, nelson_s):
    assert tool.convert_nelson_efficientad is convert_nelson_efficientad
    names = ('teacher', 'student', 'autoencoder')
    args = []
    for name, module in zip(names, nelson_s):
        path = tmp_path / f'{name}_final.pth'
        torch.save(module, path)  # as efficientad.py does
        args += [f'--{name}', str(path)]
    dst = str(tmp_path / 'densekit.pth')
    with pytest.raises(RuntimeError, match='--unsafe-load'):
        tool.main(['nelson', *args, '--size', 'S', dst])
    assert tool.main(['nelson', *args, '--size', 'S', dst,
                      '--unsafe-load', '--check']) == 0
    out = capsys.readouterr().out
    assert 'every key and shape matches EfficientAD-S' in out
    assert "model=dict(model_size='S')" in out
    model = EfficientAD(model_size='S', allow_random_teacher=True)
    saved = load_checkpoint(model, dst, map_location='cpu', strict=True)
    assert saved['meta']['converter'] == 'convert_nelson_efficientad'
    assert saved['meta']['model_size'] == 'S'
    assert not saved['meta']['has_teacher_stats']
    assert torch.equal(model.student.conv2.weight, nelson_s[1][3].weight)
    assert torch.equal(model.autoencoder.decoder.deconv1.weight,
                       nelson_s[2][12].weight)
    # the converted file is a teacher_checkpoint as well
    teacher = PatchDescriptionNetwork('S', C)
    assert load_teacher_checkpoint(teacher, dst) == 'whole EfficientAD model'
    assert torch.equal(teacher.conv1.weight, nelson_s[0][0].weight)
    with pytest.raises(ValueError, match='PDN-S'):
        tool.main(['nelson', *args, '--size', 'M', dst, '--unsafe-load'])


def test_tool_anomalib(tmp_path, capsys, tool):
    src, dst = str(tmp_path / 'model.ckpt'), str(tmp_path / 'densekit.pth')
    sd = anomalib_state_dict('S')
    torch.save({'state_dict': sd, 'epoch': 3, 'global_step': 70000,
                'hyper_parameters': {'model_size': 'small', 'padding': True,
                                     'lr': 1e-4}}, src)
    assert tool.main(['anomalib', src, dst, '--check']) == 0
    out = capsys.readouterr().out
    assert 'teacher statistics set, quantiles set' in out
    assert "model=dict(model_size='S', padding=True)" in out
    model = EfficientAD(model_size='S', padding=True,
                        allow_random_teacher=True)
    saved = load_checkpoint(model, dst, map_location='cpu', strict=True)
    assert saved['meta']['anomalib_hyper_parameters'] == dict(
        model_size='small', padding=True)
    assert model.has_quantiles and model.has_teacher_stats
    assert torch.equal(model.teacher_mean, sd['model.mean_std.mean'])


def test_tool_check_reports_mismatches(tool, nelson_s):
    state = convert_nelson_efficientad(*nelson_s)
    assert tool.check_against_model(state) == []
    state.pop('quantiles')
    state['teacher_std'] = torch.ones(1, 8, 1, 1)
    problems = tool.check_against_model(state)
    assert 'missing in checkpoint: quantiles' in problems
    assert any(p.startswith('shape of teacher_std') for p in problems)

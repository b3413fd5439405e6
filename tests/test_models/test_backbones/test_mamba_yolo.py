"""MambaYOLO: feature contract, padding, freezing, and the converter of
official (ultralytics) checkpoints, tested on generated official-style keys."""
import copy
import functools
import math

import pytest
import torch
import torch.nn as nn

from densekit.models.backbones import MambaYOLO, convert_mamba_yolo
from densekit.models.dense_heads import YOLOv8Head
from densekit.models.necks import MambaYOLOPAFPN

# (deepen, widen, max_channels) of the official yamls, and the expected
# P3/P4/P5 channels
SCALES = dict(T=(0.33, 0.25, 1024), B=(0.33, 0.50, 1024),
              L=(0.67, 0.75, 768))
CHANNELS = dict(T=[64, 128, 256], B=[128, 256, 512], L=[192, 384, 576])


@functools.lru_cache(maxsize=None)
def backbone(arch):
    """One MambaYOLO of each official scale per module, in eval mode;
    tests that change weights take a ``copy.deepcopy``."""
    torch.manual_seed(0)
    return MambaYOLO(arch=arch).eval()


@pytest.mark.parametrize('arch', ['T', 'B', 'L'])
def test_feature_contract(arch):
    model = backbone(arch)
    assert model.out_channels == CHANNELS[arch]
    assert model.out_strides == [8, 16, 32]
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 64, 64))
    assert len(feats) == 3
    for feat, info in zip(feats, model.feature_info):
        assert feat.shape == (1, info['channels'], 64 // info['stride'],
                              64 // info['stride'])
        assert torch.isfinite(feat).all()


@pytest.mark.parametrize('size', [(40, 72), (33, 31), (100, 64)])
def test_pads_sizes_not_divisible_by_32(size):
    model = MambaYOLO(arch='T', out_indices=(0, 1, 2, 3, 4)).eval()
    with torch.no_grad():
        feats = model(torch.rand(1, 3, *size))
    padded = [math.ceil(s / 32) * 32 for s in size]
    for feat, stride in zip(feats, [4, 4, 8, 16, 32]):
        assert tuple(feat.shape[-2:]) == (padded[0] // stride,
                                          padded[1] // stride)


def test_depths_and_overrides():
    model = backbone('L')
    assert [len(model.stages[i].blocks) for i in range(1, 5)] == [2, 2, 6, 2]
    model = backbone('T')
    assert [len(model.stages[i].blocks) for i in range(1, 5)] == [1, 1, 3, 1]
    custom = MambaYOLO(arch='T', widen_factor=0.125, deepen_factor=0.1)
    assert custom.out_channels == [32, 64, 128]
    assert all(len(custom.stages[i].blocks) == 1 for i in range(1, 5))


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='S'), "arch must be one of"),
    (dict(out_indices=(5, )), 'out_indices'),
    (dict(frozen_stages=5), 'frozen_stages'),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MambaYOLO(**kwargs)


# --------------------------------------------------------------- converter
# The official yaml (Mamba-YOLO-{T,B,L}.yaml), as [from, repeats, module,
# args]; the generator below builds the official state-dict keys and shapes
# from it, following ultralytics' parse_model and the official modules.
OFFICIAL_YAML = [
    [-1, 1, 'SimpleStem', [128, 3]], [-1, 3, 'VSSBlock', [128]],
    [-1, 1, 'VisionClueMerge', [256]], [-1, 3, 'VSSBlock', [256]],
    [-1, 1, 'VisionClueMerge', [512]], [-1, 9, 'VSSBlock', [512]],
    [-1, 1, 'VisionClueMerge', [1024]], [-1, 3, 'VSSBlock', [1024]],
    [-1, 1, 'SPPF', [1024, 5]],
    [-1, 1, 'Upsample', []], [[-1, 5], 1, 'Concat', [1]],
    [-1, 3, 'XSSBlock', [512]],
    [-1, 1, 'Upsample', []], [[-1, 3], 1, 'Concat', [1]],
    [-1, 3, 'XSSBlock', [256]],
    [-1, 1, 'Conv', [256, 3, 2]], [[-1, 11], 1, 'Concat', [1]],
    [-1, 3, 'XSSBlock', [512]],
    [-1, 1, 'Conv', [512, 3, 2]], [[-1, 8], 1, 'Concat', [1]],
    [-1, 3, 'XSSBlock', [1024]],
    [[14, 17, 20], 1, 'Detect', [80]],
]


def _bn(p, c):
    return {f'{p}.weight': (c, ), f'{p}.bias': (c, ),
            f'{p}.running_mean': (c, ), f'{p}.running_var': (c, ),
            f'{p}.num_batches_tracked': ()}


def _conv(p, c1, c2, k):  # ultralytics Conv: conv (no bias) + bn
    return {f'{p}.conv.weight': (c2, c1, k, k), **_bn(f'{p}.bn', c2)}


def _ln(p, c):  # official LayerNorm2d wraps nn.LayerNorm as `.norm`
    return {f'{p}.norm.weight': (c, ), f'{p}.norm.bias': (c, )}


def _ss2d(p, c):
    d, r, n = 2 * c, math.ceil(c / 16), 16
    return {f'{p}.in_proj.weight': (2 * d, c, 1, 1),
            f'{p}.conv2d.weight': (d, 1, 3, 3), f'{p}.conv2d.bias': (d, ),
            f'{p}.x_proj_weight': (4, r + 2 * n, d),
            f'{p}.out_proj.weight': (c, d, 1, 1), f'{p}.Ds': (4 * d, ),
            f'{p}.A_logs': (4 * d, n), f'{p}.dt_projs_weight': (4, d, r),
            f'{p}.dt_projs_bias': (4, d), f'{p}.out_norm.weight': (d, ),
            f'{p}.out_norm.bias': (d, )}


def _ls_rg(p, c):  # LSBlock(c, c) and RGBlock(c, 4c) of VSS/XSS blocks
    h = int(2 * 4 * c / 3)
    return {f'{p}.lsblock.fc1.weight': (c, 1, 3, 3),
            f'{p}.lsblock.fc1.bias': (c, ), **_bn(f'{p}.lsblock.norm', c),
            f'{p}.lsblock.fc2.weight': (c, c, 1, 1),
            f'{p}.lsblock.fc2.bias': (c, ),
            f'{p}.lsblock.fc3.weight': (c, c, 1, 1),
            f'{p}.lsblock.fc3.bias': (c, ),
            f'{p}.mlp.fc1.weight': (2 * h, c, 1, 1),
            f'{p}.mlp.fc1.bias': (2 * h, ),
            f'{p}.mlp.dwconv.weight': (h, 1, 3, 3),
            f'{p}.mlp.dwconv.bias': (h, ),
            f'{p}.mlp.fc2.weight': (c, h, 1, 1), f'{p}.mlp.fc2.bias': (c, ),
            **_ln(f'{p}.norm', c), **_ln(f'{p}.norm2', c)}


def official_shapes(arch):
    """Official DetectionModel state-dict keys -> shapes for one scale."""
    depth, width, max_ch = SCALES[arch]
    shapes, ch = {}, [3]
    for i, (f, n, m, args) in enumerate(OFFICIAL_YAML):
        n = max(round(n * depth), 1) if n > 1 else n
        p = f'model.{i}'
        c1 = ch[f] if isinstance(f, int) else None
        if m in ('SimpleStem', 'VSSBlock', 'VisionClueMerge', 'SPPF',
                 'XSSBlock', 'Conv'):
            c2 = math.ceil(min(args[0], max_ch) * width / 8) * 8
        if m == 'SimpleStem':
            shapes.update({f'{p}.conv.0.weight': (c2 // 2, c1, 3, 3),
                           **_bn(f'{p}.conv.1', c2 // 2),
                           f'{p}.conv.3.weight': (c2, c2 // 2, 3, 3),
                           **_bn(f'{p}.conv.4', c2)})
        elif m == 'VSSBlock':  # n > 1: nn.Sequential of n VSSBlock(c1, c2)
            for j in range(n):
                q = f'{p}.{j}' if n > 1 else p
                shapes.update({f'{q}.proj_conv.0.weight': (c2, c1, 1, 1),
                               f'{q}.proj_conv.0.bias': (c2, ),
                               **_bn(f'{q}.proj_conv.1', c2),
                               **_ss2d(f'{q}.op', c2), **_ls_rg(q, c2)})
        elif m == 'VisionClueMerge':
            shapes.update({f'{p}.pw_linear.0.weight': (c2, 4 * c1, 1, 1),
                           f'{p}.pw_linear.0.bias': (c2, ),
                           **_bn(f'{p}.pw_linear.1', c2)})
        elif m == 'SPPF':
            shapes.update({**_conv(f'{p}.cv1', c1, c1 // 2, 1),
                           **_conv(f'{p}.cv2', c1 // 2 * 4, c2, 1)})
        elif m == 'XSSBlock':  # n goes into the block: n chained SS2D
            assert c1 != c2  # in_proj present at every neck block
            shapes.update({f'{p}.in_proj.0.weight': (c2, c1, 1, 1),
                           **_bn(f'{p}.in_proj.1', c2), **_ls_rg(p, c2)})
            for j in range(n):
                shapes.update(_ss2d(f'{p}.ss2d.{j}', c2))
        elif m == 'Conv':
            shapes.update(_conv(p, c1, c2, args[1]))
        elif m == 'Concat':
            c2 = sum(ch[x] for x in f)
        elif m == 'Upsample':
            c2 = c1
        elif m == 'Detect':
            chs = [ch[x] for x in f]
            reg = max(16, chs[0] // 4, 64)
            cls = max(chs[0], min(args[0], 100))
            for k, c in enumerate(chs):
                for name, hid, out in (('cv2', reg, 64), ('cv3', cls, 80)):
                    shapes.update({**_conv(f'{p}.{name}.{k}.0', c, hid, 3),
                                   **_conv(f'{p}.{name}.{k}.1', hid, hid, 3),
                                   f'{p}.{name}.{k}.2.weight':
                                   (out, hid, 1, 1),
                                   f'{p}.{name}.{k}.2.bias': (out, )})
            shapes[f'{p}.dfl.conv.weight'] = (1, 16, 1, 1)
        if i == 0:
            ch = []
        ch.append(c2)
    return shapes


def official_state_dict(arch):
    return {k: (torch.tensor(7) if s == () else torch.randn(s))
            for k, s in official_shapes(arch).items()}


@pytest.fixture(scope='module')
def densekit_state_dicts():
    cache = {}

    def get(arch):
        if arch not in cache:
            torch.manual_seed(0)
            model = nn.Module()
            model.backbone = copy.deepcopy(backbone(arch)).train()
            model.neck = MambaYOLOPAFPN(
                in_channels=model.backbone.out_channels,
                deepen_factor=SCALES[arch][0])
            model.bbox_head = YOLOv8Head(num_classes=80,
                                         in_channels=model.neck.out_channels)
            cache[arch] = model
        return cache[arch]
    return get


@pytest.mark.parametrize('arch', ['T', 'L'])
def test_converter_maps_every_official_key(arch, densekit_state_dicts):
    model = densekit_state_dicts(arch)
    official = official_state_dict(arch)
    # the generated official model has the published parameter count
    official_params = sum(v.numel() for k, v in official.items()
                          if 'running' not in k and 'num_batches' not in k)
    ours = sum(p.numel() for p in model.parameters())
    assert official_params == ours + 16  # + the fixed DFL conv weight
    converted = convert_mamba_yolo(official)
    print(f'Mamba YOLO-{arch}: {len(converted)} tensors mapped from '
          f'{len(official)} official keys')
    target = model.state_dict()
    assert sorted(converted) == sorted(target)
    for key, value in converted.items():
        assert value.shape == target[key].shape, key
    model.load_state_dict(converted, strict=True)
    # values are carried, not re-initialised
    assert torch.equal(model.backbone.stages[3].blocks[2].ss2d.A_logs,
                       official['model.5.2.op.A_logs'])
    assert torch.equal(model.bbox_head.cls_towers[2][2].bias,
                       official['model.21.cv3.2.2.bias'])


def test_converter_is_idempotent_unwraps_and_reports(densekit_state_dicts):
    official = official_state_dict('T')
    from densekit.models.utils.checkpoint import UnconvertedKeysError
    converted = convert_mamba_yolo(official)
    again = convert_mamba_yolo(converted)
    assert again == converted
    # ultralytics {'ema': module}, mmengine {'state_dict': ...}
    holder = nn.Module()
    holder.model = nn.Sequential(nn.Conv2d(1, 1, 1))
    with pytest.raises(UnconvertedKeysError) as info:
        convert_mamba_yolo({'ema': holder, 'model': None})
    assert info.value.keys == ['model.0.weight', 'model.0.bias']
    wrapped = convert_mamba_yolo({'state_dict': official})
    assert sorted(wrapped) == sorted(converted)
    # unknown keys are refused, every one listed, never passed through
    extra = dict(official, **{'model.22.foo': torch.zeros(1),
                              'other.weight': torch.zeros(1)})
    with pytest.raises(UnconvertedKeysError,
                       match=r"2 keys not in the official Mamba YOLO") as info:
        convert_mamba_yolo(extra)
    assert info.value.keys == ['model.22.foo', 'other.weight']
    assert info.value.total == len(extra)
    # half-precision files (released ultralytics weights) become float32
    half = convert_mamba_yolo({k: v.half() if v.is_floating_point() else v
                               for k, v in official.items()})
    assert all(v.dtype != torch.float16 for v in half.values())
    with pytest.raises(ValueError, match='always converted'):
        convert_mamba_yolo(official, with_head=True)
    with pytest.raises(TypeError, match='state dict'):
        convert_mamba_yolo([1, 2])


def _converter_tool():
    from tests.converter_cli import convert_cli
    return convert_cli('mamba_yolo')


def _config(size):
    import os.path as osp

    from tests.conftest import ROOT
    return osp.join(ROOT, 'configs', 'det', f'mamba_yolo_{size}_coco.py')


def test_converter_tool_checks_against_config(tmp_path, capsys):
    convert = _converter_tool()
    src, dst = tmp_path / 'official.pth', tmp_path / 'densekit.pth'
    torch.save(official_state_dict('T'), src)
    config = _config('t')
    assert convert([src, dst, '--config', config]) == 0
    out = capsys.readouterr().out
    assert 'every key and shape matches' in out
    assert 'checkpoint looks like T (stem 32 channels' in out
    saved = torch.load(dst, weights_only=True)
    assert saved['state_dict']['backbone.stages.0.conv1.conv.weight'].shape \
        == (16, 3, 3, 3)
    # a pickled module is refused with the export recipe, nothing written
    dst.unlink()
    torch.save({'model': nn.Conv2d(1, 1, 1)}, src)
    assert convert([src, dst]) == 1
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(f'cannot read {src}') and '--unsafe-load' in line
    assert "m.float().state_dict()" in line and not dst.exists()


@pytest.mark.parametrize('arch, stem, depths', [
    ('T', 32, (1, 1, 3, 1)), ('B', 64, (1, 1, 3, 1)),
    ('L', 96, (2, 2, 6, 2))])
def test_arch_is_read_from_stem_width_and_depths(arch, stem, depths):
    from densekit.models.backbones.mamba_yolo import mamba_yolo_arch_of
    converted = convert_mamba_yolo(official_state_dict(arch))
    assert mamba_yolo_arch_of(converted) == (arch, stem, depths)
    # a custom width matches no official scale
    custom = MambaYOLO(arch='T', widen_factor=0.375)
    found = mamba_yolo_arch_of(custom.state_dict(), prefix='')
    assert found == (None, 48, (1, 1, 3, 1))
    with pytest.raises(ValueError, match='no Mamba YOLO stem'):
        mamba_yolo_arch_of({'neck.x': torch.zeros(1)})


def test_converter_tool_refuses_a_scale_mismatch(tmp_path, capsys):
    convert = _converter_tool()
    src, dst = tmp_path / 'official_b.pth', tmp_path / 'densekit.pth'
    torch.save(official_state_dict('B'), src)
    # without --config: the inferred scale is printed, the file written
    assert convert([src, dst]) == 0
    out = capsys.readouterr().out
    assert ('checkpoint looks like B (stem 64 channels, stage depths '
            '1-1-3-1, 80 classes)') in out and 'pass --config' in out
    assert torch.load(dst, weights_only=True)['meta']['arch'] == 'B'
    dst.unlink()
    # B weights against the T config: one summary line first, then the
    # details; exit status 1 and no output file
    assert convert([src, dst, '--config', _config('t')]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        'checkpoint looks like B (stem 64 channels, stage depths 1-1-3-1, '
        '80 classes), config is T (stem 32 channels, stage depths 1-1-3-1, '
        '80 classes)')
    assert 'nothing written' in lines[0]
    assert any('mismatches against' in line for line in lines[1:])
    assert any('shape of backbone.stages.0.conv2.conv.weight' in line
               for line in lines)
    assert not dst.exists()


def test_official_checkpoint_fine_tunes_on_other_classes(tmp_path,
                                                         monkeypatch):
    """The load_from path of the fine-tuning recipe: official Mamba YOLO-T
    (80 classes) converted against its config, loaded into the 4-class
    synthetic-shapes config: the class layers are re-initialised (one
    warning naming them), every other weight is the official one."""
    import os.path as osp

    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    import densekit.models.dense_heads.yolov8_head as head_module
    from densekit.registry import MODELS
    from tests.conftest import ROOT
    messages = []
    monkeypatch.setattr(head_module, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    official = official_state_dict('T')
    src, dst = tmp_path / 'official.pth', tmp_path / 'densekit.pth'
    torch.save(official, src)
    assert _converter_tool()([src, dst, '--config', _config('t')]) == 0
    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'det',
                                   'mamba_yolo_t_shapes.py'))
    model = MODELS.build(cfg.model)
    model.init_weights()
    load_checkpoint(model, str(dst), map_location='cpu')
    assert len(messages) == 1 and 'predicts 80 classes, this head 4' in \
        messages[0]
    assert 'bbox_head.cls_towers.0.2' in messages[0]
    # P3 has 64 channels: 80 classes made the class towers 80 wide, 4 makes
    # them 64 wide, so the whole class branch starts again
    assert 'bbox_head.cls_towers.2.0' in messages[0]
    assert torch.equal(model.backbone.stages[3].blocks[2].ss2d.A_logs,
                       official['model.5.2.op.A_logs'])
    assert torch.equal(model.bbox_head.reg_towers[1][2].weight,
                       official['model.21.cv2.1.2.weight'])
    assert model.bbox_head.cls_towers[0][2].weight.shape[0] == 4

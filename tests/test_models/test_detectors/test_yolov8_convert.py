"""densekit/models/detectors/yolov8_convert.py: ultralytics and mmyolo YOLOv8
checkpoints, restated from their published architecture
(tests/test_models/test_utils/yolov8_sources.py), mapped key by key onto
densekit's YOLOv8 and back, and the ultralytics forward reproduced in
float64."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from densekit.models.detectors.yolov8_convert import (
    convert_yolov8_mmyolo, convert_yolov8_ultralytics, describe_yolov8_arch,
    export_yolov8_mmyolo, export_yolov8_ultralytics, yolov8_arch_of)
from densekit.models.layers.yolo_scaling import YOLOV8_SCALES
from densekit.models.utils.checkpoint import UnconvertedKeysError
from densekit.registry import MODELS
from tests.conftest import ROOT
from tests.test_models.test_utils.yolov8_sources import (PUBLISHED_PARAMS,
                                                         SCALES,
                                                         UltralyticsYOLOv8,
                                                         mmyolo_yolov8_shapes)

SIZES = ('n', 's', 'm', 'l', 'x')


def densekit_yolov8(scale, num_classes=80, device=None):
    """densekit's configs/det/yolov8_{scale}_coco.py model."""
    init_default_scope('mmdet')
    cfg = Config.fromfile(f'{ROOT}/configs/det/yolov8_{scale}_coco.py')
    cfg.model.bbox_head.num_classes = num_classes
    if device == 'meta':
        with torch.device('meta'):
            return MODELS.build(cfg.model)
    return MODELS.build(cfg.model)


def meta_ultralytics(scale, nc):
    """The restated DetectionModel's state dict on the meta device (shapes
    only), with the real fixed DFL weight."""
    with torch.device('meta'):
        state = UltralyticsYOLOv8(scale, nc).state_dict()
    state['model.22.dfl.conv.weight'] = torch.arange(
        16, dtype=torch.float).view(1, 16, 1, 1)
    return state


def randomised(module):
    """Every parameter and BN statistic random, so that nothing matches by
    accident (and BN is not an identity)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point() or 'dfl' in name:
                continue
            if name.endswith('running_var'):
                tensor.copy_(torch.rand(tensor.shape, generator=generator)
                             + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator)
                             * 0.2)
    return module


def test_scale_table_is_the_yaml_and_the_configs():
    for scale, (depth, width, max_channels) in SCALES.items():
        assert YOLOV8_SCALES[scale] == dict(
            deepen_factor=depth, widen_factor=width,
            last_stage_out_channels=max_channels)
        cfg = Config.fromfile(f'{ROOT}/configs/det/yolov8_{scale}_coco.py')
        backbone = cfg.model.backbone
        assert (backbone.deepen_factor, backbone.widen_factor,
                backbone.last_stage_out_channels) == (depth, width,
                                                      max_channels)


@pytest.mark.parametrize('scale, nc', [(s, 80) for s in SIZES] + [('n', 3),
                                                                  ('n', 120)])
def test_ultralytics_layout_maps_every_key(scale, nc):
    official = meta_ultralytics(scale, nc)
    if nc == 80:  # the restatement has the published size
        params = sum(v.numel() for k, v in official.items()
                     if 'running' not in k and 'num_batches' not in k)
        assert params == PUBLISHED_PARAMS[scale]
    converted = convert_yolov8_ultralytics(official)
    model = densekit_yolov8(scale, nc, device='meta')
    target = model.state_dict()
    print(f'ultralytics yolov8{scale} ({nc} classes): {len(converted)} '
          f'tensors mapped from {len(official)} keys (DFL weight dropped)')
    assert list(converted) == list(target)
    for key, value in converted.items():
        assert value.shape == target[key].shape, key
    arch = yolov8_arch_of(converted)
    assert (arch['scale'], arch['num_classes'], arch['reg_max']) == (
        scale, nc, 16)
    # and back: the same keys and shapes as the restated model's
    exported = export_yolov8_ultralytics(converted)
    assert list(exported) == list(official)
    assert all(exported[k].shape == official[k].shape for k in official)


@pytest.mark.parametrize('scale', SIZES)
def test_mmyolo_layout_maps_every_key(scale):
    shapes = mmyolo_yolov8_shapes(scale)
    official = {k: torch.empty(s, device='meta') for k, s in shapes.items()}
    params = sum(v.numel() for k, v in official.items()
                 if 'running' not in k and 'num_batches' not in k)
    assert params == PUBLISHED_PARAMS[scale] - 16  # no DFL conv in mmyolo
    converted = convert_yolov8_mmyolo({'state_dict': official, 'meta': {}})
    target = densekit_yolov8(scale, device='meta').state_dict()
    print(f'mmyolo yolov8_{scale}: {len(converted)} tensors mapped from '
          f'{len(official)} keys')
    assert set(converted) == set(target)
    for key, value in converted.items():
        assert value.shape == target[key].shape, key
    assert yolov8_arch_of(converted)['scale'] == scale
    assert set(export_yolov8_mmyolo(converted)) == set(official)


def test_values_are_carried_and_conversion_is_idempotent():
    official = randomised(UltralyticsYOLOv8('n', 3)).state_dict()
    converted = convert_yolov8_ultralytics(official)
    assert torch.equal(converted['backbone.stages.2.1.blocks.1.conv2.conv.'
                                 'weight'], official['model.4.m.1.cv2.conv.'
                                                     'weight'])
    assert torch.equal(converted['neck.bottom_up_p5.final_conv.bn.'
                                 'running_var'],
                       official['model.21.cv2.bn.running_var'])
    assert torch.equal(converted['bbox_head.cls_towers.2.2.bias'],
                       official['model.22.cv3.2.2.bias'])
    # safe twice; wrappers: {'ema': None, 'model': ...} of a .pt, mmengine's
    assert convert_yolov8_ultralytics(converted) == converted
    module = UltralyticsYOLOv8('n', 3)
    from_pt = convert_yolov8_ultralytics({'model': module, 'ema': None,
                                          'epoch': -1})
    assert set(from_pt) == set(converted)
    # float16 (released files) -> float32
    half = convert_yolov8_ultralytics({k: v.half() if v.is_floating_point()
                                       else v for k, v in official.items()})
    assert half['backbone.stages.0.conv.weight'].dtype == torch.float32
    mm = export_yolov8_mmyolo(converted)
    assert convert_yolov8_mmyolo(mm) == converted
    assert convert_yolov8_mmyolo(converted) == converted
    assert describe_yolov8_arch(yolov8_arch_of(converted)) == (
        'n (stem 16, stage-4 256 channels, C2f depths 1-2-2-1, 3 classes)')


def test_other_layouts_are_refused():
    official = meta_ultralytics('n', 80)
    # another ultralytics model: YOLO11's depthwise class branch, a -seg
    # head's prototypes, a retrained DFL
    yolo11 = dict(official, **{'model.22.cv3.0.0.0.conv.weight':
                               torch.zeros(1)})
    seg = dict(official, **{'model.22.proto.cv1.conv.weight': torch.zeros(1),
                            'model.22.cv4.0.0.conv.weight': torch.zeros(1)})
    dfl = dict(official, **{'model.22.dfl.conv.weight':
                            torch.ones(1, 16, 1, 1)})
    for bad, keys in ((yolo11, ['model.22.cv3.0.0.0.conv.weight']),
                      (seg, ['model.22.proto.cv1.conv.weight',
                             'model.22.cv4.0.0.conv.weight']),
                      (dfl, ['model.22.dfl.conv.weight'])):
        with pytest.raises(UnconvertedKeysError,
                           match='ultralytics YOLOv8 DetectionModel') as info:
            convert_yolov8_ultralytics(bad)
        assert info.value.keys == keys
    # the other source's keys, each way
    mm = {k: torch.empty(s, device='meta')
          for k, s in mmyolo_yolov8_shapes('n').items()}
    with pytest.raises(UnconvertedKeysError) as info:
        convert_yolov8_ultralytics(mm)
    assert len(info.value.keys) == len(mm)
    with pytest.raises(UnconvertedKeysError, match='mmyolo YOLOv8'):
        convert_yolov8_mmyolo(official)
    with pytest.raises(ValueError, match='always converted'):
        convert_yolov8_mmyolo(mm, with_head=True)
    with pytest.raises(UnconvertedKeysError, match='densekit YOLOv8'):
        export_yolov8_mmyolo({'backbone.stem.conv.weight': torch.zeros(1)})
    with pytest.raises(ValueError, match='no YOLOv8 stem'):
        yolov8_arch_of({'model.0.conv.weight': torch.zeros(1)})


def _densekit_forward(model, x):
    """densekit's decoded predictions in the ultralytics output layout:
    (B, 4 + nc, A) with xywh boxes in pixels and sigmoid scores."""
    head = model.bbox_head
    cls_scores, bbox_preds = head(model.extract_feat(x))
    priors, strides = head._flat_priors([c.shape[-2:] for c in cls_scores],
                                        x.dtype, x.device)
    boxes = head._decode(head._flatten(bbox_preds, 4 * head.reg_max),
                         priors, strides)
    xywh = torch.cat(((boxes[..., :2] + boxes[..., 2:]) / 2,
                      boxes[..., 2:] - boxes[..., :2]), -1)
    scores = head._flatten(cls_scores, head.num_classes).sigmoid()
    return torch.cat((xywh, scores), -1).transpose(1, 2)


@pytest.mark.parametrize('nc', [3, 80])
def test_converted_model_computes_the_ultralytics_forward(nc):
    official = randomised(UltralyticsYOLOv8('n', nc)).double().eval()
    model = densekit_yolov8('n', nc)
    model.load_state_dict(convert_yolov8_ultralytics(official.state_dict()),
                          strict=True)
    model = model.double().eval()
    x = torch.rand(2, 3, 64, 96, dtype=torch.float64)
    with torch.no_grad():
        expected = official(x)
        got = _densekit_forward(model, x)
    assert got.shape == expected.shape == (2, 4 + nc, 8 * 12 + 4 * 6 + 2 * 3)
    diff = (got - expected).abs().max().item()
    print(f'ultralytics yolov8n ({nc} classes) vs densekit, float64: max '
          f'|diff| {diff:.3g}')
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-9)


def test_densekit_model_exports_to_both_sources_and_back():
    """Our model -> ultralytics keys -> the restated ultralytics model
    computes the same; -> mmyolo keys and back gives the same tensors."""
    model = randomised(densekit_yolov8('n', 5)).double().eval()
    state = model.state_dict()
    official = UltralyticsYOLOv8('n', 5).double().eval()
    official.load_state_dict(export_yolov8_ultralytics(state), strict=True)
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(_densekit_forward(model, x), official(x),
                                   rtol=1e-10, atol=1e-9)
    for export, convert in ((export_yolov8_ultralytics,
                             convert_yolov8_ultralytics),
                            (export_yolov8_mmyolo, convert_yolov8_mmyolo)):
        back = convert(export(state))
        assert list(back) == list(state)
        assert all(torch.equal(back[k], state[k]) for k in state)
    shapes = mmyolo_yolov8_shapes('n', num_classes=5)
    mm = export_yolov8_mmyolo(state)
    assert {k: tuple(v.shape) for k, v in mm.items()} == dict(shapes)
    other = copy.deepcopy(model)
    other.load_state_dict(convert_yolov8_mmyolo({'state_dict': mm}))
    with torch.no_grad():
        torch.testing.assert_close(_densekit_forward(other, x),
                                   _densekit_forward(model, x))

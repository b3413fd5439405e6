"""tools/model_converters/convert.py: one command for every family; the
YOLOv8 sources end to end; refusals (wrong scale, classes, source, family,
unreadable pickles) print one summary line first, exit 1 and write
nothing; converted checkpoints work as ``load_from`` in any task."""
import os
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

from densekit.models.detectors.yolov8_convert import export_yolov8_mmyolo
from densekit.models.weight_converters import CONVERTERS
from densekit.registry import MODELS
from tests.conftest import ROOT
from tests.converter_cli import convert_cli, load_convert_tool
from tests.test_models.test_utils.yolov8_sources import (UltralyticsYOLOv8,
                                                         mmyolo_yolov8_shapes)

FAMILIES = ['mamba_yolo', 'yolov8_ultralytics', 'yolov8_mmyolo', 'focalnet',
            'edgenext', 'hornet', 'smt', 'transnext', 'resnet_vit',
            'efficientad']
YOLOV8_N = osp.join(ROOT, 'configs', 'det', 'yolov8_n_coco.py')


def build(config, **overrides):
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(overrides)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def ultralytics_n():
    """A restated ultralytics YOLOv8n (80 classes) and its state dict."""
    torch.manual_seed(0)
    model = UltralyticsYOLOv8('n', 80)
    return model, model.state_dict()


def test_every_family_is_one_command_with_one_signature():
    assert list(CONVERTERS) == FAMILIES
    tool = load_convert_tool()
    for name in FAMILIES:
        spec = CONVERTERS[name]
        assert spec.convert_fn.__name__ == f'convert_{name}'
        args = tool.parse_args([name, 'src', 'dst', '--with-head', '--check',
                                '--config', 'cfg.py'])
        assert (args.name, args.src, args.dst, args.with_head, args.check,
                args.config) == (name, 'src', 'dst', True, True, 'cfg.py')
        # the common keyword-only with_head; a family without a classifier
        # says so instead of ignoring it
        import inspect
        params = inspect.signature(spec.convert_fn).parameters
        assert params['with_head'].kind is inspect.Parameter.KEYWORD_ONLY
        assert params['with_head'].default is False
    with pytest.raises(SystemExit):
        tool.parse_args(['yolov5', 'src', 'dst'])


def test_ultralytics_state_dict_to_densekit(tmp_path, capsys, ultralytics_n):
    official, state = ultralytics_n
    src, dst = tmp_path / 'yolov8n_sd.pth', tmp_path / 'yolov8n.pth'
    torch.save(state, src)
    convert = convert_cli('yolov8_ultralytics')
    assert convert([src, dst, '--config', YOLOV8_N]) == 0
    out = capsys.readouterr().out
    print(out)
    assert ('converted 354 tensors; checkpoint looks like n (stem 16, '
            'stage-4 256 channels, C2f depths 1-2-2-1, 80 classes)') in out
    assert f'every key and shape matches {YOLOV8_N}' in out
    model = build(YOLOV8_N)
    saved = load_checkpoint(model, str(dst), strict=True)
    assert saved['meta']['converter'] == 'convert_yolov8_ultralytics'
    assert saved['meta']['scale'] == 'n'
    assert saved['meta']['num_classes'] == 80
    assert torch.equal(model.neck.downsample_p4.conv.weight,
                       state['model.19.conv.weight'])
    # --check without --config: the default config of the inferred scale
    assert convert([src, dst, '--check']) == 0
    assert ('every key and shape matches configs/det/yolov8_n_coco.py with '
            '80 classes') in capsys.readouterr().out
    # no file of the temporary kind is left beside the output
    assert sorted(os.listdir(tmp_path)) == ['yolov8n.pth', 'yolov8n_sd.pth']


def test_mmyolo_checkpoint_to_densekit(tmp_path, capsys):
    shapes = mmyolo_yolov8_shapes('s', num_classes=20)
    state = {k: torch.randn(s) if s else torch.tensor(7)
             for k, s in shapes.items()}
    src, dst = tmp_path / 'yolov8_s_mmyolo.pth', tmp_path / 'out.pth'
    torch.save({'state_dict': state, 'meta': {'epoch': 500}}, src)
    config = osp.join(ROOT, 'configs', 'det', 'yolov8_s_coco.py')
    # the 80-class config: refused, with the way to fine-tune
    assert convert_cli('yolov8_mmyolo')([src, dst, '--config', config]) == 1
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith('checkpoint looks like s (stem 32, stage-4 512 '
                           'channels, C2f depths 1-2-2-1, 20 classes), '
                           'config is s (stem 32, stage-4 512 channels, '
                           'C2f depths 1-2-2-1, 80 classes)')
    assert 'the class layers are re-initialised' in line
    assert line.endswith('nothing written') and not dst.exists()
    assert convert_cli('yolov8_mmyolo')([src, dst, '--check']) == 0
    saved = torch.load(dst, weights_only=True)['state_dict']
    assert torch.equal(saved['bbox_head.cls_towers.1.2.bias'],
                       state['bbox_head.head_module.cls_preds.1.2.bias'])


def test_wrong_scale_is_refused_with_one_summary_line(tmp_path, capsys,
                                                      ultralytics_n):
    src, dst = tmp_path / 'n.pth', tmp_path / 'out.pth'
    torch.save(ultralytics_n[1], src)
    config = osp.join(ROOT, 'configs', 'det', 'yolov8_s_coco.py')
    assert convert_cli('yolov8_ultralytics')(
        [src, dst, '--config', config]) == 1
    lines = capsys.readouterr().out.splitlines()
    print(lines[0])
    assert lines[0] == (
        'checkpoint looks like n (stem 16, stage-4 256 channels, C2f depths '
        '1-2-2-1, 80 classes), config is s (stem 32, stage-4 512 channels, '
        f'C2f depths 1-2-2-1, 80 classes) ({config}); nothing written')
    assert any('shape of backbone.stages.0.conv.weight' in line
               for line in lines[1:])
    assert not dst.exists()


def test_wrong_source_is_refused_and_the_fitting_one_named(tmp_path, capsys,
                                                           ultralytics_n):
    from densekit.models.detectors.yolov8_convert import \
        convert_yolov8_ultralytics
    mm = export_yolov8_mmyolo(convert_yolov8_ultralytics(ultralytics_n[1]))
    src, dst = tmp_path / 'mmyolo.pth', tmp_path / 'out.pth'
    torch.save({'state_dict': mm}, src)
    assert convert_cli('yolov8_ultralytics')([src, dst, '--config',
                                              YOLOV8_N]) == 1
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(f'{src} is not in the ultralytics YOLOv8 '
                           'DetectionModel (model.{i}.*) layout: 354 of 354 '
                           'keys unknown (first: backbone.stem.conv.weight')
    assert line.endswith('it fits yolov8_mmyolo; nothing written')
    # an ultralytics YOLOv8 given to the Mamba YOLO converter
    torch.save(ultralytics_n[1], src)
    assert convert_cli('mamba_yolo')([src, dst]) == 1
    assert 'it fits yolov8_ultralytics; nothing written' in \
        capsys.readouterr().out.splitlines()[0]
    # a backbone family against a config with another backbone
    focal = tmp_path / 'focal.pth'
    torch.save({'model': {'patch_embed.proj.weight': torch.zeros(1)}}, focal)
    hornet_cfg = osp.join(ROOT, 'configs', 'det',
                          'retinanet_hornet-t-7x7_fpn_1x_coco.py')
    assert convert_cli('focalnet')([focal, dst, '--config',
                                    hornet_cfg]) == 1
    assert "the config's backbone is HorNet, the focalnet converter gives " \
        'FocalNet weights; nothing written' in capsys.readouterr().out
    assert not dst.exists()


def test_pickled_checkpoints_need_unsafe_load(tmp_path, capsys, monkeypatch,
                                              ultralytics_n):
    """A .pt pickles ultralytics' classes: refused with the export line;
    --unsafe-load reads it when the package imports, and says what is
    missing when it does not."""
    package = tmp_path / 'pkg' / 'ultralytics'
    (package / 'nn').mkdir(parents=True)
    (package / '__init__.py').write_text('')
    (package / 'nn' / '__init__.py').write_text('')
    (package / 'nn' / 'tasks.py').write_text(
        'from tests.test_models.test_utils.yolov8_sources import '
        'UltralyticsYOLOv8\n\n\nclass DetectionModel(UltralyticsYOLOv8):\n'
        '    pass\n')
    monkeypatch.syspath_prepend(str(tmp_path / 'pkg'))
    from ultralytics.nn.tasks import DetectionModel
    model = DetectionModel('n', 80)
    model.load_state_dict(ultralytics_n[1])
    src, dst = tmp_path / 'yolov8n.pt', tmp_path / 'out.pth'
    torch.save({'model': model.half(), 'ema': None, 'epoch': -1}, src)
    convert = convert_cli('yolov8_ultralytics')
    assert convert([src, dst]) == 1
    line = capsys.readouterr().out.splitlines()[0]
    assert ('Unsupported global: GLOBAL ultralytics.nn.tasks.DetectionModel'
            in line)
    assert 'YOLO(\'best.pt\').model.float().state_dict()' in line
    assert not dst.exists()
    assert convert([src, dst, '--unsafe-load', '--config', YOLOV8_N]) == 0
    saved = torch.load(dst, weights_only=True)['state_dict']
    assert saved['backbone.stages.0.conv.weight'].dtype == torch.float32
    dst.unlink()
    capsys.readouterr()
    # ultralytics not importable
    for name in [m for m in sys.modules if m.split('.')[0] == 'ultralytics']:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, 'path', [p for p in sys.path
                                      if p != str(tmp_path / 'pkg')])
    assert convert([src, dst, '--unsafe-load']) == 1
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(f"{src} pickles classes of a package that is not "
                           "importable here (No module named 'ultralytics')")
    assert 'Export a plain state dict' in line and not dst.exists()


def test_output_is_written_atomically(tmp_path, monkeypatch, ultralytics_n):
    src, dst = tmp_path / 'n.pth', tmp_path / 'out.pth'
    torch.save(ultralytics_n[1], src)
    tool = load_convert_tool()

    def broken_save(obj, path):
        with open(path, 'wb') as f:
            f.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(tool.torch, 'save', broken_save)
    with pytest.raises(OSError, match='disk full'):
        tool.main(['yolov8_ultralytics', str(src), str(dst)])
    assert sorted(os.listdir(tmp_path)) == ['n.pth']


def test_with_head_is_refused_where_there_is_no_classifier(tmp_path, capsys,
                                                           ultralytics_n):
    src, dst = tmp_path / 'n.pth', tmp_path / 'out.pth'
    torch.save(ultralytics_n[1], src)
    assert convert_cli('yolov8_ultralytics')([src, dst, '--with-head']) == 1
    line = capsys.readouterr().out.splitlines()[0]
    assert 'with_head=True does not apply' in line and not dst.exists()


def test_old_script_names_forward_to_convert_py(tmp_path, capsys,
                                                ultralytics_n):
    import importlib.util

    from tests.test_models.test_backbones.test_mamba_yolo import \
        official_state_dict
    spec = importlib.util.spec_from_file_location(
        'mamba_yolo_to_densekit', osp.join(
            ROOT, 'tools', 'model_converters', 'mamba_yolo_to_densekit.py'))
    alias = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(alias)
    src, dst = tmp_path / 'mamba.pth', tmp_path / 'out.pth'
    torch.save(official_state_dict('T'), src)
    assert alias.main([str(src), str(dst), '--unpickle-model']) == 0
    assert 'checkpoint looks like T' in capsys.readouterr().out
    for name in FAMILIES:
        path = osp.join(ROOT, 'tools', 'model_converters',
                        f'{name}_to_densekit.py')
        if osp.exists(path):
            assert 'convert.py' in open(path).read()


def test_zoo_backbone_loads_from_in_a_detector_and_a_segmentor(tmp_path,
                                                               capsys):
    """A converted ImageNet backbone is ``load_from`` for any task: checked
    against the task config, written with the backbone. prefix."""
    from tests.test_models.test_backbones.test_focalnet import (
        OFFICIAL_ARCH, official_state_dict)
    official = official_state_dict(*OFFICIAL_ARCH['T-SRF'])
    src = tmp_path / 'focalnet_tiny_srf.pth'
    torch.save({'model': official}, src)
    for task, name in (('det', 'retinanet_focalnet-t-srf_fpn_1x_coco.py'),
                       ('seg', 'upernet_focalnet-t-srf_ade20k-512x512.py')):
        config, dst = osp.join(ROOT, 'configs', task, name), \
            tmp_path / f'{task}.pth'
        assert convert_cli('focalnet')([src, dst, '--config', config]) == 0
        out = capsys.readouterr().out
        assert 'written with the backbone. prefix' in out
        saved = torch.load(dst, weights_only=True)['state_dict']
        assert all(k.startswith('backbone.') for k in saved)
        print(f'{name}: {len(saved)} backbone tensors')
        model = build(config, **{'model.backbone.init_cfg': None})
        load_checkpoint(model, str(dst))  # the runner's load_from path
        assert torch.equal(
            model.backbone.stages[2].blocks[1].modulation.f.weight,
            official['layers.2.blocks.1.modulation.f.weight'])
        # the same file as the backbone's init_cfg
        backbone = MODELS.build(dict(
            type='densekit.FocalNet', arch='T-SRF',
            init_cfg=dict(type='Pretrained', checkpoint=str(dst))))
        backbone.init_weights()
        assert torch.equal(backbone.stages[0].downsample.proj.weight,
                           official['patch_embed.proj.weight'])

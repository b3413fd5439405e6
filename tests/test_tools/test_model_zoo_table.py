"""tools/analysis/model_zoo_table.py: docs/model_zoo.md is generated (lists
every zoo config and backbone architecture, with the published figures),
and the generator runs end to end on a small selection."""
import importlib.util
import os.path as osp

import pytest
import torch

from tests.conftest import ROOT


@pytest.fixture(scope='module')
def zoo():
    spec = importlib.util.spec_from_file_location(
        'model_zoo_table',
        osp.join(ROOT, 'tools', 'analysis', 'model_zoo_table.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_table_is_generated_and_complete(zoo):
    path = osp.join(ROOT, 'docs', 'model_zoo.md')
    with open(path) as f:
        text = f.read()
    assert text.startswith(zoo.MARKER)
    for files in zoo.zoo_configs([t[0] for t in zoo.TASKS]).values():
        for config in files:
            assert f'`{config}`' in text, f'{config} missing: regenerate ' \
                'docs/model_zoo.md with tools/analysis/model_zoo_table.py'
    for name, (_, archs, _) in zoo.classifiers().items():
        for arch in archs:
            assert f'| {name} | {arch} |' in text


def test_backbone_keys_match_published_entries(zoo):
    from mmengine.config import Config
    for files in zoo.zoo_configs([t[0] for t in zoo.TASKS]).values():
        for config in files:
            key = zoo.backbone_key(
                Config.fromfile(osp.join(ROOT, config)).model.backbone)
            assert key in zoo.PUBLISHED, (config, key)
    assert zoo.backbone_key(dict(type='densekit.FocalNet',
                                 arch=dict(embed_dims=8))) == ('FocalNet',
                                                               'custom')


def test_generator_on_a_small_selection(zoo, tmp_path, capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / 'zoo.md'
        assert zoo.main([
            '--out', str(out), '--tasks', 'upernet', 'retinanet',
            '--configs', 'configs/seg/upernet_edgenext-s_ade20k-512x512.py',
            'configs/det/retinanet_edgenext-s_fpn_1x_coco.py',
            '--backbone-archs', 'EdgeNeXt:xxs', 'SMT:T', '--shape', '64',
            '64', '--runs', '1', '--warmup', '0']) == 0
    finally:
        torch.set_num_threads(threads)
    text = out.read_text()
    assert text.startswith(zoo.MARKER)
    # published figures next to the measured ones
    assert '| EdgeNeXt | xxs | 1000 | 1.33 |' in text
    assert '| SMT | T | 1000 | 11.51 |' in text and '82.2' in text
    assert '`configs/seg/upernet_edgenext-s_ade20k-512x512.py`' in text
    assert '64x64' in text
    assert zoo.main(['--out', str(out), '--configs', 'configs/det/nope.py',
                     '--no-backbones']) == 2


def test_smt_s_figures_agree_everywhere(zoo):
    """SMT-S has three parameter counts (paper 20.5M, official definition
    22.55M, densekit 22.55M): published_figures.py, the SMT class, the
    generator's note and the committed table state the same ones."""
    from densekit.models.backbones.smt import SMT
    paper = zoo.PUBLISHED[('SMT', 'S')]['imagenet']['params_m']
    assert paper == SMT.official_params['S'] / 1e6 == 20.5
    assert SMT.official_build_params['S'] / 1e6 == 22.55
    phrase = zoo.smt_s_figures([dict(backbone=('SMT', 'S'),
                                     params_m=22.550952)])
    assert phrase.startswith('SMT-S: 20.5M in the paper') and \
        '22.55M built by the official `smt_s` definition' in phrase and \
        '22.55M built by densekit' in phrase
    with open(osp.join(ROOT, 'docs', 'model_zoo.md')) as f:
        text = f.read()
    assert phrase in text
    row = next(line for line in text.splitlines()
               if line.startswith('| SMT | S |'))
    cells = [c.strip() for c in row.strip('|').split('|')]
    measured, published = float(cells[3]), float(cells[6])
    assert published == paper
    assert cells[7] == f'{(measured - paper) / paper * 100:+.1f}%'

"""tools/analysis/benchmark_dtop.py end to end on a tiny set (random
weights): the table, the goal lines and --check's exit status."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from tests.conftest import ROOT

CONFIG = osp.join(ROOT, 'configs', 'seg', 'dtop_vit-t-p8_shapes.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'benchmark_dtop',
        osp.join(ROOT, 'tools', 'analysis', 'benchmark_dtop.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    from densekit.datasets.synthetic import generate_shapes_ade
    root = tmp_path_factory.mktemp('shapes_seg')
    generate_shapes_ade(str(root), num_train=1, num_val=3, img_size=96,
                        seed=2)
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    model.init_weights()
    ckpt = str(root / 'dtop.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    return str(root), ckpt


def test_benchmark_prints_both_modes(tiny, capsys):
    root, ckpt = tiny
    tool = _load_tool()
    # a threshold of 0 makes every token easy at the first exit
    argv = [CONFIG, '--checkpoint', ckpt, '--repeat', '1', '--cfg-options',
            f'test_dataloader.dataset.data_root={root}',
            'model.pruning.threshold=0.0', '--sweep', '1.0:5', '0.0:1']
    assert tool.main(argv) == 0
    out = capsys.readouterr().out
    assert '3 images' in out
    lines = {line.split('|')[0].strip(): line for line in out.splitlines()
             if '|' in line}
    off = [c.strip() for c in lines['off'].split('|')]
    on = [c.strip() for c in lines['on'].split('|')]
    # GFLOPs and token-block operations fall with pruning
    assert float(on[4]) < float(off[4])
    assert float(on[6]) < float(off[6])
    assert off[7] == '0.0% / 0.0%' and on[7] != off[7]
    assert 'PASS FLOPs saved' in out
    # sweep rows: threshold 1.0 prunes nothing; top-1 context prunes more
    sweep_none = [c.strip() for c in lines['on t=1 k=5'].split('|')]
    sweep_top1 = [c.strip() for c in lines['on t=0 k=1'].split('|')]
    assert sweep_none[7] == '0.0% / 0.0%'
    assert float(sweep_top1[6]) <= float(on[6])


def test_check_fails_when_nothing_is_pruned(tiny, capsys):
    root, ckpt = tiny
    tool = _load_tool()
    argv = [CONFIG, '--checkpoint', ckpt, '--repeat', '1', '--num-images',
            '1', '--check', '--cfg-options',
            f'test_dataloader.dataset.data_root={root}',
            'model.pruning.threshold=1.0']
    assert tool.main(argv) == 1
    # nothing leaves, and the early exit heads cost extra
    assert 'FAIL FLOPs saved -' in capsys.readouterr().out

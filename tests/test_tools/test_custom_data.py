"""Your own data the way mmdet users do it: custom classes from the command
line, bad annotation files stopped before training, the README commands."""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mmengine.config import DictAction

from tests.conftest import ROOT, run_tool

# the tiny shapes categories renamed as a custom set would name them: only
# the classes used, ids from a bigger label set, not sorted
CUSTOM = [(47, 'cup'), (17, 'cat'), (6, 'bus'), (54, 'sandwich')]
CUSTOM_NAMES = [name for _, name in CUSTOM]


def _custom_copy(tiny_shapes, root):
    """tiny_shapes with the CUSTOM categories (same images and boxes)."""
    shutil.copytree(tiny_shapes, root)
    for split in ('train', 'val'):
        path = root / 'annotations' / f'instances_{split}.json'
        data = json.loads(path.read_text())
        new_id = {c['id']: CUSTOM[i][0]
                  for i, c in enumerate(data['categories'])}
        data['categories'] = [dict(id=i, name=n) for i, n in CUSTOM]
        for ann in data['annotations']:
            ann['category_id'] = new_id[ann['category_id']]
        path.write_text(json.dumps(data))
    return root


def _data_options(root, classes=None):
    """--cfg-options moving the tiny config to ``root`` (test follows val)."""
    options = [f'train_dataloader.dataset.data_root={root}/',
               f'val_dataloader.dataset.data_root={root}/',
               f'val_evaluator.ann_file={root}/annotations/instances_val.json']
    if classes is not None:
        names = '[' + ','.join(f"'{c}'" for c in classes) + ']'
        options += [f'train_dataloader.dataset.metainfo.classes={names}',
                    f'val_dataloader.dataset.metainfo.classes={names}',
                    f'model.bbox_head.num_classes={len(classes)}']
    return options


def _train_main(monkeypatch, capsys, *args):
    """tools/train.py's main() in this process (its pre-flight fails
    before any model is built): (exit status, stderr)."""
    spec = importlib.util.spec_from_file_location(
        'densekit_train_tool', os.path.join(ROOT, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, 'argv', ['train.py', *args])
    status = module.main()
    return status, capsys.readouterr().err


def test_default_classes_on_a_custom_set_stop_with_one_line(
        tiny_shapes, tiny_config, tmp_path, monkeypatch, capsys):
    data = _custom_copy(tiny_shapes, tmp_path / 'custom')
    work = tmp_path / 'work'
    status, err = _train_main(
        monkeypatch, capsys, tiny_config(max_epochs=1), '--work-dir',
        str(work), '--cfg-options', *_data_options(data))
    assert status == 1
    train, val = err.strip().splitlines()[-2:]  # one line per file
    assert train.startswith(
        f'AnnotationError: {data}/annotations/instances_train.json: none of '
        'its 4 categories (cup, cat, bus, ...) is in train_dataloader.dataset'
        '.metainfo.classes (4 names: circle, square, triangle, ...)')
    assert ("--cfg-options train_dataloader.dataset.metainfo.classes="
            "\"['cup', 'cat', 'bus', 'sandwich']\"") in train
    assert val.startswith(f'{data}/annotations/instances_val.json: ')
    assert not work.exists()


def test_custom_classes_from_cfg_options_label_by_name(
        tiny_shapes, tiny_config, tmp_path):
    """Every training label names its annotation's category."""
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope

    from densekit.engine.config_setup import prepare_config
    data = _custom_copy(tiny_shapes, tmp_path / 'custom')
    options = _parse(_data_options(data, CUSTOM_NAMES))
    cfg = prepare_config(tiny_config(max_epochs=1), cfg_options=options)
    assert cfg.test_dataloader.dataset.metainfo.classes == CUSTOM_NAMES
    init_default_scope('mmdet')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    ann = json.loads((data / 'annotations' /
                      'instances_train.json').read_text())
    name_of = dict(CUSTOM)
    by_image = {}
    for a in ann['annotations']:
        by_image.setdefault(a['image_id'], []).append(
            name_of[a['category_id']])
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        labels = [CUSTOM_NAMES[inst['bbox_label']]
                  for inst in info['instances']]
        assert labels == by_image[info['img_id']]


def _own_data_copy(tiny_shapes, root):
    """tiny_shapes as README's 'Your own data' set: categories cup (id 47),
    cat (17), bus (6) in that file order; the stars dropped."""
    shutil.copytree(tiny_shapes, root)
    for split in ('train', 'val'):
        path = root / 'annotations' / f'instances_{split}.json'
        data = json.loads(path.read_text())
        new_id = {1: 47, 2: 17, 3: 6}
        data['categories'] = [dict(id=47, name='cup'), dict(id=17, name='cat'),
                              dict(id=6, name='bus')]
        data['annotations'] = [dict(a, category_id=new_id[a['category_id']])
                               for a in data['annotations']
                               if a['category_id'] in new_id]
        path.write_text(json.dumps(data))
    return root


@pytest.mark.slow
def test_readme_own_data_block_runs_end_to_end(tiny_shapes, tmp_path):
    """README's 'Your own data' commands, one epoch: train, test, demo; the
    demo names the custom classes."""
    section = _readme_section('### Your own data (COCO format)')
    block = re.search(r'```bash\n(.*?)```', section, re.S).group(1)
    data = _own_data_copy(tiny_shapes, tmp_path / 'my_set')
    work, out = tmp_path / 'work', tmp_path / 'out'
    script = (block.replace('data/my_set', str(data))
              .replace('work_dirs/my_set', str(work))
              .replace('outputs/my_set', str(out))
              .replace('epoch_7.pth', 'epoch_1.pth')
              .replace('python ', f'{sys.executable} ')
              # an untrained model: show every box, to check their names
              .replace('--out-dir', '--score-thr 0 --out-dir'))
    # one short epoch instead of seven
    script = script.replace('\n)\n', '\n    train_cfg.max_epochs=1 '
                            'custom_hooks.1.num_last_epochs=0\n)\n', 1)
    res = subprocess.run(['bash', '-euo', 'pipefail', '-c', script],
                         cwd=ROOT, capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert 'Failed to search registry' not in res.stdout + res.stderr
    assert 'coco/bbox_mAP' in res.stdout + res.stderr
    preds = json.loads((out / 'predictions.json').read_text())
    assert len(preds) == len(list((data / 'val').iterdir()))
    names = ('cup', 'cat', 'bus')
    assert any(p['instances'] for p in preds)
    for p in preds:
        for inst in p['instances']:
            assert inst['class_name'] == names[inst['label']]
    ckpt = __import__('torch').load(work / 'epoch_1.pth', weights_only=False)
    assert tuple(ckpt['meta']['dataset_meta']['classes']) == names


def _parse(options):
    action = DictAction(option_strings=['--cfg-options'], dest='o')
    namespace = type('N', (), {})()
    action(None, namespace, options)
    return namespace.o


@pytest.fixture
def coco_layout(tmp_path):
    """A COCO 2017 folder (80 categories, ids 1..90 as COCO numbers them)
    with 2 train and 2 val images, as README's 'Pointing a config at real
    data' expects."""
    from mmdet.datasets import CocoDataset
    names = CocoDataset.METAINFO['classes']
    ids = [i for i in range(1, 91) if i not in
           (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
    root = tmp_path / 'coco'
    (root / 'annotations').mkdir(parents=True)
    for split in ('train2017', 'val2017'):
        (root / split).mkdir()
        data = dict(images=[], annotations=[],
                    categories=[dict(id=i, name=n)
                                for i, n in zip(ids, names)])
        for k in range(2):
            name = f'{k:012d}.jpg'
            cv2.imwrite(str(root / split / name),
                        np.full((60, 80, 3), 90, np.uint8))
            data['images'].append(dict(id=k + 1, file_name=name, width=80,
                                       height=60))
            data['annotations'].append(dict(id=k + 1, image_id=k + 1,
                                            category_id=ids[k], area=200.0,
                                            bbox=[5, 5, 20, 10], iscrowd=0))
        (root / 'annotations' / f'instances_{split}.json').write_text(
            json.dumps(data))
    return root


def _readme_section(title):
    text = open(os.path.join(ROOT, 'README.md')).read()
    start = text.index(title)
    end = text.index('\n#', start + len(title))
    return text[start:end]


def test_readme_real_data_command_passes_the_preflight(coco_layout):
    from densekit.engine.config_setup import prepare_config
    section = _readme_section('### Pointing a config at real data')
    match = re.search(r'--cfg-options\s+(.*?)`', section, re.S)
    options = match.group(1).split()
    assert options, section
    options = [o.replace('/data/coco/', f'{coco_layout}/') for o in options]
    cfg = prepare_config(f'{ROOT}/configs/det/yolov8_n_coco.py',
                         cfg_options=_parse(options))
    assert cfg.test_dataloader.dataset.data_root == f'{coco_layout}/'
    assert cfg.test_evaluator.ann_file.startswith(str(coco_layout))


def test_preflight_covers_hook_dataloaders(tmp_path):
    """EfficientAD with moved data stops before training, naming the
    map-normalisation loader its hook builds."""
    res = run_tool(['tools/train.py',
                    'configs/anomaly/efficientad_s_synthetic.py',
                    '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                    f'train_dataloader.dataset.data_root={tmp_path}/'])
    assert res.returncode == 1
    assert 'Traceback' not in res.stdout
    assert 'custom_hooks[0].map_norm_dataloader.dataset.data_root' in \
        res.stdout
    assert 'custom_hooks.0.map_norm_dataloader.dataset.data_root=' in \
        res.stdout
    assert not (tmp_path / 'w').exists()


def _broken(root, fault):
    path = root / 'annotations' / 'instances_train.json'
    data = json.loads(path.read_text())
    if fault == 'empty':
        path.write_text('')
        return path, 'the file is empty'
    if fault == 'not json':
        path.write_text(json.dumps(data)[:500])
        return path, 'not valid JSON'
    if fault == 'no images':
        data['images'] = []
        expected = 'annotations but no images'
    elif fault == 'unknown category':
        data['annotations'][0]['category_id'] = 99
        expected = "1 annotations have a category_id not in 'categories'"
    elif fault == 'bad boxes':
        data['annotations'][0]['bbox'] = [10, 10, 0, 5]
        data['annotations'][1]['bbox'] = [500, 500, 10, 10]
        expected = ('1 with non-positive width or height and 1 wholly '
                    'outside their image')
    elif fault == 'missing images':
        (root / 'train' / data['images'][0]['file_name']).unlink()
        expected = '1 of 16 images listed are missing'
    path.write_text(json.dumps(data))
    return path, expected


@pytest.mark.parametrize('fault', ['empty', 'not json', 'no images',
                                   'unknown category', 'bad boxes',
                                   'missing images'])
def test_bad_annotation_file_stops_before_training(
        fault, tiny_shapes, tiny_config, tmp_path, monkeypatch, capsys):
    data = tmp_path / 'data'
    shutil.copytree(tiny_shapes, data)
    path, expected = _broken(data, fault)
    work = tmp_path / 'work'
    status, err = _train_main(
        monkeypatch, capsys, tiny_config(max_epochs=1), '--work-dir',
        str(work), '--cfg-options', *_data_options(data))
    assert status == 1
    line, = [ln for ln in err.splitlines()
             if ln.startswith('AnnotationError')]
    assert line.startswith(f'AnnotationError: {path}: '), line
    assert expected in line, line
    assert not work.exists()


def test_bad_annotation_file_exits_non_zero_without_traceback(
        tiny_shapes, tiny_config, tmp_path):
    data = tmp_path / 'data'
    shutil.copytree(tiny_shapes, data)
    path, _ = _broken(data, 'not json')
    work = tmp_path / 'work'
    for tool in ('tools/train.py', 'tools/test.py'):
        args = [tool, tiny_config(max_epochs=1)]
        if tool == 'tools/test.py':  # any intact checkpoint will do
            ckpt = tmp_path / 'ckpt.pth'
            import torch
            torch.save(dict(state_dict={}), ckpt)
            args.append(str(ckpt))
        res = subprocess.run(
            [sys.executable, *args, '--work-dir', str(work),
             '--cfg-options', *_data_options(data)], cwd=ROOT,
            capture_output=True, text=True, timeout=300)
        assert res.returncode == 1, res.stderr[-2000:]
        assert res.stderr.strip().splitlines()[-1].startswith(
            f'AnnotationError: {path}: not valid JSON')
        assert 'Traceback' not in res.stderr
        assert not work.exists()


def test_workers_are_capped_at_the_cores(tiny_config, capsys):
    from densekit.engine.config_setup import cpu_count, prepare_config
    cfg = prepare_config(tiny_config(max_epochs=1), cfg_options=dict(
        **{'train_dataloader.num_workers': 64,
           'train_dataloader.persistent_workers': True}))
    assert cfg.train_dataloader.num_workers == cpu_count()
    assert cfg.val_dataloader.num_workers == 0

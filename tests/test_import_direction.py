"""Dependencies inside densekit point one way.

Every ``import`` in ``densekit/`` (top-level and function-local, read with
``ast``) goes from a layer to a lower one or stays inside its own group::

    utils, registry, version                                     0
    ops | datasets | evaluation                                  1
    models.utils                                                 2
    models.layers | losses | task_modules | data_preprocessors   3
    models.backbones                                             4
    models.necks | dense_heads | decode_heads | roi_heads        5
    models.detectors | segmentors | anomaly_detectors            6
    models (the package: registration, weight_converters)        7
    engine | deploy                                              8
    apis                                                         9

Groups of one rank never import each other: a task (detectors, segmentors,
anomaly detectors) does not import another task's modules, a neck does not
import a head. ``tools/`` and ``demo/`` sit above all of it.
"""
import ast
import os.path as osp
from pathlib import Path

import pytest

PACKAGE = Path(osp.dirname(osp.dirname(osp.abspath(__file__)))) / 'densekit'

RANKS = {
    'densekit': 0, 'densekit.utils': 0, 'densekit.registry': 0,
    'densekit.version': 0, 'densekit._ext': 1,
    'densekit.ops': 1, 'densekit.datasets': 1, 'densekit.evaluation': 1,
    'densekit.models.utils': 2,
    'densekit.models.layers': 3, 'densekit.models.losses': 3,
    'densekit.models.task_modules': 3,
    'densekit.models.data_preprocessors': 3,
    'densekit.models.backbones': 4,
    'densekit.models.necks': 5, 'densekit.models.dense_heads': 5,
    'densekit.models.decode_heads': 5, 'densekit.models.roi_heads': 5,
    'densekit.models.detectors': 6, 'densekit.models.segmentors': 6,
    'densekit.models.anomaly_detectors': 6,
    'densekit.models': 7,
    'densekit.engine': 8, 'densekit.deploy': 8,
    'densekit.apis': 9,
}


def group_of(module: str) -> str:
    """The longest :data:`RANKS` key that is ``module`` or a parent of it."""
    parts = module.split('.')
    for n in range(len(parts), 0, -1):
        name = '.'.join(parts[:n])
        if name in RANKS:
            return name
    raise KeyError(f'{module} is in no layer of RANKS; add its package')


def module_name(path: Path, package: Path = PACKAGE) -> str:
    rel = path.relative_to(package.parent).with_suffix('')
    name = '.'.join(rel.parts)
    return name[:-len('.__init__')] if name.endswith('.__init__') else name


def densekit_imports(path: Path, package_root: Path = PACKAGE):
    """``(imported module, line)`` for every densekit import in a file."""
    module = module_name(path, package_root)
    package = module if path.name == '__init__.py' else \
        module.rsplit('.', 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[:len(package.split('.')) -
                                          node.level + 1]
                target = '.'.join(base + ([node.module]
                                          if node.module else []))
            else:
                target = node.module or ''
            if target == 'densekit' or target.startswith('densekit.'):
                # `from densekit.models import layers` names a submodule
                for alias in node.names:
                    sub = f'{target}.{alias.name}'
                    yield (sub if _is_module(sub, package_root) else target), \
                        node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split('.')[0] == 'densekit':
                    yield alias.name, node.lineno


def _is_module(name: str, package_root: Path) -> bool:
    path = package_root.parent.joinpath(*name.split('.'))
    return path.with_suffix('.py').is_file() or \
        (path / '__init__.py').is_file()


def wrong_direction(path: Path, package_root: Path = PACKAGE):
    source = module_name(path, package_root)
    src_group = group_of(source)
    for target, line in densekit_imports(path, package_root):
        dst_group = group_of(target)
        if dst_group == src_group or RANKS[dst_group] == RANKS[src_group] == 0:
            continue  # inside a group, or the foundation (utils, registry)
        if RANKS[dst_group] >= RANKS[src_group]:
            yield (f'{path.relative_to(package_root.parent)}:{line}: {source} '
                   f'({src_group}, layer {RANKS[src_group]}) imports '
                   f'{target} ({dst_group}, layer {RANKS[dst_group]})')


def test_imports_point_down():
    files = sorted(PACKAGE.rglob('*.py'))
    assert len(files) > 100
    problems = [p for path in files for p in wrong_direction(path)]
    assert not problems, 'imports in the wrong direction:\n' + \
        '\n'.join(problems)


def test_the_check_sees_a_wrong_arrow(tmp_path):
    """A layer importing from a task above it is reported, function-local
    relative imports included; the reverse arrow is not."""
    fake = tmp_path / 'densekit'
    for folder in ('', 'models', 'models/layers', 'models/detectors'):
        (fake / folder).mkdir(parents=True, exist_ok=True)
        (fake / folder / '__init__.py').write_text('')
    (fake / 'models' / 'detectors' / 'yolo.py').write_text('X = 1\n')
    bad = fake / 'models' / 'layers' / 'block.py'
    bad.write_text('def f():\n    from ..detectors.yolo import X\n')
    good = fake / 'models' / 'detectors' / 'uses_block.py'
    good.write_text('from densekit.models.layers.block import f\n')
    problems = list(wrong_direction(bad, fake))
    assert len(problems) == 1
    assert 'densekit.models.layers.block' in problems[0]
    assert 'densekit.models.detectors.yolo' in problems[0]
    assert list(wrong_direction(good, fake)) == []


@pytest.mark.parametrize('module, group', [
    ('densekit.models.layers.ss2d', 'densekit.models.layers'),
    ('densekit.models.weight_converters', 'densekit.models'),
    ('densekit.apis.image_io', 'densekit.apis'),
])
def test_group_of(module, group):
    assert group_of(module) == group

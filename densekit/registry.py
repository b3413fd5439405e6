"""densekit's registry nodes, children of mmengine's roots.

Every registry here is a child of the matching mmengine root registry, exactly
as ``mmdet/registry.py`` and ``mmseg/registry.py`` are, so the three projects
are siblings in one tree and a module registered once in densekit is reachable
from any of them by its scoped name:

* an mmdet config (``default_scope='mmdet'``) writes
  ``backbone=dict(type='densekit.YOLOv8CSPDarknet', ...)``;
* an mmseg config (``default_scope='mmseg'``) writes the same line;
* densekit's own code always writes fully scoped names in its in-code
  defaults (``'mmdet.CIoULoss'``, ``'densekit.BatchTaskAlignedAssigner'``)
  because an unscoped name is looked up in whatever ``default_scope`` the
  config chose.

``locations`` makes a lookup import the defining package lazily, so
``custom_imports`` is optional (but harmless) in configs.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

# nn.Module subclasses: backbones, necks, heads, losses, segmentors, ...
MODELS = Registry(
    'model', parent=MMENGINE_MODELS, locations=['densekit.models'])
# assigners, samplers, coders, prior generators
TASK_UTILS = Registry(
    'task util', parent=MMENGINE_TASK_UTILS, locations=['densekit.models'])

DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, locations=['densekit.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler',
    parent=MMENGINE_DATA_SAMPLERS,
    locations=['densekit.datasets'])
TRANSFORMS = Registry(
    'transform',
    parent=MMENGINE_TRANSFORMS,
    locations=['densekit.datasets.transforms'])

METRICS = Registry(
    'metric', parent=MMENGINE_METRICS, locations=['densekit.evaluation'])
EVALUATOR = Registry(
    'evaluator', parent=MMENGINE_EVALUATOR, locations=['densekit.evaluation'])

HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, locations=['densekit.engine.hooks'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['densekit.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    locations=['densekit.engine'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper',
    parent=MMENGINE_OPTIM_WRAPPERS,
    locations=['densekit.engine'])
PARAM_SCHEDULERS = Registry(
    'parameter scheduler',
    parent=MMENGINE_PARAM_SCHEDULERS,
    locations=['densekit.engine'])


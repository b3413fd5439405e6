import pytest
from mmengine.config import Config

from densekit.utils.config_check import (check_cfg_options,
                                         check_registered_types)
from tests.conftest import ROOT

CONFIG = 'configs/det/yolov8_n_shapes.py'


@pytest.fixture(scope='module')
def cfg():
    from tests.conftest import ROOT
    return Config.fromfile(f'{ROOT}/{CONFIG}')


def test_existing_and_constructor_keys_pass(cfg):
    check_cfg_options(cfg, {
        'train_cfg.max_epochs': 3,
        'custom_hooks.1.num_last_epochs': 1,
        # not in the config, but an argument of YOLOv8CSPDarknet
        'model.backbone.frozen_stages': 1,
        # a Runner argument at top level
        'randomness': dict(seed=1),
    })


def test_unknown_key_names_it_and_close_matches(cfg):
    with pytest.raises(KeyError) as err:
        check_cfg_options(cfg, {'train_cfg.max_epoch': 3})
    msg = str(err.value)
    assert "'train_cfg.max_epoch'" in msg and 'max_epochs' in msg


def test_unknown_constructor_argument(cfg):
    with pytest.raises(KeyError, match='widen_factr.*widen_factor'):
        check_cfg_options(cfg, {'model.backbone.widen_factr': 0.5})


def test_unknown_intermediate_key(cfg):
    with pytest.raises(KeyError, match="'modle' does not exist.*model"):
        check_cfg_options(cfg, {'modle.backbone.widen_factor': 0.5})


def test_registered_types_pass(cfg):
    check_registered_types(cfg)


def test_unregistered_type_names_key_and_close_matches(cfg):
    bad = Config(cfg.to_dict())
    bad.model.backbone.type = 'densekit.YOLOv8CSPDarknett'
    with pytest.raises(KeyError) as err:
        check_registered_types(bad)
    msg = str(err.value)
    assert 'model.backbone.type' in msg
    assert 'densekit.YOLOv8CSPDarknet' in msg


def test_missing_scope_prefix_is_suggested(cfg):
    bad = Config(cfg.to_dict())
    bad.model.neck.type = 'YOLOv8PAFPN'  # densekit class without its scope
    with pytest.raises(KeyError, match='densekit.YOLOv8PAFPN'):
        check_registered_types(bad)


def test_keys_mmengine_reads_can_be_new(cfg):
    """mmdet users' keys: a seed, custom classes, env settings."""
    check_cfg_options(cfg, {
        'randomness.seed': 0,
        'randomness.deterministic': True,
        'train_dataloader.dataset.dataset.metainfo.classes': ['a', 'b'],
        'val_dataloader.dataset.metainfo.palette': [(1, 2, 3)],
        'env_cfg.cudnn_benchmark': True,
        'model.test_cfg.max_per_img': 10,
        'visualizer.line_width': 2,  # an argument of DetLocalVisualizer
    })
    coco = Config.fromfile(f'{ROOT}/configs/det/yolov8_n_coco.py')
    # CocoDataset takes metainfo though the config sets none
    check_cfg_options(coco, {
        'train_dataloader.dataset.dataset.metainfo.classes': ['cup']})
    # no randomness in a config: created as mmengine does
    no_seed = Config({k: v for k, v in cfg.to_dict().items()
                      if k != 'randomness'})
    check_cfg_options(no_seed, {'randomness.seed': 0})


@pytest.mark.parametrize('key, expected', [
    ('train_dataloader.batch_sise', 'Close matches: batch_size'),
    ('randomness.sed', 'Close matches: seed'),
    ('env_cfg.mp_cfg.opencv_num_thread', 'opencv_num_threads'),
])
def test_typos_under_open_dicts_still_caught(cfg, key, expected):
    with pytest.raises(KeyError, match=expected):
        check_cfg_options(cfg, {key: 1})


def test_wrapped_dataset_key_points_to_inner_dataset(cfg):
    with pytest.raises(KeyError) as err:
        check_cfg_options(
            cfg, {'train_dataloader.dataset.metainfo.classes': ['a']})
    assert 'did you mean train_dataloader.dataset.dataset.metainfo' in \
        str(err.value)


def test_randomness_must_be_a_dict(cfg):
    with pytest.raises(TypeError, match='randomness.seed=0'):
        check_cfg_options(cfg, {'randomness': 0})
    with pytest.raises(TypeError, match='int or None'):
        check_cfg_options(cfg, {'randomness.seed': 'zero'})


def test_lookups_do_not_warn_about_scopes(cfg):
    """mmdet has no function/inferencer/strategy registry: no warning."""
    import logging

    from mmengine.logging import MMLogger
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        check_registered_types(cfg)
        check_cfg_options(cfg, {'visualizer.line_width': 2})
    finally:
        logger.removeHandler(handler)
    assert not [r for r in records
                if 'Failed to search registry' in r.getMessage()]

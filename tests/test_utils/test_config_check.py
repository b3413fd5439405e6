import pytest
from mmengine.config import Config

from densekit.utils.config_check import (check_cfg_options,
                                         check_registered_types)

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

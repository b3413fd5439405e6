"""The config key that forces the selective-scan implementation."""
import pytest
from mmengine.config import Config

import densekit.models.layers.selective_scan as scan_module
from densekit.engine.config_setup import apply_selective_scan_impl
from densekit.models.layers.selective_scan import ENV_VAR, default_impl


@pytest.fixture
def no_scan_env(monkeypatch):
    """ENV_VAR unset and the process default restored after the test."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(scan_module, '_default_impl', ['auto'])


def test_config_key_sets_the_implementation(no_scan_env, monkeypatch):
    apply_selective_scan_impl(Config(dict(selective_scan_impl='pytorch')))
    assert default_impl() == 'pytorch'
    # the environment variable, when set, wins
    monkeypatch.setenv(ENV_VAR, 'reference')
    apply_selective_scan_impl(Config(dict(selective_scan_impl='cpp')))
    assert default_impl() == 'reference'


def test_no_key_changes_nothing(no_scan_env):
    apply_selective_scan_impl(Config(dict()))
    assert default_impl() == 'auto'


def test_bad_value_names_the_key(no_scan_env, monkeypatch):
    with pytest.raises(ValueError, match="selective_scan_impl in the config: "
                       r".*one of \('auto', .*'fast'"):
        apply_selective_scan_impl(Config(dict(selective_scan_impl='fast')))
    monkeypatch.setenv(ENV_VAR, 'fast')
    with pytest.raises(ValueError, match=f"{ENV_VAR}: .*'fast'"):
        apply_selective_scan_impl(Config(dict()))

"""The config key that forces the selective-scan implementation."""
import os

import pytest
from mmengine.config import Config

from densekit.engine.config_setup import apply_selective_scan_impl
from densekit.models.layers.selective_scan import ENV_VAR


@pytest.fixture
def no_scan_env(monkeypatch):
    """ENV_VAR unset, and restored after the test even though the code under
    test sets it through os.environ."""
    monkeypatch.setenv(ENV_VAR, 'auto')  # records the original value
    monkeypatch.delenv(ENV_VAR)


def test_config_key_sets_the_implementation(no_scan_env):
    apply_selective_scan_impl(Config(dict(selective_scan_impl='pytorch')))
    assert os.environ[ENV_VAR] == 'pytorch'
    # the environment variable, when set, wins
    apply_selective_scan_impl(Config(dict(selective_scan_impl='cpp')))
    assert os.environ[ENV_VAR] == 'pytorch'


def test_no_key_changes_nothing(no_scan_env):
    apply_selective_scan_impl(Config(dict()))
    assert ENV_VAR not in os.environ


def test_bad_value_names_the_key(no_scan_env):
    with pytest.raises(ValueError, match="selective_scan_impl must be one of "
                       r"\('auto', 'pytorch', 'cpp', 'cuda'\).*'triton'"):
        apply_selective_scan_impl(Config(dict(selective_scan_impl='triton')))

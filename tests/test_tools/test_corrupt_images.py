"""A corrupt training image is skipped with a warning (or an error if strict)."""
import shutil

from tests.conftest import run_tool


def _corrupt_copy(tiny_shapes, tmp_path):
    data = tmp_path / 'data'
    shutil.copytree(tiny_shapes, data)
    bad = data / 'train' / '000000000003.jpg'
    bad.write_bytes(b'\xff\xd8 not really a jpeg')
    return data, bad


def _config(tiny_config, data, strict):
    path = tiny_config(max_epochs=1)
    with open(path, 'a') as f:  # the config is Python: edit its dicts
        f.write(
            f"\ntrain_dataloader['dataset']['data_root'] = '{data}/'\n"
            "train_dataloader['dataset']['pipeline'] = [dict(type="
            f"'densekit.LoadImageFromFileSafe', strict={strict})]"
            " + pipeline[1:]\n")
    return path


def test_corrupt_image_skipped_with_warning(tiny_shapes, tiny_config,
                                            tmp_path):
    data, bad = _corrupt_copy(tiny_shapes, tmp_path)
    res = run_tool(['tools/train.py', _config(tiny_config, data, False),
                    '--work-dir', str(tmp_path / 'work')])
    assert res.returncode == 0, res.stdout[-3000:]
    assert str(bad) in res.stdout and 'strict=True' in res.stdout


def test_corrupt_image_is_an_error_when_strict(tiny_shapes, tiny_config,
                                               tmp_path):
    data, bad = _corrupt_copy(tiny_shapes, tmp_path)
    res = run_tool(['tools/train.py', _config(tiny_config, data, True),
                    '--work-dir', str(tmp_path / 'work')])
    assert res.returncode != 0
    assert str(bad) in res.stdout

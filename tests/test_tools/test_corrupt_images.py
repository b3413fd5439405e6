"""A corrupt training image is skipped with a warning (or an error if
strict)."""
import shutil

import pytest

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


@pytest.fixture
def corrupt_val(tiny_shapes, tiny_config, tmp_path):
    """(config, checkpoint, corrupt val image): the tiny config on a copy of
    the shapes whose first val image is not decodable, and random weights."""
    import torch
    from mmdet.apis import init_detector
    from mmengine.config import Config
    data = tmp_path / 'data'
    shutil.copytree(tiny_shapes, data)
    bad = sorted((data / 'val').iterdir())[0]
    bad.write_bytes(b'\xff\xd8 not really a jpeg')
    path = tiny_config(max_epochs=1)
    with open(path, 'a') as f:
        f.write(f"\nval_dataloader['dataset']['data_root'] = '{data}/'\n"
                "test_dataloader = val_dataloader\n")
    model = init_detector(Config.fromfile(path), None, device='cpu')
    ckpt = tmp_path / 'random.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    return path, str(ckpt), bad


def test_corrupt_test_image_stops_naming_it(corrupt_val, tmp_path):
    config, ckpt, bad = corrupt_val
    res = run_tool(['tools/test.py', config, ckpt, '--work-dir',
                    str(tmp_path / 'work')])
    assert res.returncode == 1, res.stdout[-3000:]
    assert 'Traceback' not in res.stdout
    assert 'Test time pipline should not get None' not in res.stdout
    assert res.stdout.strip().splitlines()[-1].startswith(
        f'CorruptImageError: LoadImageFromFileSafe: cannot load image {bad}')


def test_corrupt_test_image_scored_empty_behind_a_flag(corrupt_val, tmp_path):
    config, ckpt, bad = corrupt_val
    res = run_tool(['tools/test.py', config, ckpt, '--work-dir',
                    str(tmp_path / 'work'), '--unreadable-as-empty'])
    assert res.returncode == 0, res.stdout[-3000:]
    assert 'coco/bbox_mAP' in res.stdout
    line, = [ln for ln in res.stdout.splitlines()
             if 'scored as images with no predictions' in ln]
    assert f'1 image(s) could not be read and were scored as images with ' \
        f'no predictions: {bad}' in line

import logging

import cv2
import numpy as np
import pytest
from mmengine.dataset import BaseDataset

from densekit.datasets.transforms import (LoadImageFromFileSafe,
                                          get_skipped_images,
                                          reset_skipped_images)
from densekit.registry import TRANSFORMS
from tests.conftest import captured_warnings


@pytest.fixture(autouse=True)
def clean_skip_record():
    reset_skipped_images()
    yield
    reset_skipped_images()


@pytest.fixture
def good_image(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), np.uint8)
    path = tmp_path / 'good.png'
    cv2.imwrite(str(path), img)
    return str(path), img


def _bad_file(tmp_path, kind):
    """A path that LoadImageFromFile cannot load, of the given kind."""
    path = tmp_path / f'{kind}.jpg'
    if kind == 'garbage':
        path.write_bytes(b'this is not a JPEG file' * 10)
    elif kind == 'truncated':
        img = np.zeros((32, 32, 3), np.uint8)
        data = cv2.imencode('.jpg', img)[1].tobytes()
        path.write_bytes(data[:40])  # SOI and part of a header only
    elif kind == 'empty':
        path.write_bytes(b'')
    elif kind != 'missing':
        raise ValueError(kind)
    return str(path)


def test_loads_good_image(good_image):
    path, img = good_image
    results = LoadImageFromFileSafe()(dict(img_path=path))
    np.testing.assert_array_equal(results['img'], img)
    assert results['img'].dtype == np.uint8
    assert results['img_shape'] == results['ori_shape'] == (20, 30)

    results = LoadImageFromFileSafe(to_float32=True)(dict(img_path=path))
    assert results['img'].dtype == np.float32
    assert results['img'].shape == (20, 30, 3)

    gray = LoadImageFromFileSafe(color_type='grayscale')(dict(img_path=path))
    assert gray['img'].shape == (20, 30)
    assert get_skipped_images() == []


def test_built_from_registry(good_image):
    transform = TRANSFORMS.build(
        dict(type='densekit.LoadImageFromFileSafe', strict=True))
    assert isinstance(transform, LoadImageFromFileSafe)
    assert transform.strict is True
    assert 'strict=True' in repr(transform)
    assert transform(dict(img_path=good_image[0]))['img'].shape == (20, 30, 3)


@pytest.mark.parametrize('kind', ['garbage', 'truncated', 'empty', 'missing'])
def test_bad_file_is_skipped_with_warning(tmp_path, kind):
    path = _bad_file(tmp_path, kind)
    transform = LoadImageFromFileSafe()
    with captured_warnings() as records:
        assert transform(dict(img_path=path)) is None
        assert transform(dict(img_path=path)) is None
    assert get_skipped_images() == [path, path]
    assert len(records) == 2
    message = records[0].getMessage()
    assert path in message
    assert 'strict=True' in message
    assert records[0].levelno == logging.WARNING

    reset_skipped_images()
    assert get_skipped_images() == []


@pytest.mark.parametrize('kind, error', [
    ('garbage', ValueError),
    ('truncated', ValueError),
    ('empty', ValueError),
    ('missing', FileNotFoundError),
])
def test_strict_raises_naming_the_file(tmp_path, kind, error):
    path = _bad_file(tmp_path, kind)
    with pytest.raises(error) as excinfo:
        LoadImageFromFileSafe(strict=True)(dict(img_path=path))
    assert path in str(excinfo.value)
    assert 'strict=False' in str(excinfo.value)
    assert get_skipped_images() == []


def test_training_dataset_refetches_another_sample(tmp_path, good_image):
    bad = _bad_file(tmp_path, 'garbage')

    class TwoImages(BaseDataset):

        def load_data_list(self):
            return [dict(img_path=bad), dict(img_path=good_image[0])]

    dataset = TwoImages(pipeline=[LoadImageFromFileSafe()])
    with captured_warnings():
        sample = dataset[0]
    assert sample['img_path'] == good_image[0]
    assert bad in get_skipped_images()


def test_rejects_non_bool_strict():
    with pytest.raises(TypeError, match='strict'):
        LoadImageFromFileSafe(strict='yes')


def test_missing_img_path_key_is_a_usage_error():
    with pytest.raises(KeyError, match='img_path'):
        LoadImageFromFileSafe()(dict(filename='x.jpg'))

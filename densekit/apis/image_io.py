"""Image input, test pipelines for in-memory images and fallback colours,
shared by every inferencer (detection, segmentation, volume, anomaly,
streaming) and the demos.
"""
import copy
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = ['ImageInput', 'TIMING_STAGES', 'LOADING_TRANSFORMS', 'read_image',
           'load_image_input', 'transform_name',
           'array_input_pipeline', 'fallback_palette']

ImageInput = Union[str, os.PathLike, np.ndarray]

#: The stages every inferencer times (``result.timings_ms``).
TIMING_STAGES = ('preprocess', 'inference', 'postprocess')

# Transforms that read the image from a file; an inferencer reads images
# itself and replaces them by its scope's LoadImageFromNDArray.
LOADING_TRANSFORMS = ('LoadImageFromFile', 'LoadImageFromFileSafe',
                      'LoadImageFromNDArray')


def read_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an image file as a BGR uint8 array of shape (H, W, 3).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is a directory or cannot be decoded.
    """
    path = os.fspath(path)
    if osp.isdir(path):
        raise ValueError(f'image path {path} is a directory, not an image '
                         'file')
    if not osp.isfile(path):
        raise FileNotFoundError(f'image file {path} does not exist')
    # imdecode(fromfile) also reads paths cv2.imread cannot (non-ASCII)
    img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'image file {path} could not be decoded as an '
                         'image (corrupt or not an image format OpenCV '
                         'reads)')
    return img


def load_image_input(image: ImageInput,
                     owner: str) -> Tuple[np.ndarray, Optional[str]]:
    """A BGR (H, W, 3) array and its path (None for an array) from an
    inferencer input; ``owner`` names the caller in errors."""
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f'{owner}: an array input must be a BGR image of shape '
                f'(H, W, 3) or (H, W), but got shape {image.shape}')
        return image, None
    if isinstance(image, (str, os.PathLike)):
        return read_image(image), os.fspath(image)
    raise TypeError(f'{owner}: inputs must be image paths or numpy arrays '
                    f'(or a list of them), but got {type(image).__name__}')


def transform_name(transform_type) -> str:
    """'mmdet.LoadAnnotations' or a class -> 'LoadAnnotations'."""
    if isinstance(transform_type, str):
        return transform_type.split('.')[-1]
    return getattr(transform_type, '__name__', str(transform_type))


def array_input_pipeline(pipeline: Sequence[dict], *, loader: str,
                         drop: Sequence[str], owner: str,
                         filename: Optional[str]) -> List[dict]:
    """A test pipeline adapted to images given as arrays: the image-loading
    transform becomes ``loader`` (e.g. ``'mmdet.LoadImageFromNDArray'``) and
    the transforms named in ``drop`` (annotation loading) are removed;
    everything else (resize, pad, pack) is kept.

    Raises:
        ValueError: The pipeline has no image-loading transform; the message
            names ``owner`` and the config ``filename``.
    """
    out, found = [], False
    for transform in copy.deepcopy(list(pipeline)):
        name = transform_name(transform.get('type'))
        if name in drop:
            continue
        if name in LOADING_TRANSFORMS:
            transform = dict(type=loader)
            found = True
        out.append(transform)
    if not found:
        raise ValueError(
            f'{owner}: `test_dataloader.dataset.pipeline` of config '
            f'{filename} has no image-loading transform (one of '
            f'{LOADING_TRANSFORMS}); got '
            f'{[transform_name(t.get("type")) for t in pipeline]}')
    return out


def fallback_palette(num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` uint8 RGB colours for classes without a palette:
    distinct and deterministic (golden-ratio hues)."""
    hues = (np.arange(num_classes) * 0.618033988749895 % 1.0 * 180)
    hsv = np.stack([hues, np.full_like(hues, 200), np.full_like(hues, 230)],
                   axis=1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]

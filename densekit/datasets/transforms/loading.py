"""Image loading that survives missing or corrupt files."""
import logging
import threading
from typing import List, Optional

import numpy as np
from mmcv.transforms import BaseTransform, LoadImageFromFile
from mmengine.logging import print_log

from densekit.registry import TRANSFORMS

# ``on_failure`` values: skip (training: mmengine draws another sample),
# raise, or an empty stand-in scored as an image without predictions
ON_FAILURE = ('skip', 'raise', 'empty')
# meta key an 'empty' stand-in carries (its path), for
# densekit.UnreadableImageHook
UNREADABLE_KEY = 'img_unreadable'


class ImageLoadError(Exception):
    """An image that could not be loaded; the message names the file.

    The tools catch it (also re-raised from a dataloader worker) and print
    :func:`image_load_message` instead of a traceback.
    """


class MissingImageError(ImageLoadError, FileNotFoundError):
    """The image file does not exist."""


class CorruptImageError(ImageLoadError, ValueError):
    """The image file cannot be read or decoded."""


def image_load_message(error: BaseException) -> str:
    """The ``LoadImageFromFileSafe: ...`` line of an :class:`ImageLoadError`
    (a dataloader worker's re-raise wraps it in its traceback)."""
    for line in reversed(str(error).splitlines()):
        if 'LoadImageFromFileSafe:' in line:
            return line[line.index('LoadImageFromFileSafe:'):]
    return str(error)

# Paths skipped by LoadImageFromFileSafe in this process, in order (repeats
# included: an image skipped in two epochs appears twice).
_SKIPPED_IMAGES: List[str] = []
_SKIPPED_LOCK = threading.Lock()


def get_skipped_images() -> List[str]:
    """Paths that :class:`LoadImageFromFileSafe` skipped in this process.

    Returns:
        list[str]: A copy of the skipped paths in the order they were met,
        one entry per skip (an image skipped twice is listed twice).
    """
    with _SKIPPED_LOCK:
        return list(_SKIPPED_IMAGES)


def reset_skipped_images() -> None:
    """Forget the images skipped so far in this process."""
    with _SKIPPED_LOCK:
        _SKIPPED_IMAGES.clear()


@TRANSFORMS.register_module()
class LoadImageFromFileSafe(BaseTransform):
    """Load an image from file, skipping missing or undecodable files.

    A drop-in for mmcv's ``LoadImageFromFile``, which does the reading and
    decoding. With ``strict=False`` an image that is missing, unreadable or
    not decodable is logged as a warning, recorded (see
    :func:`get_skipped_images`) and the transform returns ``None``; in
    training mmengine's ``BaseDataset.__getitem__`` then draws another sample
    (up to its ``max_refetch`` times). With ``strict=True`` it raises.

    Required Keys:

    - img_path

    Modified Keys:

    - img: (H, W, 3) array for ``color_type='color'`` (BGR for the ``cv2``
      backend), uint8 or float32 if ``to_float32``.
    - img_shape: (H, W)
    - ori_shape: (H, W)

    Note:
        A test-mode dataset cannot refetch (mmengine raises ``Test time
        pipline should not get None data_sample``), so ``tools/train.py``
        and ``tools/test.py`` set ``on_failure='raise'`` in the validation
        and test pipelines: the run stops with one line naming the file. The
        skip record is per process, so with ``num_workers > 0`` each
        dataloader worker keeps its own list.

    Args:
        to_float32 (bool): Convert the image to a float32 array. Defaults to
            False.
        color_type (str): ``flag`` of :func:`mmcv.imfrombytes`. Defaults to
            'color'.
        imdecode_backend (str): ``backend`` of :func:`mmcv.imfrombytes`.
            Defaults to 'cv2'.
        backend_args (dict, optional): File backend arguments for
            :func:`mmengine.fileio.get`. Defaults to None.
        strict (bool): Raise ``FileNotFoundError`` for a missing file and
            ``ValueError`` for an unreadable or undecodable one
            (:class:`MissingImageError` / :class:`CorruptImageError`), instead
            of skipping it. Same as ``on_failure='raise'``. Defaults to False.
        on_failure (str, optional): ``'skip'`` (return None, the default
            unless ``strict``), ``'raise'``, or ``'empty'``: a black image of
            the annotated ``height`` x ``width`` (1x1 if unknown) with
            ``results['img_unreadable']`` set to the path, which
            ``densekit.UnreadableImageHook`` scores as an image with no
            predictions (``tools/test.py --unreadable-as-empty``). The
            tools set ``'raise'`` in validation and test pipelines, where
            mmengine cannot draw another sample.

    Examples:
        >>> load = LoadImageFromFileSafe()
        >>> load(dict(img_path='missing.jpg')) is None  # logs a warning
        True
        >>> get_skipped_images()[-1]
        'missing.jpg'
    """

    def __init__(self,
                 to_float32: bool = False,
                 color_type: str = 'color',
                 imdecode_backend: str = 'cv2',
                 *,
                 backend_args: Optional[dict] = None,
                 strict: bool = False,
                 on_failure: Optional[str] = None) -> None:
        if not isinstance(strict, bool):
            raise TypeError('LoadImageFromFileSafe: strict must be a bool, '
                            f'but got {strict!r} ({type(strict).__name__})')
        if on_failure is None:
            on_failure = 'raise' if strict else 'skip'
        if on_failure not in ON_FAILURE:
            raise ValueError('LoadImageFromFileSafe: on_failure must be one '
                             f'of {ON_FAILURE}, but got {on_failure!r}')
        self.on_failure = on_failure
        self.strict = on_failure == 'raise'
        self.to_float32 = to_float32
        self.color_type = color_type
        self.imdecode_backend = imdecode_backend
        self.backend_args = None if backend_args is None else dict(
            backend_args)
        # ignore_empty=False: every failure reaches transform() as an error.
        self.loader = LoadImageFromFile(
            to_float32=to_float32,
            color_type=color_type,
            imdecode_backend=imdecode_backend,
            ignore_empty=False,
            backend_args=self.backend_args)

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']`` into ``results['img']``.

        Args:
            results (dict): Result dict from
                :class:`mmengine.dataset.BaseDataset` with key ``img_path``.

        Returns:
            dict or None: ``results`` with ``img``, ``img_shape`` and
            ``ori_shape`` added, or None if the image was skipped.
        """
        if 'img_path' not in results:
            raise KeyError('LoadImageFromFileSafe: results has no "img_path"; '
                           f'got keys {sorted(results)}')
        filename = results['img_path']
        try:
            return self.loader.transform(results)
        except FileNotFoundError as e:
            missing, error = True, e
            reason = 'the file does not exist'
        except (AssertionError, AttributeError) as e:
            # mmcv 2.1 asserts ``img is not None`` after decoding, outside
            # the try that ``ignore_empty`` guards, so even ignore_empty=True
            # raises for undecodable bytes; under ``python -O`` the assert is
            # gone and ``img.shape`` raises AttributeError instead.
            missing, error = False, e
            reason = 'it is not a decodable image (the decoder returned None)'
        except Exception as e:  # noqa: BLE001 - any read failure means skip
            missing, error = False, e
            reason = ('it could not be read or decoded as an image '
                      f'({type(e).__name__}: {e})')

        if self.on_failure == 'raise':
            msg = (f'LoadImageFromFileSafe: cannot load image {filename}: '
                   f'{reason}. In training set strict=False to skip such '
                   'images with a warning; in testing, tools/test.py '
                   '--unreadable-as-empty scores them as images with no '
                   'predictions.')
            if missing:
                raise MissingImageError(msg) from error
            raise CorruptImageError(msg) from error
        if self.on_failure == 'empty':
            height = int(results.get('height') or 1)
            width = int(results.get('width') or 1)
            img = np.zeros((height, width, 3),
                           np.float32 if self.to_float32 else np.uint8)
            results.update(img=img, img_shape=img.shape[:2],
                           ori_shape=img.shape[:2])
            results[UNREADABLE_KEY] = filename
            with _SKIPPED_LOCK:
                _SKIPPED_IMAGES.append(filename)
            print_log(f'LoadImageFromFileSafe: image {filename} could not be '
                      f'loaded ({reason}); scored as an image with no '
                      'predictions', logger='current', level=logging.WARNING)
            return results

        with _SKIPPED_LOCK:
            _SKIPPED_IMAGES.append(filename)
            num_skipped = len(_SKIPPED_IMAGES)
        print_log(
            f'LoadImageFromFileSafe: skipped image {filename}: {reason}. '
            f'{num_skipped} image(s) skipped so far in this process. Set '
            'strict=True in LoadImageFromFileSafe to make this an error.',
            logger='current',
            level=logging.WARNING)
        return None

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'to_float32={self.to_float32}, '
                f"color_type='{self.color_type}', "
                f"imdecode_backend='{self.imdecode_backend}', "
                f'backend_args={self.backend_args}, '
                f'strict={self.strict}, '
                f"on_failure='{self.on_failure}')")

"""Image loading that survives missing or corrupt files."""
import logging
import threading
from typing import List, Optional

from mmcv.transforms import BaseTransform, LoadImageFromFile
from mmengine.logging import print_log

from densekit.registry import TRANSFORMS

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
        A test-mode dataset cannot refetch: mmengine raises
        ``Test time pipline should not get None data_sample`` after the
        warning names the file. The skip record is per process, so with
        ``num_workers > 0`` each dataloader worker keeps its own list.

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
            ``ValueError`` for an unreadable or undecodable one, instead of
            skipping it. Defaults to False.

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
                 strict: bool = False) -> None:
        if not isinstance(strict, bool):
            raise TypeError('LoadImageFromFileSafe: strict must be a bool, '
                            f'but got {strict!r} ({type(strict).__name__})')
        self.strict = strict
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

        if self.strict:
            msg = (f'LoadImageFromFileSafe: cannot load image {filename}: '
                   f'{reason}. Set strict=False to skip such images with a '
                   'warning instead.')
            if missing:
                raise FileNotFoundError(msg) from error
            raise ValueError(msg) from error

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
                f'strict={self.strict})')

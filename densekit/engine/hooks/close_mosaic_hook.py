"""Turn mosaic-style augmentation off for the last epochs (YOLOv8's
``close_mosaic``), so the detector finishes on images like the test ones."""
from typing import Sequence

from mmengine.hooks import Hook

from densekit.registry import HOOKS


@HOOKS.register_module()
class CloseMosaicHook(Hook):
    """Skip the given transforms of a ``MultiImageMixDataset`` at the end.

    The check runs before every epoch (not once), so a run resumed inside the
    last epochs switches again.

    Args:
        num_last_epochs (int): Epochs at the end trained without the skipped
            transforms. Defaults to 10 (ultralytics ``close_mosaic``).
        skip_type_keys (Sequence[str]): Transform types to skip.
    """
    priority = 'NORMAL'

    def __init__(self,
                 num_last_epochs: int = 10,
                 skip_type_keys: Sequence[str] = ('Mosaic', 'RandomAffine',
                                                  'MixUp')) -> None:
        if num_last_epochs < 0:
            raise ValueError(
                f'num_last_epochs must be >= 0, but got {num_last_epochs}')
        self.num_last_epochs = num_last_epochs
        self.skip_type_keys = list(skip_type_keys)
        self._closed = False

    def before_train_epoch(self, runner) -> None:
        """Switch the dataset once the last ``num_last_epochs`` begin."""
        if self._closed or \
                runner.epoch < runner.max_epochs - self.num_last_epochs:
            return
        dataset = runner.train_dataloader.dataset
        if not hasattr(dataset, 'update_skip_type_keys'):
            raise TypeError(
                'CloseMosaicHook needs train_dataloader.dataset to be a '
                f'MultiImageMixDataset, but got {type(dataset).__name__}')
        runner.logger.info(
            f'CloseMosaicHook: epoch {runner.epoch}, skipping '
            f'{self.skip_type_keys} from now on')
        dataset.update_skip_type_keys(self.skip_type_keys)
        loader = runner.train_dataloader
        if getattr(loader, 'persistent_workers', False):
            # workers hold a copy of the dataset: restart them
            loader._iterator = None
        self._closed = True

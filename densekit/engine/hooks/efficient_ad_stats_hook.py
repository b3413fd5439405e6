"""Compute EfficientAD's normalisation statistics inside the Runner."""
import copy
from typing import Iterator, Optional, Union

import torch
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch.utils.data import DataLoader

from densekit.registry import HOOKS


def _unwrap(model):
    return getattr(model, 'module', model)


@HOOKS.register_module()
class EfficientADStatsHook(Hook):
    """Fill the statistics buffers of :class:`densekit.EfficientAD`.

    * **teacher mean / std** (Sec. 3.2): once, before training, over the
      training images (the train dataloader's dataset, in order) unless
      the model already has them (a resumed run or a converted checkpoint);
    * **map quantiles** (Sec. 3.4): before every validation and test, over
      the held-out normal images of ``map_norm_dataloader`` (EfficientAD
      uses 10% of the training images: ``MVTecADDataset(...,
      train_val_split=0.1, subset='val')``), since the student and
      autoencoder change during training.

    * **map quantiles in checkpoints**: before every checkpoint is written
      the quantiles are recomputed for the weights being saved, so that a
      checkpoint (the last one in particular, which mmengine writes before
      the final validation) gives calibrated maps to ``tools/test.py``, the
      inferencer and the demos.

    In a test-only run of a checkpoint without teacher statistics, they are
    computed from ``map_norm_dataloader`` instead (with a warning).

    Args:
        map_norm_dataloader (dict | DataLoader): The held-out normal images
            (a dataloader config as in ``val_dataloader``, or a loader).
        max_teacher_batches (int, optional): Use only this many training
            batches for the teacher statistics. Defaults to all.
    """
    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 map_norm_dataloader: Union[dict, DataLoader],
                 max_teacher_batches: Optional[int] = None) -> None:
        if map_norm_dataloader is None:
            raise ValueError('EfficientADStatsHook needs map_norm_dataloader '
                             '(held-out normal training images)')
        self._map_norm_cfg = map_norm_dataloader
        self._map_norm_loader = None
        self.max_teacher_batches = max_teacher_batches
        # optimizer updates behind the last quantile computation: the
        # checkpoint and the validation after the same iteration share it
        self._quantiles_updates = None

    # -- data ---------------------------------------------------------------
    def _loader(self, runner) -> DataLoader:
        if self._map_norm_loader is None:
            if isinstance(self._map_norm_cfg, DataLoader):
                self._map_norm_loader = self._map_norm_cfg
            else:
                self._map_norm_loader = runner.build_dataloader(
                    self._map_norm_cfg, seed=runner.seed)
        return self._map_norm_loader

    @staticmethod
    def _images(runner, loader, limit: Optional[int] = None
                ) -> Iterator[torch.Tensor]:
        """[0, 1] RGB batches through the model's data preprocessor."""
        model = _unwrap(runner.model)
        for i, data in enumerate(loader):
            if limit is not None and i >= limit:
                break
            if isinstance(data, list):
                data = pseudo_collate(data)
            yield model.data_preprocessor(data, False)['inputs']

    # -- hooks --------------------------------------------------------------
    @staticmethod
    def _train_images_loader(runner) -> DataLoader:
        """One ordered pass over the training set: the train dataloader's
        dataset with a finite, unshuffled sampler (iterating the training
        loader itself would share its infinite, persistent iterator)."""
        cfg = copy.deepcopy(runner.cfg.train_dataloader)
        cfg.update(sampler=dict(type='DefaultSampler', shuffle=False),
                   persistent_workers=False)
        cfg.pop('batch_sampler', None)
        return runner.build_dataloader(cfg, seed=runner.seed)

    def before_train(self, runner) -> None:
        model = _unwrap(runner.model)
        if bool(model.has_teacher_stats):
            return
        print_log('EfficientAD: teacher feature statistics over the '
                  'training images', logger='current')
        model.set_teacher_stats(self._images(
            runner, self._train_images_loader(runner),
            self.max_teacher_batches))

    def _quantiles(self, runner, updates: Optional[int] = None) -> None:
        """Recompute the quantiles unless they are already those of the
        weights after ``updates`` optimizer steps."""
        if updates is not None and updates == self._quantiles_updates:
            return
        model = _unwrap(runner.model)
        loader = self._loader(runner)
        if not bool(model.has_teacher_stats):
            print_log(
                'EfficientAD: the checkpoint has no teacher statistics; '
                'computing them on map_norm_dataloader (the paper uses the '
                'training images)', logger='current', level=30)
            model.set_teacher_stats(self._images(runner, loader))
        q = model.set_map_quantiles(self._images(runner, loader))
        self._quantiles_updates = updates
        print_log('EfficientAD map quantiles (qa_st, qb_st, qa_ae, qb_ae): '
                  + ', '.join(f'{v:.5g}' for v in q.tolist()),
                  logger='current')

    def before_val_epoch(self, runner) -> None:
        self._quantiles(runner, updates=runner.iter)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Write quantiles of the saved weights into ``checkpoint``."""
        model = _unwrap(runner.model)
        if not bool(model.has_teacher_stats):
            return
        # saved from after_train_iter, before the loop counts the step
        self._quantiles(runner, updates=checkpoint.get('meta', {}).get(
            'iter', runner.iter + 1))
        state = checkpoint.get('state_dict', {})
        for key in ('quantiles', 'has_quantiles'):
            if key in state:
                state[key] = getattr(model, key).detach().cpu().clone()

    def before_test_epoch(self, runner) -> None:
        self._quantiles(runner)

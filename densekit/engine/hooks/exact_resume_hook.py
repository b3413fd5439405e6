"""Make a resumed run draw the same random numbers as an uninterrupted one.

mmengine's ``--resume`` restores weights, optimizer, schedulers and
counters, but not the random state: the main process starts again from the
seed, and the dataloader workers from their initial seeds, whereas an
uninterrupted run's workers are several epochs into their streams. The
augmentation (mosaic partners, affine, flips, HSV) then differs and the
final weights drift. Rather than saving and restoring the states,
:class:`ExactResumeHook` makes them a function of the position in training,
so there is nothing to restore:

* epoch-based loops: before every epoch Python's ``random``, NumPy's global
  generator and torch's are reseeded from ``(seed, epoch)``, and the train
  dataloader's workers from ``(seed, epoch, rank, worker id)`` (persistent
  workers are restarted for that, one fork per epoch);
* iteration-based loops: the main-process generators are reseeded from
  ``(seed, iteration)`` before every iteration; mmengine replays the
  dataloader up to the resumed iteration, which replays the workers'
  streams too.

An uninterrupted run and a run killed after any checkpoint and resumed then
compute identical losses and end with identical weights (a CPU run; CUDA
kernels may still be non-deterministic unless ``randomness.deterministic``).

Note:
    Limitation: an iteration-based loop with ``num_workers=0`` transforms
    samples in the main process, where mmengine's replay of the skipped
    iterations draws from the reseeded generators: its resumed data is not
    exact.
"""
import random
from functools import partial
from typing import Optional

import numpy as np
import torch
from mmengine.dataset import worker_init_fn as default_worker_init_fn
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from densekit.registry import HOOKS

_EPOCH, _ITER, _WORKERS = 1, 2, 3  # tags of the derived seeds


def derive_seed(seed: int, tag: int, step: int) -> int:
    """A 32-bit seed from ``(seed, tag, step)`` (NumPy ``SeedSequence``:
    distinct inputs give well-separated streams)."""
    seq = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, tag, int(step)])
    return int(seq.generate_state(1)[0])


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch's
    (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Derive every random state from the seed and the training position.

    ``tools/train.py`` adds it to every run (unless the config lists it);
    see the module docstring for what is seeded when. Runs before the other
    hooks of each stage (priority ``VERY_HIGH``).
    """
    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._by_epoch: Optional[bool] = None

    def before_train(self, runner) -> None:
        """Note the loop kind (epoch- or iteration-based)."""
        self._by_epoch = isinstance(runner.train_loop, EpochBasedTrainLoop)

    def before_train_epoch(self, runner) -> None:
        """Epoch-based: reseed the main process and the train workers from
        ``(seed, epoch)``."""
        if not self._by_epoch:
            return
        seed_all(derive_seed(runner.seed, _EPOCH, runner.epoch))
        loader = runner.train_dataloader
        workers = getattr(loader, 'num_workers', 0)
        if not workers:
            return
        worker_seed = derive_seed(runner.seed, _WORKERS, runner.epoch)
        init_fn = loader.worker_init_fn
        if isinstance(init_fn, partial) and 'seed' in init_fn.keywords:
            loader.worker_init_fn = partial(
                init_fn.func, *init_fn.args,
                **dict(init_fn.keywords, seed=worker_seed))
        else:  # a config's own worker_init_fn (or none): seed, then call it
            loader.worker_init_fn = partial(
                _seed_then_call, init_fn=init_fn, num_workers=workers,
                rank=get_rank(), seed=worker_seed)
        if getattr(loader, 'persistent_workers', False):
            loader._iterator = None  # new workers, seeded for this epoch

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        """Iteration-based: reseed the main process from
        ``(seed, iteration)``."""
        if self._by_epoch is False:
            seed_all(derive_seed(runner.seed, _ITER, runner.iter))


def _seed_then_call(worker_id: int, *, init_fn, num_workers: int, rank: int,
                    seed: int) -> None:
    default_worker_init_fn(worker_id, num_workers, rank, seed)
    if init_fn is not None:
        init_fn(worker_id)

"""YOLO's linear learning-rate warm-up with ultralytics' minimum length.

ultralytics warms up for ``max(round(warmup_epochs * nb), 100)``
iterations (``BaseTrainer._do_train``: ``nw``), mmyolo for at least
``warmup_mim_iter`` (``YOLOv5ParamSchedulerHook``): on COCO the epochs
decide, on a small custom set the minimum does. mmengine's ``LinearLR``
with ``convert_to_iter_based=True`` knows the epochs only, so 3 warm-up
epochs of a 6-image set at batch 2 end after 9 iterations. This is that
``LinearLR`` with the minimum.
"""
from mmengine.optim.scheduler import LinearLR
from mmengine.optim.scheduler.param_scheduler import INF

from densekit.registry import PARAM_SCHEDULERS


@PARAM_SCHEDULERS.register_module()
class YOLOWarmupLR(LinearLR):
    """:class:`mmengine.optim.LinearLR` whose iteration-based form
    (``by_epoch=True, convert_to_iter_based=True``) lasts at least
    ``min_iters`` iterations from ``begin``.

    Args:
        min_iters (int): The warm-up's shortest length in iterations
            (ultralytics: 100). Defaults to 100.
        *args, **kwargs: :class:`LinearLR`'s (``start_factor``,
            ``end_factor``, ``begin``, ``end``, ``by_epoch``, ...).

    Examples:
        >>> dict(type='densekit.YOLOWarmupLR', start_factor=0.001,
        ...      by_epoch=True, begin=0, end=3, min_iters=100,
        ...      convert_to_iter_based=True)  # in param_scheduler
    """

    def __init__(self, *args, min_iters: int = 100, **kwargs) -> None:
        if isinstance(min_iters, bool) or not isinstance(min_iters, int) \
                or min_iters < 0:
            raise ValueError('YOLOWarmupLR: min_iters must be an int >= 0, '
                             f'but got {min_iters!r}')
        self.min_iters = min_iters
        super().__init__(*args, **kwargs)

    @classmethod
    def build_iter_from_epoch(cls,
                              *args,
                              begin: int = 0,
                              end: int = INF,
                              by_epoch: bool = True,
                              epoch_length=None,
                              min_iters: int = 100,
                              **kwargs):
        """The iteration-based scheduler: ``begin`` and ``end`` epochs times
        ``epoch_length``, ``end`` raised to ``begin + min_iters``."""
        if not by_epoch:
            raise ValueError('YOLOWarmupLR: only epoch-based schedulers '
                             '(by_epoch=True) convert to iterations')
        if epoch_length is None or epoch_length <= 0:
            raise ValueError('YOLOWarmupLR: epoch_length must be a positive '
                             f'integer, but got {epoch_length!r}')
        begin = int(begin * epoch_length)
        if end != INF:
            end = max(int(end * epoch_length), begin + min_iters)
        return cls(*args, begin=begin, end=end, by_epoch=False,
                   min_iters=min_iters, **kwargs)

"""Score images that could not be read as images with no predictions."""
import logging
from typing import List

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.structures import InstanceData

from densekit.datasets.transforms.loading import UNREADABLE_KEY
from densekit.registry import HOOKS


@HOOKS.register_module()
class UnreadableImageHook(Hook):
    """Empty the predictions of unreadable images before evaluation, and
    list the images at the end of validation/testing.

    ``LoadImageFromFileSafe(on_failure='empty')`` passes a black stand-in for
    an image it cannot load, with the path in the ``img_unreadable`` meta
    key (which ``PackDetInputs`` must pack); this hook wraps the loop's
    ``evaluator.process`` so that such a sample reaches the metric with no
    detections: its ground truth counts as missed. ``tools/test.py
    --unreadable-as-empty`` sets both up (detection configs).
    """
    priority = 'NORMAL'

    def __init__(self) -> None:
        self._found: List[str] = []

    def _wrap(self, loop) -> None:
        evaluator = getattr(loop, 'evaluator', None)
        if evaluator is None or getattr(evaluator.process, '_densekit', 0):
            return
        process = evaluator.process

        def wrapped(data_samples, data_batch=None):
            for sample in data_samples:
                path = sample.metainfo.get(UNREADABLE_KEY) if hasattr(
                    sample, 'metainfo') else None
                if path is None:
                    continue
                self._found.append(path)
                pred = InstanceData()
                pred.bboxes = torch.zeros((0, 4))
                pred.scores = torch.zeros((0, ))
                pred.labels = torch.zeros((0, ), dtype=torch.long)
                sample.pred_instances = pred
            return process(data_samples, data_batch)

        wrapped._densekit = 1
        evaluator.process = wrapped

    def before_val(self, runner) -> None:
        """Wrap the validation evaluator."""
        self._wrap(runner.val_loop)

    def before_test(self, runner) -> None:
        """Wrap the test evaluator."""
        self._wrap(runner.test_loop)

    def _report(self) -> None:
        if self._found:
            shown = ', '.join(self._found[:5]) + (
                ', ...' if len(self._found) > 5 else '')
            print_log(f'{len(self._found)} image(s) could not be read and '
                      f'were scored as images with no predictions: {shown}',
                      logger='current', level=logging.WARNING)
        self._found = []

    def after_val_epoch(self, runner, metrics=None) -> None:
        """List the unreadable validation images."""
        self._report()

    def after_test_epoch(self, runner, metrics=None) -> None:
        """List the unreadable test images."""
        self._report()

"""Cityscapes' official pixel-level evaluation, optional."""
import os.path as osp
from typing import Dict, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from densekit.registry import METRICS

MISSING_MESSAGE = (
    'cityscapesscripts is not installed, so the official Cityscapes '
    'evaluation (CityscapesMetric) cannot run; `pip install '
    'cityscapesscripts` (listed in requirements/optional.txt). mIoU from '
    'IoUMetric is unaffected.')


def cityscapesscripts_available() -> bool:
    try:
        import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling  # noqa: F401,E501
    except ImportError:
        return False
    return True


@METRICS.register_module()
class CityscapesMetric(BaseMetric):
    """mmseg's ``CityscapesMetric`` (cityscapesscripts on ``labelIds``)
    when ``cityscapesscripts`` is installed.

    Without it the metric says so once, clearly, and reports nothing (or,
    with ``required=True``, raises ``ImportError``), so a Cityscapes config
    can list it beside ``IoUMetric`` without making the optional package a
    requirement. The official evaluation reads each ground truth's
    ``*_gtFine_labelIds.png`` (shipped with ``gtFine``); a missing one is
    named in a ``FileNotFoundError``.

    Args:
        output_dir (str): Where predictions are written as label-id PNGs.
        required (bool): Raise when cityscapesscripts is missing. Defaults
            to False.
        **kwargs: mmseg ``CityscapesMetric``'s (``ignore_index``,
            ``format_only``, ``keep_results``, ...).
    """

    def __init__(self,
                 output_dir: str,
                 required: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self._official = None
        if cityscapesscripts_available():
            from mmseg.evaluation.metrics import \
                CityscapesMetric as OfficialMetric
            self._official = OfficialMetric(
                output_dir=output_dir, collect_device=collect_device,
                prefix=prefix, **kwargs)
        elif required:
            raise ImportError(MISSING_MESSAGE)
        else:
            print_log(MISSING_MESSAGE + ' Skipping it.', logger='current',
                      level=30)

    @property
    def available(self) -> bool:
        return self._official is not None

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        if self._official is None:
            return
        official = self._official
        if not official.format_only:
            for sample in data_samples:
                label_ids = sample['seg_map_path'].replace(
                    'labelTrainIds.png', 'labelIds.png')
                if not osp.isfile(label_ids):
                    raise FileNotFoundError(
                        f'CityscapesMetric: {label_ids} does not exist; the '
                        'official evaluation reads gtFine *_labelIds.png '
                        '(part of gtFine_trainvaltest.zip, beside the '
                        'polygons JSON)')
        official.results = []
        official.process(data_batch, data_samples)
        self.results.extend(official.results)
        official.results = []

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if self._official is None:
            return {}
        return self._official.compute_metrics(results)

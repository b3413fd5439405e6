"""The constructor preamble of densekit's folder datasets (MVTec AD, MVTec
LOCO, VisA, Synapse, ACDC), written once."""
import os
from typing import Any, Mapping, Optional, Sequence, Union

from mmengine.dataset import BaseDataset

from densekit.utils.arg_check import check_str_arg

__all__ = ['SplitDataset']


class SplitDataset(BaseDataset):
    """An mmengine ``BaseDataset`` listed from ``data_root`` for one
    ``split``.

    Checks ``data_root`` (a string or path) and ``split`` (one of
    ``splits`` when given); ``test_mode`` defaults to True for every split
    but ``train_split`` (a None from a test pipeline must raise, not be
    replaced by another sample); sets ``split`` and ``attrs`` as attributes
    before ``full_init`` (unless ``lazy_init``), since ``load_data_list``
    reads them.

    Args:
        data_root (str | os.PathLike): The dataset root.
        split (str): The split to list.
        splits (Sequence[str], optional): Accepted splits; None: any string.
        train_split (str): The split that trains. Defaults to 'train'.
        attrs (Mapping): Attributes ``load_data_list`` reads (may override
            ``split`` with its folder name).
        test_mode, lazy_init, pipeline, **kwargs: ``BaseDataset``'s.
    """

    def __init__(self,
                 data_root: Union[str, os.PathLike],
                 split: str,
                 splits: Optional[Sequence[str]] = None,
                 *,
                 train_split: str = 'train',
                 attrs: Mapping[str, Any] = {},
                 test_mode: Optional[bool] = None,
                 lazy_init: bool = False,
                 pipeline: Sequence = (),
                 **kwargs) -> None:
        name = type(self).__name__
        if isinstance(data_root, os.PathLike):
            data_root = os.fspath(data_root)
        check_str_arg(name, 'data_root', data_root)
        check_str_arg(name, 'split', split, splits)
        super().__init__(
            data_root=data_root, pipeline=list(pipeline),
            test_mode=split != train_split if test_mode is None else
            test_mode, lazy_init=True, **kwargs)
        self.split = split
        for key, value in attrs.items():
            setattr(self, key, value)
        if not lazy_init:
            self.full_init()

"""Single-stage YOLO detector whose neck and head read the backbone
contract."""
import inspect
from typing import Optional, Sequence, Union

import torch.nn as nn
from mmdet.models.detectors.single_stage import SingleStageDetector

from densekit.registry import MODELS


def _build(cfg_or_module: Union[dict, nn.Module]) -> nn.Module:
    return cfg_or_module if isinstance(cfg_or_module, nn.Module) \
        else MODELS.build(cfg_or_module)


def _resolve_in_channels(cfg: Union[dict, nn.Module], provided, owner: str,
                         key: str) -> Union[dict, nn.Module]:
    """Fill ``cfg.in_channels`` from the upstream contract, or check it."""
    if isinstance(cfg, nn.Module) or provided is None:
        return cfg
    cfg = dict(cfg)
    given = cfg.get('in_channels')
    if given is None:
        cfg['in_channels'] = list(provided)
    elif list(given) != list(provided):
        raise ValueError(
            f'{key}.in_channels={list(given)} but the {owner} outputs '
            f'channels {list(provided)}; remove `{key}.in_channels` to take '
            f'them from the {owner} automatically')
    return cfg


def _resolve_strides(cfg: Union[dict, nn.Module],
                     provided: Optional[Sequence[int]],
                     owner: str) -> Union[dict, nn.Module]:
    """Fill the head config's ``featmap_strides`` from the upstream contract
    (when its class takes them), or check it."""
    if isinstance(cfg, nn.Module) or provided is None:
        return cfg
    given = cfg.get('featmap_strides')
    if given is None:
        head_cls = MODELS.get(cfg['type'])
        if head_cls is not None and 'featmap_strides' in inspect.signature(
                head_cls.__init__).parameters:
            cfg = dict(cfg, featmap_strides=list(provided))
        return cfg
    if list(given) != list(provided):
        raise ValueError(
            f'model.bbox_head.featmap_strides={list(given)} but the {owner} '
            f'outputs strides {list(provided)}; remove '
            '`model.bbox_head.featmap_strides` to take them from the '
            f'{owner} automatically')
    return cfg


@MODELS.register_module()
class YOLODetector(SingleStageDetector):
    """mmdet's ``SingleStageDetector`` with channel contracts resolved.

    When the backbone reports ``out_channels`` (every densekit backbone does,
    see :class:`densekit.models.backbones.BaseBackbone`), the neck's
    ``in_channels`` default to it, and the head's to the neck's
    ``out_channels``; likewise the head's ``featmap_strides`` default to the
    backbone's ``out_strides`` (a neck keeps them level by level unless it
    reports ``out_strides`` of its own): swapping the backbone in a config
    needs no channel or stride arithmetic. Explicit ``in_channels`` or
    ``featmap_strides`` that disagree raise ``ValueError``.
    Training and inference are mmdet's (``loss``/``predict``/``_forward``).

    Args:
        backbone, neck, bbox_head (dict | nn.Module): Configs or built
            modules.
        train_cfg, test_cfg (dict, optional): Passed to the head.
        data_preprocessor (dict, optional): mmdet data preprocessor config.
    """

    def __init__(self,
                 *,
                 backbone: Union[dict, nn.Module],
                 neck: Union[dict, nn.Module, None] = None,
                 bbox_head: Union[dict, nn.Module],
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None) -> None:
        # Skip SingleStageDetector.__init__ (it builds all three from dicts
        # before any contract is known) but keep everything else of it.
        super(SingleStageDetector, self).__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = _build(backbone)
        channels = getattr(self.backbone, 'out_channels', None)
        strides = getattr(self.backbone, 'out_strides', None)
        if neck is not None:
            self.neck = _build(_resolve_in_channels(
                neck, channels, 'backbone', 'model.neck'))
            channels = getattr(self.neck, 'out_channels', None)
            strides = getattr(self.neck, 'out_strides', strides)
        if not isinstance(bbox_head, nn.Module):
            bbox_head = dict(bbox_head, train_cfg=train_cfg,
                             test_cfg=test_cfg)
        upstream = 'neck' if neck is not None else 'backbone'
        bbox_head = _resolve_strides(bbox_head, strides, upstream)
        self.bbox_head = _build(_resolve_in_channels(
            bbox_head, channels, upstream, 'model.bbox_head'))
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

"""The feature format of composite backbones (:class:`densekit.CBNet`): in
training, one tuple of maps per backbone, lead last; a helper every consumer
(the CB-FPN neck, the assistant-supervision detectors) reads it through.
"""
from typing import List, Tuple

from torch import Tensor

__all__ = ['per_backbone_features']


def per_backbone_features(feats) -> List[Tuple[Tensor, ...]]:
    """Normalise features to a list of per-backbone tuples, lead last.

    Args:
        feats: Either one backbone's features (a sequence of (N, C, H, W)
            tensors) or :class:`CBNet`'s / :class:`CBFPN`'s training output
            (a sequence of such sequences, lead last).

    Returns:
        list[tuple[Tensor]]: One tuple of maps per backbone, lead last.
    """
    if isinstance(feats, Tensor):
        return [(feats, )]
    feats = list(feats)
    if feats and isinstance(feats[0], Tensor):
        return [tuple(feats)]
    return [tuple(f) for f in feats]

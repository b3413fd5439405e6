"""Which tokens leave a DToP ViT at an exit (DToP, Tang et al., §3.2)."""
import torch
from torch import Tensor


def select_exiting_tokens(scores: Tensor, threshold: float,
                          keep_topk: int = 5) -> Tensor:
    """Tokens whose prediction is final at this exit ("easy tokens").

    A token is easy when its highest class score exceeds ``threshold``
    (strictly, as the official code). Of the easy tokens of each class the
    ``keep_topk`` most confident stay in the sequence anyway, so every class
    present keeps a few representatives as context for the later blocks
    (the paper's top-k "class-specific" retention, k = 5). Vectorised: one
    sort groups the candidates by class and orders each group by score.

    Args:
        scores (Tensor): (K, N) per-class scores in [0, 1] of N tokens.
        threshold (float): Confidence above which a token exits; >= 1.0
            lets none exit (scores never exceed 1).
        keep_topk (int): Easy tokens retained per class. Defaults to 5.

    Returns:
        Tensor: (N, ) bool, True for tokens that exit.
    """
    if scores.dim() != 2:
        raise ValueError(f'scores must be (K, N), got {tuple(scores.shape)}')
    confidence, label = scores.max(dim=0)
    exiting = confidence > threshold
    if keep_topk <= 0 or not bool(exiting.any()):
        return exiting
    candidates = exiting.nonzero().squeeze(1)
    cand_label = label[candidates]
    # descending confidence, then a stable sort by class: grouped by class,
    # most confident first inside each group
    order = torch.argsort(confidence[candidates], descending=True,
                          stable=True)
    order = order[torch.argsort(cand_label[order], stable=True)]
    grouped_label = cand_label[order]
    counts = torch.bincount(grouped_label, minlength=scores.shape[0])
    group_start = counts.cumsum(0) - counts
    rank = torch.arange(order.numel(), device=scores.device) - \
        group_start[grouped_label]
    exiting[candidates[order[rank < keep_topk]]] = False
    return exiting

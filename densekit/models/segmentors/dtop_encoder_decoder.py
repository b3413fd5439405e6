"""Dynamic Token Pruning for plain-ViT segmenters (DToP: Tang et al.,
"Dynamic Token Pruning in Plain Vision Transformers for Semantic
Segmentation", ICCV 2023)."""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.model import ModuleList
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from densekit.models.utils import select_exiting_tokens
from densekit.registry import MODELS
from .seg_encoder_decoder import SegEncoderDecoder


@MODELS.register_module()
class DToPEncoderDecoder(SegEncoderDecoder):
    """A plain ViT cut into stages at its auxiliary exits, whose easy tokens
    leave the sequence early at inference (DToP §3).

    The backbone is mmseg's plain ``VisionTransformer`` with
    ``out_indices`` at the exits (ViT-B: blocks 5, 7, 11); the heads are
    one auxiliary head per early exit (``auxiliary_head[i]`` reads
    ``in_index=i``) and the decode head at the last exit, all token
    graders: :class:`~densekit.models.decode_heads.ATMHead` (SegViT, the
    official DToP setting) or
    :class:`~densekit.models.decode_heads.TokenClassifierHead` (SETR-style).
    A grader has ``forward_tokens(tokens) -> outputs`` and
    ``token_scores(*outputs) -> (B, K, N)`` class scores in [0, 1], and
    its ``predict`` returns the same scores as a map.

    * **Training** (and inference with ``pruning.enabled=False``) is
      mmseg's ``EncoderDecoder``: every block sees every token and every
      exit head is trained with its loss, as in the paper.
    * **Pruned inference** (§3.2): after each early exit the head scores
      the tokens still in the sequence; tokens whose top class score
      exceeds ``threshold`` are finalised with that prediction and removed
      from the sequence (gathered out, so the later blocks and heads
      really run on fewer tokens), except the ``keep_topk`` most confident
      tokens of each class, kept as context. The last head predicts the
      remaining tokens and the two are scattered into one score map.

    Images of a batch keep different tokens, so pruned inference walks the
    batch one image at a time (mmseg tests one image per batch). After
    each inference :attr:`prune_stats` holds the executed work: tokens fed
    to each block (summed over the batch) and tokens exited per stage.

    ``pruning`` may be edited after construction (``model.pruning[
    'enabled'] = False``), as the benchmark does to compare both modes.

    Args:
        pruning (dict): ``enabled`` (bool, default True), ``threshold``
            (float, or one per early exit; default 0.9; >= 1.0 prunes
            nothing) and ``keep_topk`` (int, default 5).
        **kwargs: :class:`SegEncoderDecoder`'s; ``auxiliary_head`` must
            be a list with one head per early exit.
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 auxiliary_head: Union[dict, List[dict]],
                 pruning: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(backbone=backbone, decode_head=decode_head,
                         auxiliary_head=auxiliary_head, **kwargs)
        if isinstance(self.auxiliary_head, torch.nn.ModuleList):
            # mmseg keeps auxiliary heads in a plain nn.ModuleList, which
            # BaseModule.init_weights skips: the heads' own init would
            # never run
            self.auxiliary_head = ModuleList(self.auxiliary_head)
        self.pruning = self._check_pruning_cfg(pruning)
        self._check_stages()
        self.prune_stats: Optional[Dict[str, list]] = None

    # -- construction checks -------------------------------------------
    def _exit_heads(self) -> list:
        aux = self.auxiliary_head
        aux = list(aux) if isinstance(aux, torch.nn.ModuleList) else [aux]
        return aux + [self.decode_head]

    def _check_stages(self) -> None:
        vit = self.backbone
        for attr in ('patch_embed', 'layers', 'cls_token', '_pos_embeding',
                     'out_indices', 'with_cls_token'):
            if not hasattr(vit, attr):
                raise TypeError(
                    'DToPEncoderDecoder needs a plain ViT backbone '
                    "(mmseg's VisionTransformer); "
                    f'{type(vit).__name__} has no `{attr}`')
        if getattr(vit, 'out_origin', False) or getattr(
                vit, 'output_cls_token', False):
            raise ValueError('model.backbone: DToP exits read block outputs; '
                             'set out_origin=False and output_cls_token=False')
        exits = list(vit.out_indices)
        if exits != sorted(set(exits)):
            raise ValueError(f'model.backbone.out_indices={exits} must be '
                             'increasing block indices (the exits)')
        heads = self._exit_heads()
        if len(heads) != len(exits):
            raise ValueError(
                f'model.backbone.out_indices={exits} gives {len(exits)} exits '
                f'but there are {len(heads) - 1} auxiliary heads + 1 decode '
                'head; give one auxiliary head per early exit')
        for i, head in enumerate(heads):
            key = ('model.decode_head' if i == len(heads) - 1 else
                   f'model.auxiliary_head[{i}]')
            if head.in_index not in (i, i - len(heads)):
                raise ValueError(f'{key}.in_index={head.in_index}: the head '
                                 f'of exit {i} (block {exits[i]}) must read '
                                 f'in_index={i}')
            for method in ('forward_tokens', 'token_scores'):
                if not hasattr(head, method):
                    raise TypeError(f'{key}: {type(head).__name__} cannot '
                                    f'grade tokens (no `{method}`); use '
                                    'densekit.ATMHead or '
                                    'densekit.TokenClassifierHead')

    def _check_pruning_cfg(self, cfg: Optional[dict]) -> dict:
        cfg = dict(cfg or {})
        unknown = set(cfg) - {'enabled', 'threshold', 'keep_topk'}
        if unknown:
            raise ValueError(f'model.pruning: unknown keys {sorted(unknown)}'
                             ' (expected enabled, threshold, keep_topk)')
        cfg = dict(dict(enabled=True, threshold=0.9, keep_topk=5), **cfg)
        self._exit_thresholds(cfg['threshold'])
        return cfg

    def _exit_thresholds(self, threshold) -> List[float]:
        """One confidence threshold per early exit."""
        num_early = len(self.backbone.out_indices) - 1
        thresholds = (list(threshold) if isinstance(threshold, (list, tuple))
                      else [threshold] * num_early)
        if len(thresholds) != num_early:
            raise ValueError(f'model.pruning.threshold: {len(thresholds)} '
                             f'values for {num_early} early exits')
        return [float(t) for t in thresholds]

    # -- inference ------------------------------------------------------
    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        if self.training or not self.pruning['enabled']:
            scores = super().encode_decode(inputs, batch_img_metas)
            num_tokens = self._num_patches(inputs)
            blocks = len(self.backbone.layers)
            self.prune_stats = dict(
                tokens=num_tokens * inputs.shape[0],
                tokens_per_block=[num_tokens * inputs.shape[0]] * blocks,
                exited_per_stage=[0] * (len(self._exit_heads()) - 1))
            return scores
        scores = self.pruned_scores(inputs)
        # the scores are final: only mmseg's resize to the input remains
        return BaseDecodeHead.predict_by_feat(self.decode_head, scores,
                                              batch_img_metas)

    def _num_patches(self, inputs: Tensor) -> int:
        h, w = self._token_grid(inputs)
        return h * w

    def _token_grid(self, inputs: Tensor) -> Tuple[int, int]:
        """The patch grid the ViT makes of ``inputs`` (without running)."""
        patch = self.backbone.patch_embed
        if hasattr(patch, 'token_grid'):  # densekit.ConvStemViT's stem
            return patch.token_grid(tuple(inputs.shape[-2:]))
        conv = patch.projection
        size = list(inputs.shape[-2:])
        if getattr(patch, 'adap_padding', None) is not None:
            pad = patch.adap_padding.get_pad_shape(tuple(size))
            size = [s + p for s, p in zip(size, pad)]
        return tuple(
            (s + 2 * p - d * (k - 1) - 1) // st + 1
            for s, p, d, k, st in zip(size, conv.padding, conv.dilation,
                                      conv.kernel_size, conv.stride))

    def embed_tokens(self, inputs: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """The ViT's input sequence (patch + position embedding, optional
        class token first, pre-norm), exactly as its ``forward`` builds it."""
        vit = self.backbone
        x, hw_shape = vit.patch_embed(inputs)
        cls_tokens = vit.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls_tokens, x), dim=1)
        x = vit._pos_embeding(x, hw_shape, vit.pos_embed)
        if not vit.with_cls_token:
            x = x[:, 1:]
        if getattr(vit, 'pre_norm', False):
            x = vit.pre_ln(x)
        return x, hw_shape

    @torch.no_grad()
    def pruned_scores(self, inputs: Tensor) -> Tensor:
        """Per-class scores (B, K, h, w) at token resolution, easy tokens
        finalised at the early exits (DToP §3.2)."""
        vit = self.backbone
        x, (h, w) = self.embed_tokens(inputs)
        heads = self._exit_heads()
        exits = list(vit.out_indices)
        thresholds = self._exit_thresholds(self.pruning['threshold'])
        keep_topk = int(self.pruning['keep_topk'])
        offset = 1 if vit.with_cls_token else 0
        num_patches = h * w
        tokens_per_block = [0] * (exits[-1] + 1)
        exited = [0] * (len(exits) - 1)
        canvases = []
        for seq in x.split(1):  # (1, L, C): images keep different tokens
            alive = torch.arange(num_patches, device=x.device)
            canvas = x.new_zeros(self.decode_head.num_classes, num_patches)
            start = 0
            for stage, (block, head) in enumerate(zip(exits, heads)):
                for i in range(start, block + 1):
                    seq = vit.layers[i](seq)
                    tokens_per_block[i] += alive.numel()
                if block == len(vit.layers) - 1 and getattr(
                        vit, 'final_norm', False):
                    seq = vit.norm1(seq)
                start = block + 1
                patch_tokens = seq[:, offset:]
                scores = head.token_scores(
                    *head.forward_tokens(patch_tokens))[0]  # (K, n_alive)
                if stage == len(exits) - 1:
                    canvas[:, alive] = scores
                    break
                leaving = select_exiting_tokens(scores, thresholds[stage],
                                                keep_topk)
                if bool(leaving.any()):
                    canvas[:, alive[leaving]] = scores[:, leaving]
                    staying = ~leaving
                    seq = torch.cat(
                        (seq[:, :offset], patch_tokens[:, staying]), dim=1)
                    alive = alive[staying]
                    exited[stage] += int(leaving.sum())
            canvases.append(canvas)
        self.prune_stats = dict(tokens=num_patches * x.shape[0],
                                tokens_per_block=tokens_per_block,
                                exited_per_stage=exited)
        return torch.stack(canvases).view(x.shape[0], -1, h, w)

"""Dynamic Token Pruning for plain-ViT segmenters (DToP: Tang et al.,
"Dynamic Token Pruning in Plain Vision Transformers for Semantic
Segmentation", ICCV 2023)."""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.model import ModuleList
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.utils import add_prefix
from torch import Tensor

from densekit.models.utils import select_exiting_tokens
from densekit.registry import MODELS
from .seg_encoder_decoder import SegEncoderDecoder

# how an exited token is scored: the official composition (the final
# head's class presence on the exit head's mask) or the exit head's score
EXITED_SCORES = ('final_head', 'exit_head')


@MODELS.register_module()
class DToPEncoderDecoder(SegEncoderDecoder):
    """A plain ViT cut into stages at its auxiliary exits, whose easy tokens
    leave the sequence early (DToP §3; official code:
    zbwxp/Dynamic-Token-Pruning ``backbone/vit_prune.py``,
    ``decode_heads/prune_head.py``, ``segmentors/encoder_decoder_prune.py``).

    The backbone is mmseg's plain ``VisionTransformer`` with
    ``out_indices`` at the exits (ViT-B: blocks 5, 7, 11); the heads are
    one auxiliary head per early exit (``auxiliary_head[i]`` reads
    ``in_index=i``) and the decode head at the last exit, all token
    graders: :class:`~densekit.models.decode_heads.ATMHead` (SegViT, the
    official DToP setting) or
    :class:`~densekit.models.decode_heads.TokenClassifierHead` (SETR-style).
    A grader has ``forward_tokens(tokens) -> outputs`` whose last element
    is per token, (B, K, N) (ATM: mask logits; SETR: class logits), and
    the others per image (ATM: class-presence logits (B, K, 2)), and
    ``token_scores(*outputs) -> (B, K, N)`` class scores in [0, 1], and
    ``token_outputs_to_feat(*outputs)`` (the per-token output as a map)
    gives what its ``loss_by_feat`` reads; its ``predict`` returns the
    scores as a map.

    Pruned forward (§3.2, as the official ``ViT_prune.forward``): after
    each early exit the head scores the tokens still in the sequence;
    tokens whose top class score exceeds ``threshold`` exit (gathered out,
    so the later blocks and heads really run on fewer tokens), except the
    ``keep_topk`` most confident tokens of each class, kept as context.
    Every head writes its per-token outputs for the tokens it saw onto a
    canvas that keeps the earlier heads' outputs for the exited tokens
    (the official head's ``canvas``). The final score of every token is
    the final head's ``token_scores`` on that canvas: for ATM heads, the
    final head's class presence times the sigmoid of the exit head's mask
    logit for an exited token (``pruning.exited_scores='final_head'``, the
    official composition). ``'exit_head'`` instead keeps an exited token's
    whole score from its exit head (identical for SETR-style heads).

    * **Inference**: pruned when ``pruning.enabled`` (default), else
      mmseg's ``EncoderDecoder`` on every token.
    * **Training**: with ``pruning.train=False`` (default) mmseg's
      ``EncoderDecoder``: every block sees every token and every exit head
      is trained with its loss (the official base stage, whose heads have
      threshold 1.0). With ``pruning.train=True`` the training forward
      prunes too and every head's loss is computed on its canvas, as the
      official fine-tuning stage (``prune_segvit_ade20k.py``: 40k
      iterations at threshold 0.9 from the base run); see
      ``configs/seg/dtop_vit-b16_ade20k-512x512_prune-ft40k.py``.

    Images of a batch keep different tokens, so the pruned forward walks
    the batch one image at a time (as the official code). After each
    pruned or unpruned forward :attr:`prune_stats` holds the executed
    work: tokens fed to each block (summed over the batch) and tokens
    exited per stage.

    ``pruning`` may be edited after construction (``model.pruning[
    'enabled'] = False``), as the benchmark does to compare both modes.

    Args:
        pruning (dict): ``enabled`` (bool, default True: prune at
            inference), ``train`` (bool, default False: prune in the
            training forward), ``threshold`` (float, or one per early
            exit; default 0.9; >= 1.0 prunes nothing), ``keep_topk`` (int,
            default 5) and ``exited_scores`` (``'final_head'``, default,
            or ``'exit_head'``, see above).
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
            for method in ('forward_tokens', 'token_scores',
                           'token_outputs_to_feat'):
                if not hasattr(head, method):
                    raise TypeError(f'{key}: {type(head).__name__} cannot '
                                    f'grade tokens (no `{method}`); use '
                                    'densekit.ATMHead or '
                                    'densekit.TokenClassifierHead')

    def _check_pruning_cfg(self, cfg: Optional[dict]) -> dict:
        cfg = dict(cfg or {})
        defaults = dict(enabled=True, train=False, threshold=0.9,
                        keep_topk=5, exited_scores='final_head')
        unknown = set(cfg) - set(defaults)
        if unknown:
            raise ValueError(f'model.pruning: unknown keys {sorted(unknown)}'
                             f' (expected {", ".join(defaults)})')
        cfg = dict(defaults, **cfg)
        if cfg['exited_scores'] not in EXITED_SCORES:
            raise ValueError(
                f"model.pruning.exited_scores={cfg['exited_scores']!r}: "
                f'expected one of {EXITED_SCORES}')
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

    # -- the pruned forward (inference, and training with pruning) ------
    def _pruned_image(self, seq: Tensor, num_patches: int,
                      thresholds: List[float], keep_topk: int,
                      tokens_per_block: List[int],
                      exited: List[int]) -> Tuple[List[tuple], Tensor]:
        """One image's token sequence (1, L, C) through the staged ViT,
        easy tokens leaving at the early exits (the official
        ``ViT_prune.forward`` with ``PruneHead.forward(inference=True)``).

        Returns:
            tuple: ``per_head``, for every exit head in order, a pair of
            its per-image outputs (all but the last of its
            ``forward_tokens`` outputs) and its canvas (1, K, N) of
            per-token outputs: its own for the tokens it saw, the earlier
            heads' for the tokens that had already exited; and
            ``exit_stage`` (N, ) long, the head at which each token's
            prediction was made. Differentiable in the outputs; which
            tokens exit is decided without gradient, as officially.
        """
        vit = self.backbone
        heads = self._exit_heads()
        exits = list(vit.out_indices)
        offset = 1 if vit.with_cls_token else 0
        alive = torch.arange(num_patches, device=seq.device)
        exit_stage = torch.full((num_patches, ), len(exits) - 1,
                                dtype=torch.long, device=seq.device)
        canvas = None
        per_head = []
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
            outputs = head.forward_tokens(patch_tokens)
            token_out = outputs[-1]  # (1, K, n_alive)
            if canvas is None:
                canvas = token_out.new_zeros(token_out.shape[:2] +
                                             (num_patches, ))
            canvas = canvas.index_copy(2, alive, token_out)
            per_head.append((tuple(outputs[:-1]), canvas))
            if stage == len(exits) - 1:
                break
            with torch.no_grad():
                scores = head.token_scores(*outputs)[0]  # (K, n_alive)
                leaving = select_exiting_tokens(scores, thresholds[stage],
                                                keep_topk)
            if bool(leaving.any()):
                staying = ~leaving
                exit_stage[alive[leaving]] = stage
                seq = torch.cat((seq[:, :offset], patch_tokens[:, staying]),
                                dim=1)
                alive = alive[staying]
                exited[stage] += int(leaving.sum())
        return per_head, exit_stage

    def pruned_forward(self, inputs: Tensor) -> Tuple[List[tuple], Tensor]:
        """The batch through the pruned ViT, one image at a time (images
        keep different tokens), re-batched per head.

        Args:
            inputs (Tensor): (B, 3, H, W) images.

        Returns:
            tuple: a list over the exit heads of ``(outputs, canvas)`` --
            the head's per-image outputs (each (B, ...)) and its canvas
            (B, K, h, w) -- and ``exit_stage`` (B, h, w). Fills
            :attr:`prune_stats`.
        """
        x, (h, w) = self.embed_tokens(inputs)
        thresholds = self._exit_thresholds(self.pruning['threshold'])
        keep_topk = int(self.pruning['keep_topk'])
        tokens_per_block = [0] * len(self.backbone.layers)
        exited = [0] * (len(self._exit_heads()) - 1)
        images = [
            self._pruned_image(seq, h * w, thresholds, keep_topk,
                               tokens_per_block, exited)
            for seq in x.split(1)
        ]
        self.prune_stats = dict(tokens=h * w * x.shape[0],
                                tokens_per_block=tokens_per_block,
                                exited_per_stage=exited)
        per_head = []
        for head_parts in zip(*[per_head for per_head, _ in images]):
            outputs = tuple(
                torch.cat(parts)
                for parts in zip(*[outs for outs, _ in head_parts]))
            canvas = torch.cat([canvas for _, canvas in head_parts])
            per_head.append((outputs, canvas.view(x.shape[0], -1, h, w)))
        exit_stage = torch.stack([stage for _, stage in images])
        return per_head, exit_stage.view(x.shape[0], h, w)

    @torch.no_grad()
    def pruned_scores(self, inputs: Tensor) -> Tensor:
        """Per-class scores (B, K, h, w) at token resolution, easy tokens
        finalised at the early exits (DToP §3.2).

        ``pruning.exited_scores='final_head'`` (official): every token's
        score is the final head's ``token_scores`` on its canvas -- for
        ATM heads the final head's class presence times the sigmoid of the
        mask logit from the head at which the token exited.
        ``'exit_head'``: an exited token keeps its exit head's score.
        """
        per_head, exit_stage = self.pruned_forward(inputs)
        heads = self._exit_heads()
        outputs, canvas = per_head[-1]
        B, K, h, w = canvas.shape
        scores = heads[-1].token_scores(*outputs, canvas.flatten(2))
        if self.pruning['exited_scores'] == 'exit_head':
            stage = exit_stage.flatten(1)[:, None]  # (B, 1, N)
            for i, (head, (outs, early)) in enumerate(
                    zip(heads[:-1], per_head[:-1])):
                own = head.token_scores(*outs, early.flatten(2))
                scores = torch.where(stage == i, own, scores)
        return scores.view(B, K, h, w)

    # -- training -------------------------------------------------------
    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        """mmseg's losses; with ``pruning.train`` every exit head's loss is
        computed on its canvas from the pruned forward (the official
        fine-tuning stage), under the same names (``decode.*``,
        ``aux_<i>.*``)."""
        if not self.pruning['train']:
            return super().loss(inputs, data_samples)
        per_head, _ = self.pruned_forward(inputs)
        heads = self._exit_heads()
        losses = {}
        for i, (head, (outputs, canvas)) in enumerate(zip(heads, per_head)):
            head_losses = head.loss_by_feat(
                head.token_outputs_to_feat(*outputs, canvas), data_samples)
            # mmseg's names: aux_<i> for a list of auxiliary heads
            prefix = ('decode' if i == len(heads) - 1 else
                      f'aux_{i}' if isinstance(self.auxiliary_head,
                                               torch.nn.ModuleList) else
                      'aux')
            losses.update(add_prefix(head_losses, prefix))
        return losses

"""Streaming-perception YOLO detector (StreamYOLO / DAMO-StreamNet style).

StreamYOLO (Yang et al., CVPR 2022; official ``yancie-yjr/StreamYOLO:
exps/model/yolox.py``) and DAMO-StreamNet (He et al., IJCAI 2023; official
``zhiqic/DAMO-StreamNet:exps/model/yolox_longshort_v3_oddil.py``) forecast
the boxes of the next frame t+k from frames t-N..t: a shared backbone + neck
runs on every frame, a temporal fusion neck (DFP for N=1, LSFM for N>1) merges
the per-frame pyramids and the head predicts the target frame.
"""
import collections
import logging
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.utils import unpack_gt_instances
from mmdet.structures import DetDataSample, OptSampleList, SampleList
from mmengine.logging import print_log
from torch import Tensor

from densekit.registry import MODELS
from densekit.utils.checkpoint_check import load_weights
from .yolo_detector import YOLODetector, _build, _resolve_in_channels

# DAMO-StreamNet's logits distillation (tal_head_oddil.py, streamnet_*.py:
# hint_*_factor=0.2): MSE between student and teacher class logits; the box
# term is a KL on YOLOv8's bin distributions (officially an IoU loss on the
# decoded YOLOX boxes, which YOLOv8's head has no single logit for)
DEFAULT_DISTILL_CFG = dict(
    cls_weight=0.2, bbox_weight=0.2, bbox_mode='kl', temperature=1.0)


@MODELS.register_module()
class StreamYOLODetector(YOLODetector):
    """YOLO detector over a window of frames, with a streaming buffer.

    Call graph::

        loss(): _split_inputs() -> extract_feat() -> bbox_head.forward()
                -> bbox_head.loss_by_feat() [+ _distill_losses(teacher)]
        predict(): _split_inputs() -> extract_feat() -> bbox_head.predict()
        extract_feat(): extract_frame_feats(B*T frames, one call) -> fuse()
        predict_stream(): extract_frame_feats(1 frame) -> buffer -> fuse()
                -> bbox_head.predict()

    Inputs are (B, T, 3, H, W), frames oldest -> current, plus the future
    frame as the last entry when the samples' metainfo has
    ``has_future_frame=True`` (used only by the distillation teacher);
    gt_instances are the target frame's. A (B, 3, H, W) input is a window of
    one frame.

    Args:
        backbone, neck, bbox_head (dict | nn.Module): As
            :class:`YOLODetector`; shared by all frames.
        temporal_fusion (dict | nn.Module, optional): Fusion neck with an
            ``num_past_frames`` attribute and ``forward(feats)`` taking per
            level (B, N + 1, C, H, W); its ``in_channels`` default to the
            neck's ``out_channels``. None makes a still detector (N = 0, the
            non-forecasting baseline).
        num_past_frames (int, optional): N, checked against the fusion neck
            and the inputs; taken from the fusion neck when None.
        teacher_cfg (dict | nn.Module, optional): A still detector of the same
            kind (same head strides/classes/reg_max), frozen and kept in eval
            mode; it runs on the future frame and its head logits supervise
            the student's (``loss_distill_cls``, ``loss_distill_bbox``). It is
            held outside the module tree: not in ``state_dict()``, not in
            ``parameters()``, so checkpoints of the student load with or
            without a teacher configured.
        teacher_ckpt (str, optional): Checkpoint loaded (strictly) into the
            teacher at construction.
        distill_cfg (dict, optional): ``cls_weight``, ``bbox_weight``,
            ``bbox_mode`` ('kl' or 'mse') and ``temperature``; missing keys
            take :data:`DEFAULT_DISTILL_CFG`.
        train_cfg, test_cfg, data_preprocessor, init_cfg: As
            :class:`YOLODetector`.

    Note:
        The stream buffer assumes consecutive calls are consecutive frames
        of one sequence at the training ``frame_stride``; it resets itself
        when the samples' ``sid`` metainfo changes.
    """

    def __init__(self,
                 *,
                 backbone: Union[dict, nn.Module],
                 neck: Union[dict, nn.Module, None] = None,
                 bbox_head: Union[dict, nn.Module],
                 temporal_fusion: Union[dict, nn.Module, None] = None,
                 num_past_frames: Optional[int] = None,
                 teacher_cfg: Union[dict, nn.Module, None] = None,
                 teacher_ckpt: Optional[str] = None,
                 distill_cfg: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None) -> None:
        super().__init__(
            backbone=backbone, neck=neck, bbox_head=bbox_head,
            train_cfg=train_cfg, test_cfg=test_cfg,
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        channels = getattr(self.neck if self.with_neck else self.backbone,
                           'out_channels', None)
        self.temporal_fusion = None
        fusion_frames = 0
        if temporal_fusion is not None:
            self.temporal_fusion = _build(_resolve_in_channels(
                temporal_fusion, channels, 'neck', 'model.temporal_fusion'))
            fusion_frames = getattr(self.temporal_fusion, 'num_past_frames',
                                    None)
            if fusion_frames is None:
                raise TypeError(
                    f'{type(self.temporal_fusion).__name__} has no '
                    '`num_past_frames` attribute; model.temporal_fusion must '
                    'be a temporal fusion neck')
            out = getattr(self.temporal_fusion, 'out_channels', channels)
            if channels is not None and list(out) != list(channels):
                raise ValueError(
                    f'model.temporal_fusion outputs channels {list(out)} but '
                    f'the head was built for the neck\'s {list(channels)}')
        if num_past_frames is None:
            num_past_frames = fusion_frames
        if int(num_past_frames) != fusion_frames:
            raise ValueError(
                f'model.num_past_frames={num_past_frames} but '
                f'model.temporal_fusion takes {fusion_frames} past frames'
                + ('' if temporal_fusion is not None else
                   ' (no temporal_fusion: a still detector)'))
        self.num_past_frames = int(num_past_frames)

        self.distill_cfg = dict(DEFAULT_DISTILL_CFG, **(distill_cfg or {}))
        if self.distill_cfg['bbox_mode'] not in ('kl', 'mse'):
            raise ValueError("distill_cfg.bbox_mode must be 'kl' or 'mse', "
                             f"got {self.distill_cfg['bbox_mode']!r}")
        # a plain list keeps the teacher out of the module tree (see Args)
        self._teacher_holder: List[nn.Module] = []
        if teacher_cfg is not None:
            self._teacher_holder.append(
                self._build_teacher(teacher_cfg, teacher_ckpt))
        self.reset_stream()

    # ------------------------------------------------------------ teacher
    def _build_teacher(self, teacher_cfg, teacher_ckpt) -> nn.Module:
        teacher = _build(teacher_cfg)
        if getattr(teacher, 'temporal_fusion', None) is not None:
            raise ValueError('model.teacher_cfg must be a still detector (no '
                             'temporal_fusion): it sees the future frame')
        if not hasattr(teacher, 'bbox_head') or \
                not hasattr(teacher, 'extract_feat'):
            raise TypeError('model.teacher_cfg must build a single-stage '
                            f'detector, got {type(teacher).__name__}')
        for key in ('num_classes', 'reg_max', 'featmap_strides'):
            s = getattr(self.bbox_head, key, None)
            t = getattr(teacher.bbox_head, key, None)
            if s != t:
                raise ValueError(
                    f'teacher bbox_head.{key}={t} but the student has {s}; '
                    'logits distillation needs the same head layout')
        if teacher_ckpt is not None:
            load_weights(teacher, teacher_ckpt, strict=True,
                         owner='StreamYOLODetector teacher_ckpt')
        else:
            print_log('StreamYOLODetector: teacher_cfg given without '
                      'teacher_ckpt, the teacher is randomly initialised; '
                      'set model.teacher_ckpt to a trained still detector',
                      logger='current', level=logging.WARNING)
        teacher.requires_grad_(False)
        return teacher.eval()

    @property
    def teacher(self) -> Optional[nn.Module]:
        """The frozen distillation teacher, or None."""
        return self._teacher_holder[0] if self._teacher_holder else None

    # ------------------------------------------------------------ inputs
    def _split_inputs(
            self, batch_inputs: Tensor,
            batch_data_samples: OptSampleList) -> Tuple[Tensor,
                                                        Optional[Tensor]]:
        """(B, T, 3, H, W) -> student window (B, N + 1, 3, H, W), future.

        Returns:
            tuple: the student frames and the future frame (B, 3, H, W), or
            None without ``has_future_frame``.
        """
        if batch_inputs.dim() == 4:
            batch_inputs = batch_inputs[:, None]
        if batch_inputs.dim() != 5 or batch_inputs.shape[2] != 3:
            raise ValueError(
                'StreamYOLODetector expects inputs (B, T, 3, H, W) (or '
                f'(B, 3, H, W)), got {tuple(batch_inputs.shape)}; use '
                'densekit.StreamDataPreprocessor')
        metas = [s.metainfo for s in batch_data_samples or []]
        flags = {bool(m.get('has_future_frame', False)) for m in metas}
        if len(flags) > 1:
            raise ValueError('has_future_frame differs within the batch')
        has_future = flags == {True}
        future = batch_inputs[:, -1] if has_future else None
        frames = batch_inputs[:, :-1] if has_future else batch_inputs
        num_frames = frames.shape[1]
        for m in metas:
            if 'num_past_frames' in m and \
                    int(m['num_past_frames']) != num_frames - 1:
                raise ValueError(
                    f"sample {m.get('img_path', '?')} says num_past_frames="
                    f"{m['num_past_frames']} but the input has {num_frames} "
                    f'frames (has_future_frame={has_future})')
        if num_frames != self.num_past_frames + 1:
            raise ValueError(
                f'model.num_past_frames={self.num_past_frames} needs '
                f'{self.num_past_frames + 1} input frames, got {num_frames} '
                f'(inputs {tuple(batch_inputs.shape)}, has_future_frame='
                f'{has_future}); set the dataset\'s num_past_frames to the '
                "model's")
        return frames, future

    # ----------------------------------------------------------- features
    def extract_frame_feats(self, frames: Tensor) -> Tuple[Tensor, ...]:
        """Backbone + neck of independent frames.

        Args:
            frames (Tensor): (M, 3, H, W).

        Returns:
            tuple[Tensor]: Per level (M, C_l, H_l, W_l).
        """
        feats = self.backbone(frames)
        if self.with_neck:
            feats = self.neck(feats)
        return tuple(feats)

    def fuse(self, feats: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Temporal fusion of per-level (B, N + 1, C_l, H_l, W_l) features.

        Returns:
            tuple[Tensor]: Per level (B, C_l, H_l, W_l); the current frame's
            features for a still detector.
        """
        if self.temporal_fusion is None:
            return tuple(f[:, -1] for f in feats)
        return tuple(self.temporal_fusion(feats))

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor, ...]:
        """Fused features of a window, every frame in one batched call.

        Args:
            batch_inputs (Tensor): (B, T, 3, H, W) student frames (no future
                frame) or (B, 3, H, W).

        Returns:
            tuple[Tensor]: Per level (B, C_l, H_l, W_l).
        """
        if batch_inputs.dim() == 4:
            batch_inputs = batch_inputs[:, None]
        batch, num_frames = batch_inputs.shape[:2]
        feats = self.extract_frame_feats(batch_inputs.flatten(0, 1))
        return self.fuse([f.unflatten(0, (batch, num_frames)) for f in feats])

    # ------------------------------------------------------ train / test
    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Detection losses on the target frame (+ distillation losses).

        Args:
            batch_inputs (Tensor): (B, T, 3, H, W).
            batch_data_samples (list[DetDataSample]): Target-frame
                gt_instances (with ``trend_ious`` for a trend-aware head).

        Returns:
            dict[str, Tensor]: the head's losses, plus ``loss_distill_cls``
            and ``loss_distill_bbox`` with a teacher.
        """
        frames, future = self._split_inputs(batch_inputs, batch_data_samples)
        feats = self.extract_feat(frames)
        if self.teacher is None:
            return self.bbox_head.loss(feats, batch_data_samples)
        if future is None:
            raise ValueError(
                'model.teacher_cfg is set but the inputs carry no future '
                'frame; load it with densekit.LoadStreamFrames('
                'load_future_frame=True)')
        outs = self.bbox_head(feats)
        gts, metas, gts_ignore = unpack_gt_instances(batch_data_samples)
        losses = self.bbox_head.loss_by_feat(*outs, gts, metas, gts_ignore)
        losses.update(self._distill_losses(outs, future))
        return losses

    def _distill_losses(self, student_outs, future: Tensor) -> Dict[str,
                                                                    Tensor]:
        """DAMO-StreamNet logits distillation from the future-frame teacher.

        Returns:
            dict[str, Tensor]: ``loss_distill_cls`` (MSE of class logits over
            all priors) and ``loss_distill_bbox`` (KL(teacher || student) of
            the bin distributions at temperature T, times T^2, or MSE of the
            bin logits), scaled by the batch size when the head scales its
            losses so (keeps their ratio to the detection losses).
        """
        teacher = self.teacher
        param = next(teacher.parameters(), None)
        if param is not None and param.device != future.device:
            teacher.to(future.device)
        teacher.eval()
        with torch.no_grad():
            t_cls, t_bins = teacher.bbox_head(teacher.extract_feat(future))
        head, cfg = self.bbox_head, self.distill_cfg
        s_cls, s_bins = student_outs
        if [s.shape for s in s_cls] != [t.shape for t in t_cls]:
            raise ValueError(
                'teacher and student head outputs differ in shape: '
                f'{[tuple(t.shape) for t in t_cls]} vs '
                f'{[tuple(s.shape) for s in s_cls]}')
        s_cls = head._flatten(s_cls, head.num_classes)
        t_cls = head._flatten(t_cls, head.num_classes)
        s_bins = head._flatten(s_bins, 4 * head.reg_max).unflatten(
            -1, (4, head.reg_max))
        t_bins = head._flatten(t_bins, 4 * head.reg_max).unflatten(
            -1, (4, head.reg_max))
        loss_cls = F.mse_loss(s_cls, t_cls)
        if cfg['bbox_mode'] == 'kl':
            temp = float(cfg['temperature'])
            loss_bbox = F.kl_div(
                F.log_softmax(s_bins / temp, -1),
                F.log_softmax(t_bins / temp, -1), log_target=True,
                reduction='none').sum(-1).mean() * temp**2
        else:
            loss_bbox = F.mse_loss(s_bins, t_bins)
        scale = future.shape[0] if getattr(head, 'scale_loss_by_batch',
                                           False) else 1
        return dict(
            loss_distill_cls=loss_cls * cfg['cls_weight'] * scale,
            loss_distill_bbox=loss_bbox * cfg['bbox_weight'] * scale)

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Predict the target frame of full windows (all frames recomputed).

        Args:
            batch_inputs (Tensor): (B, T, 3, H, W); a future frame, if any,
                is ignored.

        Returns:
            list[DetDataSample]: with ``pred_instances``.
        """
        frames, _ = self._split_inputs(batch_inputs, batch_data_samples)
        results = self.bbox_head.predict(
            self.extract_feat(frames), batch_data_samples, rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs: Tensor,
                 batch_data_samples: OptSampleList = None):
        """Raw head outputs (cls_scores, bbox_preds) of full windows."""
        frames, _ = self._split_inputs(batch_inputs, batch_data_samples)
        return self.bbox_head.forward(self.extract_feat(frames))

    # ---------------------------------------------------------- streaming
    def reset_stream(self) -> None:
        """Empty the feature buffer (call at the start of each sequence)."""
        self._stream_buffer = collections.deque(
            maxlen=self.num_past_frames + 1)
        self._stream_sid = None

    @torch.no_grad()
    def predict_stream(self,
                       frame: Tensor,
                       data_sample: Union[DetDataSample, SampleList],
                       rescale: bool = True) -> SampleList:
        """Predict from one new frame, reusing the buffered frames' features.

        Each call runs the backbone + neck once (on the new frame), pushes
        its features into a ring buffer of the last N + 1 frames and fuses
        the buffer; at a sequence start the earliest buffered frame is
        repeated, as the dataset does. Equals :meth:`predict` on the window
        recomputed from scratch (in eval mode).

        Args:
            frame (Tensor): (1, 3, H, W) (or (3, H, W), or (1, 1, 3, H, W)
                from :class:`densekit.StreamDataPreprocessor`) preprocessed
                frame.
            data_sample (DetDataSample | list[DetDataSample]): Its meta
                information; a new ``sid`` resets the buffer.

        Returns:
            list[DetDataSample]: with ``pred_instances``.
        """
        if frame.dim() == 3:
            frame = frame[None]
        if frame.dim() == 5 and frame.shape[1] == 1:
            frame = frame[:, 0]  # a window of one, StreamDataPreprocessor's
        if frame.dim() != 4 or frame.shape[1] != 3:
            raise ValueError('predict_stream expects one frame (1, 3, H, W) '
                             f'or (1, 1, 3, H, W), got {tuple(frame.shape)}')
        samples = list(data_sample) if isinstance(
            data_sample, (list, tuple)) else [data_sample]
        sid = samples[0].metainfo.get('sid')
        if sid is not None and self._stream_sid is not None and \
                sid != self._stream_sid:
            self.reset_stream()
        self._stream_sid = sid
        feats = self.extract_frame_feats(frame)
        if self._stream_buffer and [f.shape for f in feats] != \
                [f.shape for f in self._stream_buffer[-1]]:
            raise ValueError(
                'predict_stream: the frame size changed within a stream '
                f'(features {[tuple(f.shape) for f in feats]} vs buffered '
                f'{[tuple(f.shape) for f in self._stream_buffer[-1]]}); '
                'call reset_stream() between sequences')
        self._stream_buffer.append(feats)
        window = list(self._stream_buffer)
        window = [window[0]] * (self._stream_buffer.maxlen -
                                len(window)) + window
        stacked = [torch.stack(level, 1) for level in zip(*window)]
        results = self.bbox_head.predict(
            self.fuse(stacked), samples, rescale=rescale)
        return self.add_pred_to_datasample(samples, results)

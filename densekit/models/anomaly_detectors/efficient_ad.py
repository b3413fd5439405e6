"""EfficientAD (Batzner et al., WACV 2024), an mmengine model.

A frozen PDN teacher, a student PDN with 2 x 384 output channels (the first
half imitates the teacher, the second half the autoencoder) and an
autoencoder. Training (Sec. 3.2, 3.3; Algorithm 1 of the appendix):

* the teacher's features are normalised channel-wise with the mean and
  standard deviation over the training images
  (:meth:`EfficientAD.set_teacher_stats`);
* hard-feature loss: the mean of the student-teacher squared differences at
  or above their 0.999 quantile (Eq. 1 of Sec. 3.2);
* penalty loss: the mean squared student output on an out-of-distribution
  (ImageNet) image, so that the student does not imitate the teacher off
  the normal distribution;
* autoencoder loss (teacher vs autoencoder) and student-autoencoder loss,
  both on a colour-augmented copy of the image (brightness, contrast or
  saturation by a factor in [0.8, 1.2]).

Inference (Sec. 3.4): local map = mean squared student-teacher difference,
global map = mean squared student-autoencoder difference; each normalised
so that its 0.9 / 0.995 quantiles on held-out normal images map to 0 / 0.1
(:meth:`EfficientAD.set_map_quantiles`); the anomaly map is their average,
padded by 4 px (the PDN's unpadded border) and resized to the image; the
image score is the maximum of the resized map. The two public
implementations order these steps differently, and ``map_postprocess``
selects one (:func:`postprocess_maps`):

* ``'nelson1425'`` (nelson1425/EfficientAD ``efficientad.py``: ``predict``
  then ``test``; the default): normalise the maps at the PDN resolution,
  pad by 4 px with 0 (the border is 0 on the normalised scale), resize to
  the original image; score = maximum of that map;
* ``'anomalib'`` (anomalib ``EfficientAdModel.compute_maps`` / ``forward``):
  pad the raw maps with 0, resize them to the network input, then normalise
  (the border is the normalised value of 0, ``-0.1 qa / (qb - qa)``) and
  average; score = maximum of that input-size map. anomalib also takes its
  quantiles on these padded, resized raw maps, and pads with
  ``pad_maps=True`` even when ``padding=True``.

The statistics are buffers, saved in checkpoints; ``densekit.
EfficientADStatsHook`` computes them during ``tools/train.py`` and
``tools/test.py``.
"""
import warnings
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor

from densekit.models.layers.patch_description_network import (
    EfficientADAutoencoder, PatchDescriptionNetwork)
from densekit.registry import MODELS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torch.quantile refuses more elements than this
_QUANTILE_LIMIT = 2**24


def _quantile(values: Tensor, q: Union[float, Sequence[float]]) -> Tensor:
    """``torch.quantile`` (linear interpolation) of a flattened tensor, in
    float32 (float64 stays float64); a sort-based exact version above
    torch's 2**24-element limit."""
    values = values.flatten()
    if values.dtype != torch.float64:
        values = values.float()
    qs = torch.as_tensor(q, dtype=values.dtype, device=values.device)
    if values.numel() <= _QUANTILE_LIMIT:
        return torch.quantile(values, qs)
    ordered = values.sort().values
    pos = qs * (ordered.numel() - 1)
    low = pos.floor().long()
    high = pos.ceil().long()
    frac = pos - low
    return ordered[low] * (1 - frac) + ordered[high] * frac


def hard_feature_loss(distance: Tensor, quantile: float = 0.999) -> Tensor:
    """Eq. 1 (Sec. 3.2): mean of the squared differences at or above their
    ``quantile`` (over all elements of the batch)."""
    d_hard = _quantile(distance.detach(), quantile)
    return distance[distance >= d_hard].mean()


def random_color_augment(images: Tensor,
                         generator: Optional[torch.Generator] = None
                         ) -> Tensor:
    """The autoencoder's augmentation (Sec. 3.3): per image one of
    brightness, contrast or saturation scaled by a factor in U(0.8, 1.2),
    as torchvision's ``adjust_*`` define them, on [0, 1] RGB images.

    Args:
        images (Tensor): (N, 3, H, W) in [0, 1].
        generator (torch.Generator, optional): Random source.

    Returns:
        Tensor: Augmented images, clamped to [0, 1].
    """
    n = images.shape[0]
    device = images.device
    factor = torch.empty(n, 1, 1, 1, device=device).uniform_(
        0.8, 1.2, generator=generator)
    choice = torch.randint(0, 3, (n, ), generator=generator,
                           device=device).view(n, 1, 1, 1)
    weights = torch.tensor([0.299, 0.587, 0.114], device=device,
                           dtype=images.dtype).view(1, 3, 1, 1)
    gray = (images * weights).sum(1, keepdim=True)
    # brightness: blend with black; contrast: with the mean grey level;
    # saturation: with the grey image
    brightness = images * factor
    contrast_ref = gray.mean(dim=(2, 3), keepdim=True)
    contrast = factor * images + (1 - factor) * contrast_ref
    saturation = factor * images + (1 - factor) * gray
    out = torch.where(choice == 0, brightness,
                      torch.where(choice == 1, contrast, saturation))
    return out.clamp_(0, 1)


# ``map_postprocess`` values: whose order of normalising, padding and
# resizing the maps (module docstring)
MAP_POSTPROCESS = ('nelson1425', 'anomalib')
# the PDN's unpadded border on each side (Sec. 3.4)
MAP_PAD = 4


def distance_maps(teacher: Tensor, student: Tensor, ae: Tensor
                  ) -> Tuple[Tensor, Tensor]:
    """Unnormalised local and global maps from the networks' outputs.

    Args:
        teacher (Tensor): (N, C, h, w) teacher features, already normalised
            with the teacher statistics.
        student (Tensor): (N, 2C, h, w); channels [:C] imitate the teacher,
            [C:] the autoencoder.
        ae (Tensor): (N, C, h, w) autoencoder output.

    Returns:
        tuple[Tensor, Tensor]: (N, 1, h, w) mean squared student-teacher and
        student-autoencoder differences.
    """
    c = teacher.shape[1]
    map_st = (teacher - student[:, :c]).pow(2).mean(1, keepdim=True)
    map_ae = (ae - student[:, c:]).pow(2).mean(1, keepdim=True)
    return map_st, map_ae


def normalize_map(raw: Tensor, qa: Tensor, qb: Tensor) -> Tensor:
    """Sec. 3.4: the quantile ``qa`` -> 0 and ``qb`` -> 0.1."""
    return 0.1 * (raw - qa) / (qb - qa)


def postprocess_maps(map_st: Tensor,
                     map_ae: Tensor,
                     quantiles: Optional[Tensor],
                     *,
                     order: str = 'nelson1425',
                     pad: bool = True,
                     image_size: Optional[Sequence[int]] = None
                     ) -> Tuple[Tensor, Tensor, Tensor]:
    """Normalise, pad and combine raw maps in the order of ``order``
    (the module docstring; both paths of :class:`EfficientAD` use this).

    Args:
        map_st, map_ae (Tensor): (N, 1, h, w) raw maps
            (:func:`distance_maps`).
        quantiles (Tensor, optional): (qa_st, qb_st, qa_ae, qb_ae); None:
            leave the maps unnormalised.
        order (str): ``'nelson1425'`` or ``'anomalib'``.
        pad (bool): Pad the maps by 4 px with 0.
        image_size (Sequence[int], optional): (H, W) of the network input;
            needed by ``'anomalib'``, which resizes before normalising.

    Returns:
        tuple[Tensor, Tensor, Tensor]: Combined, local and global maps:
        ``'nelson1425'``: (N, 1, h + 8, w + 8) with ``pad``, else
        (N, 1, h, w); ``'anomalib'``: (N, 1, H, W).
    """
    if order not in MAP_POSTPROCESS:
        raise ValueError(f'postprocess_maps: order must be one of '
                         f'{MAP_POSTPROCESS}, got {order!r}')
    borders = (MAP_PAD, ) * 4
    if order == 'anomalib':
        if image_size is None:
            raise ValueError("postprocess_maps: order='anomalib' needs "
                             'image_size (the network input (H, W))')
        size = tuple(int(s) for s in image_size[-2:])
        if pad:
            map_st, map_ae = F.pad(map_st, borders), F.pad(map_ae, borders)
        map_st = F.interpolate(map_st, size=size, mode='bilinear')
        map_ae = F.interpolate(map_ae, size=size, mode='bilinear')
    if quantiles is not None:
        qa_st, qb_st, qa_ae, qb_ae = quantiles
        map_st = normalize_map(map_st, qa_st, qb_st)
        map_ae = normalize_map(map_ae, qa_ae, qb_ae)
    combined = 0.5 * map_st + 0.5 * map_ae
    if order == 'nelson1425' and pad:
        combined, map_st, map_ae = (F.pad(m, borders)
                                    for m in (combined, map_st, map_ae))
    return combined, map_st, map_ae


@MODELS.register_module()
class EfficientAD(BaseModel):
    """EfficientAD-S / -M (see the module docstring).

    Args:
        model_size (str): ``'S'`` or ``'M'`` (PDN-S / PDN-M teacher and
            student). Defaults to ``'S'``.
        out_channels (int): Teacher feature channels. Defaults to 384.
        padding (bool): Padded PDNs (anomalib's option). Defaults to False
            (the paper).
        pad_maps (bool): Pad the maps by 4 px with 0 before resizing. With
            ``map_postprocess='nelson1425'`` only for unpadded PDNs
            (``padding=False``); with ``'anomalib'`` whenever set, as
            anomalib's ``EfficientAdModel`` does. Defaults to True.
        map_postprocess (str): Whose order of normalising, padding and
            resizing the maps to follow, and so the values of the border
            and of the image score (module docstring,
            :func:`postprocess_maps`): ``'nelson1425'`` (normalise at the PDN
            resolution, then pad and resize to the image) or ``'anomalib'``
            (pad and resize the raw maps to the network input, then
            normalise; quantiles on those maps). Checkpoints converted by
            ``tools/model_converters/efficientad_to_densekit.py`` need the
            value it prints. Defaults to ``'nelson1425'``.
        ae_dropout (float): Decoder dropout of the autoencoder. Defaults to
            0.2 (the paper).
        teacher_checkpoint (str, optional): Distilled teacher weights: a
            file of ``tools/anomaly/distill_teacher.py``, or an official
            ``teacher_small.pth`` / ``teacher_medium.pth`` (nelson1425
            layout, converted on load). Loaded by :meth:`init_weights`.
        allow_random_teacher (bool): Without ``teacher_checkpoint``, keep the
            randomly initialised teacher (with a warning) instead of raising.
            The synthetic-data configs set it; EfficientAD's published
            numbers need a distilled teacher. Defaults to False.
        hard_quantile (float): Quantile of the hard-feature loss. Defaults to
            0.999.
        map_quantiles (tuple[float, float]): Quantiles of map normalisation.
            Defaults to (0.9, 0.995).
        penalty_weight (float): Weight of the penalty loss. Defaults to 1.
        channels_last (bool): Keep weights and activations in channels-last
            memory format (faster oneDNN convolutions on CPUs, same
            numbers). Defaults to False.
        mean, std (Sequence[float]): Normalisation of the [0, 1] RGB inputs
            before every network. Defaults to ImageNet's.
        test_cfg (dict, optional): ``score_threshold``: also set
            ``pred_label`` (1 = anomalous) in predictions;
            ``inference_backend``: ``'eager'`` (default) or ``'optimized'``
            (:class:`~.efficient_ad_inference.EfficientADInference`:
            channels-last, fused conv+ReLU graph; rebuilt whenever the
            weights or statistics change); ``inference_dtype`` of
            ``'optimized'``: ``'auto'`` (default: bfloat16 where the CPU has
            native bfloat16, whose maps differ from the eager ones by up to
            about 1% of their range), ``'float32'`` (the eager maps, to
            float32 rounding) or ``'bfloat16'``.
        data_preprocessor (dict, optional): Defaults to
            ``densekit.AnomalyDataPreprocessor`` ([0, 1] RGB).
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 model_size: str = 'S',
                 out_channels: int = 384,
                 padding: bool = False,
                 pad_maps: bool = True,
                 map_postprocess: str = 'nelson1425',
                 ae_dropout: float = 0.2,
                 teacher_checkpoint: Optional[str] = None,
                 allow_random_teacher: bool = False,
                 hard_quantile: float = 0.999,
                 map_quantiles: Tuple[float, float] = (0.9, 0.995),
                 penalty_weight: float = 1.0,
                 channels_last: bool = False,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='densekit.AnomalyDataPreprocessor')
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        if not 0 < hard_quantile < 1:
            raise ValueError(f'EfficientAD: hard_quantile must be in (0, 1), '
                             f'got {hard_quantile}')
        if not 0 <= map_quantiles[0] < map_quantiles[1] <= 1:
            raise ValueError('EfficientAD: map_quantiles must be (qa, qb) '
                             f'with 0 <= qa < qb <= 1, got {map_quantiles}')
        if map_postprocess not in MAP_POSTPROCESS:
            raise ValueError(f'EfficientAD: map_postprocess must be one of '
                             f'{MAP_POSTPROCESS}, got {map_postprocess!r}')
        self.model_size = model_size
        self.out_channels = out_channels
        self.map_postprocess = map_postprocess
        # the pad that applies: anomalib pads even its padded PDNs' maps
        self.pad_maps = bool(pad_maps) and (map_postprocess == 'anomalib'
                                            or not padding)
        self.teacher_checkpoint = teacher_checkpoint
        self.allow_random_teacher = allow_random_teacher
        self.hard_quantile = hard_quantile
        self.map_quantiles = tuple(map_quantiles)
        self.penalty_weight = penalty_weight
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})

        self.teacher = PatchDescriptionNetwork(model_size, out_channels,
                                               padding)
        self.student = PatchDescriptionNetwork(model_size, 2 * out_channels,
                                               padding)
        self.autoencoder = EfficientADAutoencoder(out_channels, padding,
                                                  ae_dropout)
        self.teacher.requires_grad_(False)
        self.register_buffer('input_mean',
                             torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer('input_std', torch.tensor(std).view(1, 3, 1, 1))
        self.register_buffer('teacher_mean',
                             torch.zeros(1, out_channels, 1, 1))
        self.register_buffer('teacher_std', torch.ones(1, out_channels, 1, 1))
        # (qa_st, qb_st, qa_ae, qb_ae)
        self.register_buffer('quantiles', torch.zeros(4))
        self.register_buffer('has_teacher_stats', torch.tensor(False))
        self.register_buffer('has_quantiles', torch.tensor(False))
        self._warned_batch = False
        self._warned_penalty = False
        self._inference_path = None
        self.channels_last = channels_last
        if channels_last:
            for net in (self.teacher, self.student, self.autoencoder):
                net.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------
    # weights and statistics
    # ------------------------------------------------------------------
    def init_weights(self) -> None:
        """PyTorch's default init (as both reference implementations), then
        the distilled teacher from ``teacher_checkpoint``."""
        super().init_weights()
        if self.teacher_checkpoint:
            from .efficient_ad_convert import load_teacher_checkpoint
            load_teacher_checkpoint(self.teacher, self.teacher_checkpoint)
            print_log(f'EfficientAD: teacher loaded from '
                      f'{self.teacher_checkpoint}', logger='current')
        elif self.allow_random_teacher:
            print_log(
                'EfficientAD: no teacher_checkpoint, the teacher PDN keeps '
                'its random initialisation (allow_random_teacher=True). The '
                'published results need a teacher distilled from a '
                'pretrained network (tools/anomaly/distill_teacher.py).',
                logger='current', level=30)
        else:
            raise ValueError(
                'EfficientAD: model.teacher_checkpoint is not set. Give a '
                'distilled PDN teacher (tools/anomaly/distill_teacher.py, or '
                'the published teacher_small.pth / teacher_medium.pth), or '
                'set model.allow_random_teacher=True to train with a random '
                'teacher')

    def train(self, mode: bool = True) -> 'EfficientAD':
        """The teacher stays in eval mode (it is frozen). Entering training
        drops the cached optimised inference path (weights will change)."""
        super().train(mode)
        self.teacher.eval()
        if mode:
            self._inference_path = None
        return self

    def _load_from_state_dict(self, *args, **kwargs):
        self._inference_path = None
        super()._load_from_state_dict(*args, **kwargs)

    def inference_maps(self, inputs: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """:meth:`_forward` through ``test_cfg.inference_backend``."""
        backend = self.test_cfg.get('inference_backend', 'eager')
        if backend == 'eager':
            return self._forward(inputs)
        if self._inference_path is None:
            from .efficient_ad_inference import build_inference_path
            self._inference_path = build_inference_path(
                self, backend,
                dtype=self.test_cfg.get('inference_dtype', 'auto'))
        return self._inference_path(inputs)

    def normalize_inputs(self, images: Tensor) -> Tensor:
        """[0, 1] RGB -> the networks' input normalisation (channels-last
        with ``channels_last``)."""
        normalized = (images - self.input_mean) / self.input_std
        if self.channels_last:
            normalized = normalized.contiguous(
                memory_format=torch.channels_last)
        return normalized

    @torch.no_grad()
    def teacher_features(self, normalized: Tensor) -> Tensor:
        """Teacher output, normalised channel-wise once the statistics are
        set (Sec. 3.2)."""
        features = self.teacher(normalized)
        if bool(self.has_teacher_stats):
            features = (features - self.teacher_mean) / self.teacher_std
        return features

    @torch.no_grad()
    def set_teacher_stats(self, batches: Iterable[Tensor]) -> None:
        """Channel mean and standard deviation of the teacher's features
        over training images (nelson1425's ``teacher_normalization``: the
        mean of per-image channel means, and the root of the mean of
        per-image mean squared deviations, here in one float64 pass).

        Args:
            batches (Iterable[Tensor]): (N, 3, H, W) [0, 1] RGB images.
        """
        first = second = None
        count = 0
        for images in batches:
            out = self.teacher(self.normalize_inputs(
                images.to(self.input_mean.device))).double()
            m1 = out.mean(dim=(2, 3)).sum(0)
            m2 = out.pow(2).mean(dim=(2, 3)).sum(0)
            first = m1 if first is None else first + m1
            second = m2 if second is None else second + m2
            count += out.shape[0]
        if not count:
            raise ValueError('EfficientAD.set_teacher_stats: no images')
        mean = first / count
        var = (second / count - mean.pow(2)).clamp_min(0)
        self.teacher_mean.copy_(mean.view_as(self.teacher_mean))
        self.teacher_std.copy_(
            var.sqrt().clamp_min(1e-6).view_as(self.teacher_std))
        self.has_teacher_stats.fill_(True)
        self._inference_path = None

    @torch.no_grad()
    def set_map_quantiles(self, batches: Iterable[Tensor]) -> Tensor:
        """Quantiles ``map_quantiles`` of the unnormalised local and global
        maps over held-out normal images (Sec. 3.4): of the maps at the PDN
        resolution (nelson1425's ``map_normalization``), or with
        ``map_postprocess='anomalib'`` of the maps padded (``pad_maps``) and
        resized to the input (anomalib's ``map_norm_quantiles``).

        Args:
            batches (Iterable[Tensor]): (N, 3, H, W) [0, 1] RGB images.

        Returns:
            Tensor: (qa_st, qb_st, qa_ae, qb_ae).
        """
        was_training = self.training
        self.eval()
        maps_st, maps_ae = [], []
        for images in batches:
            normalized = self.normalize_inputs(
                images.to(self.input_mean.device))
            st, ae = self.raw_maps(normalized)
            if self.map_postprocess == 'anomalib':
                _, st, ae = postprocess_maps(
                    st, ae, None, order='anomalib', pad=self.pad_maps,
                    image_size=normalized.shape[-2:])
            maps_st.append(st.flatten())
            maps_ae.append(ae.flatten())
        self.train(was_training)
        if not maps_st:
            raise ValueError('EfficientAD.set_map_quantiles: no images')
        q_st = _quantile(torch.cat(maps_st), self.map_quantiles)
        q_ae = _quantile(torch.cat(maps_ae), self.map_quantiles)
        self.quantiles.copy_(torch.cat([q_st, q_ae]))
        self.has_quantiles.fill_(True)
        self._inference_path = None
        return self.quantiles.clone()

    # ------------------------------------------------------------------
    # maps
    # ------------------------------------------------------------------
    def raw_maps(self, normalized: Tensor) -> Tuple[Tensor, Tensor]:
        """Unnormalised local (student-teacher) and global
        (student-autoencoder) maps, (N, 1, h, w) at the PDN resolution."""
        return distance_maps(self.teacher_features(normalized),
                             self.student(normalized),
                             self.autoencoder(normalized,
                                              normalized.shape[-2:]))

    def anomaly_maps(self, normalized: Tensor
                     ) -> Tuple[Tensor, Tensor, Tensor]:
        """Combined, local and global maps through :func:`postprocess_maps`
        (``map_postprocess``): quantile normalised once
        :meth:`set_map_quantiles` ran, padded by 4 px with ``pad_maps``.

        Returns:
            tuple[Tensor, Tensor, Tensor]: (N, 1, h', w') each: the PDN
            resolution (+ 8 with ``pad_maps``) for ``'nelson1425'``, the
            input's (H, W) for ``'anomalib'``.
        """
        map_st, map_ae = self.raw_maps(normalized)
        return postprocess_maps(
            map_st, map_ae,
            self.quantiles if bool(self.has_quantiles) else None,
            order=self.map_postprocess, pad=self.pad_maps,
            image_size=normalized.shape[-2:])

    # ------------------------------------------------------------------
    # mmengine interface
    # ------------------------------------------------------------------
    def forward(self,
                inputs: Tensor,
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs)
        raise RuntimeError(f'EfficientAD: invalid mode "{mode}" (loss, '
                           'predict or tensor)')

    def _forward(self, inputs: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """[0, 1] RGB batch -> (combined, local, global) maps."""
        return self.anomaly_maps(self.normalize_inputs(inputs))

    def loss(self, inputs: Tensor,
             data_samples: Optional[List[BaseDataElement]] = None
             ) -> Dict[str, Tensor]:
        """The four losses of one step (module docstring).

        Args:
            inputs (Tensor): (N, 3, H, W) [0, 1] RGB normal images.
            data_samples (list[BaseDataElement], optional): May carry
                ``penalty_img`` ((3, H, W) [0, 1] RGB) for the penalty loss.
        """
        n = inputs.shape[0]
        if n != 1 and not self._warned_batch:
            warnings.warn(
                f'EfficientAD: training with batch size {n}; the published '
                'recipe uses batch size 1 (the hard-feature quantile is '
                'taken over the whole batch)')
            self._warned_batch = True
        c = self.out_channels
        penalty = [s.penalty_img for s in data_samples or []
                   if 'penalty_img' in s]
        if not penalty and self.penalty_weight and not self._warned_penalty:
            warnings.warn('EfficientAD: no penalty images in the batch '
                          '(add densekit.LoadPenaltyImage to the training '
                          'pipeline); training without the penalty loss')
            self._warned_penalty = True
        augmented = random_color_augment(inputs)
        batch = [inputs, augmented]
        if penalty:
            batch.append(torch.stack(penalty).to(inputs))
        normalized = self.normalize_inputs(torch.cat(batch))
        # one pass per network over [image, augmented image, penalty images]
        teacher = self.teacher_features(normalized[:2 * n])
        student = self.student(normalized)
        ae = self.autoencoder(normalized[n:2 * n], inputs.shape[-2:])

        distance_st = (teacher[:n] - student[:n, :c]).pow(2)
        losses = dict(loss_hard=hard_feature_loss(distance_st,
                                                  self.hard_quantile))
        if penalty:
            losses['loss_penalty'] = self.penalty_weight * \
                student[2 * n:, :c].pow(2).mean()
        losses['loss_ae'] = (teacher[n:] - ae).pow(2).mean()
        losses['loss_stae'] = (ae - student[n:2 * n, c:]).pow(2).mean()
        return losses

    def map_and_score(self, combined: Tensor, shape: Sequence[int]
                      ) -> Tuple[Tensor, Tensor]:
        """One image's anomaly map at ``shape`` and its score (see
        :meth:`predict`).

        Args:
            combined (Tensor): (1, h, w) combined map of
                :meth:`anomaly_maps`.
            shape (Sequence[int]): (H0, W0) of the original image.

        Returns:
            tuple[Tensor, Tensor]: The (H0, W0) map and the score (shape
            ()).
        """
        shape = tuple(int(s) for s in shape[:2])
        if tuple(combined.shape[-2:]) == shape:
            anomaly_map = combined[0]
        else:
            anomaly_map = F.interpolate(combined[None], size=shape,
                                        mode='bilinear')[0, 0]
        scored = combined if self.map_postprocess == 'anomalib' \
            else anomaly_map
        return anomaly_map, scored.amax()

    @torch.no_grad()
    def predict(self, inputs: Tensor,
                data_samples: Optional[List[BaseDataElement]] = None
                ) -> List[BaseDataElement]:
        """Anomaly map at each image's ``ori_shape`` and the image score
        ``pred_score`` (``pred_label`` with ``test_cfg.score_threshold``).

        The score is the maximum of the map resized to the image, as the
        reference of ``map_postprocess`` defines it: ``'nelson1425'``: of
        ``anomaly_map`` itself (the map bilinearly resized from the PDN
        resolution to ``ori_shape``); ``'anomalib'``: of the map at the
        network input, which ``anomaly_map`` then resizes to ``ori_shape``
        (the same map when the two sizes agree).

        Returns:
            list[BaseDataElement]: The samples with ``anomaly_map`` (H0, W0),
            ``pred_score`` (shape ()), ``map_st`` and ``map_ae`` (as
            :meth:`anomaly_maps` returns them).
        """
        combined, map_st, map_ae = self.inference_maps(inputs)
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(len(inputs))]
        threshold = self.test_cfg.get('score_threshold')
        for i, sample in enumerate(data_samples):
            shape = tuple(sample.metainfo.get('ori_shape',
                                              inputs.shape[-2:]))[:2]
            sample.anomaly_map, sample.pred_score = self.map_and_score(
                combined[i], shape)
            sample.map_st = map_st[i, 0]
            sample.map_ae = map_ae[i, 0]
            if threshold is not None:
                sample.pred_label = (sample.pred_score >= threshold).long()
        return data_samples

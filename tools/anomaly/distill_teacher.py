"""Distil EfficientAD's PDN teacher from a pretrained backbone on ImageNet.

Batzner et al., "EfficientAD", WACV 2024, Sec. 3.1: the PDN is trained to
predict, for every 33x33 patch, the features a pretrained WideResNet-101
gives for it. The recipe here is that of nelson1425/EfficientAD's
``pretraining.py`` (whose distilled ``teacher_small.pth`` its author
reports to reproduce the paper's results):

* data: ImageNet train images (any folder, searched recursively for
  jpg/jpeg/png), shuffled, batch size 16; each image is greyed with
  probability 0.1 (the same grey copy for both networks) and resized,
  without crop and without keeping the aspect ratio, to 512x512 for the
  extractor and 256x256 for the PDN; both ImageNet-normalised RGB;
* targets: WideResNet-101-2 ``layer2`` (stride 8) and ``layer3`` (stride 16)
  maps, PatchCore's local aggregation: every 3x3 neighbourhood (zero padded)
  is flattened, ``layer3``'s are bilinearly resized to ``layer2``'s 64x64
  grid, each layer's flattened patch is adaptive-average-pooled to 1024
  values, the layers are concatenated and pooled again to 384 channels
  (:func:`aggregate_features`);
* normalisation: channel mean over the first 10,000 images of the
  (augmented, shuffled) training stream, then the channel standard
  deviation around it over the next 10,000 (each the mean of per-batch
  statistics; :func:`feature_normalization`);
* the PDN is trained **with padding** (``padding=True``: 256 -> 64x64, the
  target grid), loss ``mean((target - pdn(x)) ** 2)``, Adam lr 1e-4,
  weight decay 1e-5, 60,000 iterations, no schedule. EfficientAD then uses
  the same weights without padding (256 -> 56x56); the parameters do not
  depend on the padding.

densekit differences: OpenCV reads and resizes (``INTER_AREA`` when
shrinking, ``INTER_LINEAR`` when enlarging) where the reference uses PIL's
antialiased bilinear resize; the extractor is any registry backbone
(default ``densekit.WideResNet`` depth 101, built without ``layer4``, which
the reference never runs), loaded from ``--extractor-checkpoint`` (e.g.
torchvision's ``wide_resnet101_2-32ee1156.pth``; no torchvision needed);
the output grid is that of the first returned feature map instead of a
hard-coded 64x64; target channels with zero spread (possible only for
degenerate extractors: the reference would divide by zero) get std 1, with
a warning. As in the reference, the statistics consume the first batches of
the same shuffled stream the training then continues.

When ``--img-dir`` is not given or does not exist, the tool stops with an
error unless ``--synthetic-images N`` is given: then it distils, with a
warning, on N random smooth colour-noise images
(``densekit.datasets.transforms.penalty_image.synthetic_penalty_image``),
which is only for smoke tests;
such a teacher (or one from ``--random-extractor``) gives no meaningful
anomaly detection.

Outputs: ``--out`` = ``{'state_dict': PDN weights (conv1.weight ...),
'meta': {recipe, extractor, feature_mean, feature_std, ...}}``, loadable by
``EfficientAD(teacher_checkpoint=...)``; next to it ``<out>_last.pth``
(PDN, optimizer, iteration and normalisation statistics) every
``--save-interval`` iterations, on Ctrl-C and at the end, which
``--resume`` continues from.

Examples:
    Full recipe (ImageNet, torchvision weights)::

        python tools/anomaly/distill_teacher.py \
            --img-dir data/imagenet/train \
            --extractor-checkpoint wide_resnet101_2-32ee1156.pth \
            --size S --out work_dirs/teacher_small.pth

    Continue an interrupted run: the same command with ``--resume``.
"""
import argparse
import ast
import glob
import logging
import os
import os.path as osp
import random
import sys
import time
import warnings
from collections import OrderedDict
from typing import (Callable, Dict, Iterable, Iterator, List, Optional,
                    Sequence, Tuple)

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MMLogger, print_log
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png')
OUT_CHANNELS = 384
#: WideResNet-101-2 up to ``layer3`` (the reference stops there); the
#: output indices 1, 2 are ``layer2`` and ``layer3``.
DEFAULT_EXTRACTOR = dict(
    type='densekit.WideResNet', depth=101, num_stages=3, strides=(1, 2, 2),
    dilations=(1, 1, 1), out_indices=(1, 2), norm_eval=True)
#: torchvision's wide_resnet101_2 without ``fc`` (printed as a check)
WRN101_2_PARAMS = 124_837_696


class DistillError(ValueError):
    """Bad input to the distillation (what came in and what to do)."""


# ----------------------------------------------------------------------
# targets: PatchCore local aggregation and normalisation
# ----------------------------------------------------------------------
def aggregate_features(features: Sequence[Tensor],
                       pre_dim: int = 1024,
                       out_dim: int = OUT_CHANNELS,
                       patch_size: int = 3) -> Tensor:
    """PatchCore's local aggregation of backbone maps to one target map.

    For every map: each position's ``patch_size`` x ``patch_size``
    neighbourhood (zero padded) is flattened channel-major
    (``C * k * k`` values, as ``F.unfold`` orders them); maps coarser than
    the first are bilinearly resized (``align_corners=False``) to its grid
    after flattening; each flattened patch is adaptive-average-pooled to
    ``pre_dim`` values. The per-map vectors are concatenated and pooled
    again to ``out_dim``.

    Args:
        features (Sequence[Tensor]): Backbone maps, each (N, C_i, H_i, W_i),
            the first at the output resolution (e.g. WideResNet ``layer2``
            (N, 512, 64, 64) and ``layer3`` (N, 1024, 32, 32)).
        pre_dim (int): Per-map dimension before concatenation (PatchCore's
            ``pretrain_embed_dimension``). Defaults to 1024.
        out_dim (int): Output channels. Defaults to 384.
        patch_size (int): Odd neighbourhood side. Defaults to 3.

    Returns:
        Tensor: (N, out_dim, H_0, W_0).
    """
    if not features:
        raise DistillError('aggregate_features: got no feature maps')
    if patch_size % 2 != 1:
        raise DistillError(f'aggregate_features: patch_size must be odd, '
                           f'but got {patch_size}')
    num, _, height, width = features[0].shape
    pooled = []
    for feat in features:
        channels, h, w = feat.shape[1:]
        patches = F.unfold(feat, patch_size, padding=patch_size // 2)
        dim = channels * patch_size**2  # (N, dim, h * w)
        if (h, w) != (height, width):
            patches = F.interpolate(
                patches.reshape(num, dim, h, w), size=(height, width),
                mode='bilinear', align_corners=False).flatten(2)
        patches = patches.transpose(1, 2).reshape(-1, 1, dim)
        pooled.append(F.adaptive_avg_pool1d(patches, pre_dim))
    stacked = torch.cat(pooled, dim=2)  # (N * H * W, 1, L * pre_dim)
    out = F.adaptive_avg_pool1d(stacked, out_dim)
    return out.reshape(num, height, width, out_dim).permute(0, 3, 1, 2)


@torch.no_grad()
def extract_targets(extractor: nn.Module, images: Tensor,
                    out_dim: int = OUT_CHANNELS) -> Tensor:
    """Un-normalised targets: (N, 3, H, W) ImageNet-normalised extractor
    inputs -> (N, out_dim, h, w), ``(h, w)`` the grid of the extractor's
    first output."""
    features = extractor(images)
    if isinstance(features, Tensor):
        features = (features, )
    return aggregate_features(list(features), out_dim=out_dim)


@torch.no_grad()
def feature_normalization(target_fn: Callable[[Tensor], Tensor],
                          batches: Iterator[Tensor],
                          num_images: int) -> Tuple[Tensor, Tensor, int]:
    """Channel mean and standard deviation of the targets, as the
    reference: the mean of per-batch channel means over the first
    ``num_images`` images of ``batches``, then the square root of the mean
    of per-batch mean squared deviations from it over the next
    ``num_images`` images (each pass stops after the batch reaching the
    count, so both see whole batches).

    Args:
        target_fn (Callable): (N, 3, H, W) images -> (N, C, h, w) targets.
        batches (Iterator[Tensor]): Extractor-input batches, consumed.
        num_images (int): Images per pass (10,000 in the reference).

    Returns:
        tuple: ``mean`` and ``std``, each (1, C, 1, 1), and the number of
        batches consumed.
    """
    if num_images < 1:
        raise DistillError(f'feature_normalization: num_images must be '
                           f'positive, but got {num_images}')
    consumed = 0

    def one_pass(stat: Callable[[Tensor], Tensor]) -> Tensor:
        nonlocal consumed
        values, count = [], 0
        while count < num_images:
            try:
                images = next(batches)
            except StopIteration:
                raise DistillError(
                    f'feature_normalization: the batches ran out after '
                    f'{count} of {num_images} images') from None
            consumed += 1
            values.append(stat(target_fn(images)))
            count += len(images)
        return torch.stack(values).mean(dim=0)

    mean = one_pass(lambda t: t.mean(dim=(0, 2, 3)))[None, :, None, None]
    var = one_pass(lambda t: ((t - mean)**2).mean(dim=(0, 2, 3)))
    return mean, var.sqrt()[None, :, None, None], consumed


def guard_std(std: Tensor, eps: float = 1e-6) -> Tensor:
    """``std`` with channels below ``eps`` (constant targets, e.g. dead
    ReLU channels of a random extractor; the reference would divide by 0)
    set to 1, with a warning."""
    degenerate = std < eps
    if degenerate.any():
        warnings.warn(
            f'distill_teacher: {int(degenerate.sum())} of {std.numel()} '
            f'target channels are constant (std < {eps}); their std is set '
            'to 1. Expected only with --random-extractor or very few images.')
        std = torch.where(degenerate, torch.ones_like(std), std)
    return std


def normalize_targets(targets: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """(N, C, h, w) targets -> ``(targets - mean) / std``, both (1, C, 1, 1).
    """
    return (targets - mean) / std


def train_step(pdn: nn.Module, optimizer: torch.optim.Optimizer,
               pdn_images: Tensor, targets: Tensor) -> float:
    """One distillation step: ``loss = mean((targets - pdn(x)) ** 2)``,
    backward, optimizer step.

    Args:
        pdn (nn.Module): The PDN (padded, so its grid is the targets').
        optimizer (Optimizer): Over ``pdn``'s parameters.
        pdn_images (Tensor): (N, 3, H, W) ImageNet-normalised PDN inputs.
        targets (Tensor): (N, C, h, w) normalised targets.

    Returns:
        float: The loss before the step.
    """
    prediction = pdn(pdn_images)
    if prediction.shape != targets.shape:
        raise DistillError(
            f'train_step: the PDN gives {tuple(prediction.shape)} but the '
            f'targets are {tuple(targets.shape)}; the padded PDN grid is '
            'ceil(img_size / 4) and the target grid extractor_size / '
            'stride of the first extractor output (8 for layer2): e.g. '
            '--img-size 256 --extractor-size 512')
    loss = torch.mean((targets - prediction)**2)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


# ----------------------------------------------------------------------
# images
# ----------------------------------------------------------------------
def list_images(img_dir: Optional[str]) -> List[str]:
    """Every jpg/jpeg/png under ``img_dir`` (recursive, any case), sorted.

    Raises:
        FileNotFoundError: no folder, or no images in it; says how to use
            the synthetic fallback.
    """
    hint = ('give --img-dir an ImageNet (ILSVRC/Data/CLS-LOC/train) or '
            'Imagenette train folder, or --synthetic-images N for a smoke '
            'test on random images (such a teacher is useless for real '
            'data)')
    if not img_dir or not osp.isdir(img_dir):
        where = ('no --img-dir given' if not img_dir else
                 f'--img-dir {img_dir} does not exist')
        raise FileNotFoundError(f'distill_teacher: {where}; {hint}')
    files = sorted(
        f for f in glob.glob(osp.join(img_dir, '**', '*'), recursive=True)
        if f.lower().endswith(IMAGE_SUFFIXES) and osp.isfile(f))
    if not files:
        raise FileNotFoundError(
            f'distill_teacher: no images ({", ".join(IMAGE_SUFFIXES)}) '
            f'under --img-dir {img_dir}; {hint}')
    return files


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    """Square resize without keeping the aspect ratio (``Resize((s, s))``):
    ``INTER_AREA`` when shrinking (closest to PIL's antialiased bilinear),
    ``INTER_LINEAR`` otherwise."""
    shrink = size < min(img.shape[:2])
    return cv2.resize(img, (size, size),
                      interpolation=cv2.INTER_AREA if shrink else
                      cv2.INTER_LINEAR)


def _to_tensor(img: np.ndarray) -> Tensor:
    """(H, W, 3) RGB uint8 -> (3, H, W) ImageNet-normalised float."""
    img = img.astype(np.float32) / 255.0
    img = (img - np.array(IMAGENET_MEAN, np.float32)) / np.array(
        IMAGENET_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


class DistillImages(torch.utils.data.Dataset):
    """The two views of an image: ``(extractor input, PDN input)``.

    Items are addressed by ``(index, sample_seed)`` (see
    :class:`InfiniteBatchSampler`), so the random grayscale of a sample
    depends only on its place in the stream and a resumed run sees the same
    data.

    Args:
        files (Sequence[str]): Image paths (read with OpenCV), or empty for
            synthetic images.
        num_synthetic (int): Synthetic images when ``files`` is empty.
        img_size (int): PDN input side. Defaults to 256.
        extractor_size (int): Extractor input side. Defaults to 512.
        grayscale_prob (float): Defaults to 0.1.
    """

    def __init__(self, files: Sequence[str], num_synthetic: int = 0,
                 img_size: int = 256, extractor_size: int = 512,
                 grayscale_prob: float = 0.1) -> None:
        self.files = list(files)
        self.num_synthetic = 0 if self.files else int(num_synthetic)
        self.img_size = img_size
        self.extractor_size = extractor_size
        self.grayscale_prob = grayscale_prob

    def __len__(self) -> int:
        return len(self.files) or self.num_synthetic

    def load_rgb(self, index: int) -> np.ndarray:
        """(H, W, 3) RGB uint8 image ``index``."""
        if self.files:
            img = cv2.imread(self.files[index], cv2.IMREAD_COLOR)
            if img is None:
                raise OSError(f'distill_teacher: cannot read image '
                              f'{self.files[index]}')
        else:
            from densekit.datasets.transforms.penalty_image import \
                synthetic_penalty_image
            img = synthetic_penalty_image(
                np.random.default_rng(index),
                max(self.extractor_size, self.img_size))
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def __getitem__(self, item: Tuple[int, Sequence[int]]
                    ) -> Tuple[Tensor, Tensor]:
        index, sample_seed = item
        img = self.load_rgb(index)
        if np.random.default_rng(sample_seed).random() < self.grayscale_prob:
            gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
            img = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
        return (_to_tensor(_resize(img, self.extractor_size)),
                _to_tensor(_resize(img, self.img_size)))


class InfiniteBatchSampler(torch.utils.data.Sampler):
    """Endless shuffled batches of ``(index, sample_seed)``, as an
    ``InfiniteDataloader`` over ``DataLoader(shuffle=True,
    drop_last=False)``: epoch ``e`` is a permutation seeded by
    ``(seed, e)`` cut into ``ceil(n / batch_size)`` batches (the last
    smaller). Batch ``k`` of the stream is a function of ``k`` alone, so
    the stream can start at any batch (``start``) for a resume.
    """

    def __init__(self, num_images: int, batch_size: int, seed: int = 0,
                 start: int = 0) -> None:
        self.num_images = num_images
        self.batch_size = batch_size
        self.seed = seed
        self.start = start
        self.batches_per_epoch = -(-num_images // batch_size)

    def __iter__(self) -> Iterator[List[Tuple[int, Tuple[int, ...]]]]:
        position = self.start
        while True:
            epoch, batch = divmod(position, self.batches_per_epoch)
            order = np.random.default_rng((self.seed, epoch)).permutation(
                self.num_images)
            for b in range(batch, self.batches_per_epoch):
                idx = order[b * self.batch_size:(b + 1) * self.batch_size]
                yield [(int(i), (self.seed, position, slot))
                       for slot, i in enumerate(idx)]
                position += 1


def batch_stream(dataset: DistillImages, batch_size: int, seed: int,
                 start: int, workers: int, pin_memory: bool = False
                 ) -> Iterator[Tuple[Tensor, Tensor]]:
    """Endless ``(extractor_images, pdn_images)`` batches from batch
    ``start`` of the stream of :class:`InfiniteBatchSampler`."""
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=InfiniteBatchSampler(len(dataset), batch_size, seed,
                                           start),
        num_workers=workers, pin_memory=pin_memory,
        persistent_workers=workers > 0)
    return iter(loader)


# ----------------------------------------------------------------------
# extractor
# ----------------------------------------------------------------------
def _unwrap_checkpoint(checkpoint) -> Dict[str, Tensor]:
    from densekit.models.utils.checkpoint import unwrap_state_dict
    return unwrap_state_dict(checkpoint, 'distill_teacher')


def _group(keys: Iterable[str]) -> str:
    """``layer4 (N keys), fc (2 keys)``: keys grouped by first component."""
    counts: Dict[str, int] = OrderedDict()
    for key in keys:
        head = key.split('.')[0]
        counts[head] = counts.get(head, 0) + 1
    return ', '.join(f'{k} ({v} key{"s" * (v > 1)})'
                     for k, v in counts.items())


def load_extractor_weights(extractor: nn.Module, path: str,
                           max_missing_ratio: float = 0.5) -> dict:
    """Load a backbone checkpoint into ``extractor`` by name.

    Accepts a plain state dict (torchvision's ``wide_resnet101_2-32ee1156
    .pth``: ``conv1.weight``, ``bn1.*``, ``layer1.0.conv1.weight`` ...,
    the same names as mmdet's ResNet and :class:`densekit.WideResNet`), a
    ``{'state_dict' | 'model': ...}`` wrapper, a ``module.`` prefix, or a
    detector / classifier checkpoint whose backbone sits under a prefix
    (``backbone.`` ...; found automatically). Keys of the checkpoint the
    extractor does not build (``layer4``, ``fc``) are reported, BatchNorm
    ``num_batches_tracked`` counters may be absent.

    Returns:
        dict: ``prefix``, ``loaded``, ``missing``, ``unexpected`` lists.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable file, other shapes, or more than
            ``max_missing_ratio`` of the extractor's weights missing.
    """
    from densekit.models.utils.checkpoint import read_checkpoint_file
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'distill_teacher: --extractor-checkpoint {path} does not exist')
    try:
        state_dict = _unwrap_checkpoint(read_checkpoint_file(path))
    except (RuntimeError, TypeError) as err:
        raise DistillError(f'distill_teacher: --extractor-checkpoint {path} '
                           f'is not a readable state dict: {err}') from err
    own = extractor.state_dict()
    optional = [k for k in own if k.endswith('num_batches_tracked')]
    required = [k for k in own if k not in optional]
    # the prefix under which most extractor keys are found
    first = required[0]
    candidates = {''} | {k[:-len(first)] for k in state_dict
                         if k.endswith(first)}
    prefix = max(sorted(candidates),
                 key=lambda p: sum(p + k in state_dict for k in required))
    inner = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
                        if k.startswith(prefix))
    missing = [k for k in required if k not in inner]
    unexpected = [k for k in inner if k not in own]
    loaded = [k for k in inner if k in own]
    wrong = [f'{k}: checkpoint {tuple(inner[k].shape)} vs extractor '
             f'{tuple(own[k].shape)}' for k in loaded
             if tuple(inner[k].shape) != tuple(own[k].shape)]
    outside = len(state_dict) - len(inner)
    print_log(
        f'distill_teacher: extractor checkpoint {path}: '
        f'{len(required) - len(missing)}/{len(required)} weights found'
        + (f' from prefix {prefix!r} ({outside} keys outside it ignored)'
           if prefix else '') + f'; missing {len(missing)}'
        + (f' [{_group(missing)}]' if missing else '')
        + f'; unexpected (not in the extractor) {len(unexpected)}'
        + (f' [{_group(unexpected)}]' if unexpected else ''),
        logger='current')
    if len(missing) > max_missing_ratio * len(required):
        raise DistillError(
            f'distill_teacher: --extractor-checkpoint {path} lacks '
            f'{len(missing)} of the {len(required)} extractor weights '
            f'[{_group(missing)}] and has {len(unexpected)} unexpected keys'
            f'{f" [{_group(unexpected)}]" if unexpected else ""}: not a '
            'checkpoint of the --extractor-cfg backbone (for the default, '
            "torchvision's wide_resnet101_2-32ee1156.pth)")
    if wrong:
        raise DistillError(
            f'distill_teacher: --extractor-checkpoint {path} has weights of '
            f'other shapes than --extractor-cfg builds: {wrong[:5]}'
            f'{" ..." if len(wrong) > 5 else ""} (wrong depth or width?)')
    if missing:
        warnings.warn(f'distill_teacher: {len(missing)} extractor weights '
                      f'are not in {path} and stay random: '
                      f'{_group(missing)}')
    extractor.load_state_dict(
        OrderedDict((k, inner[k]) for k in loaded), strict=False)
    return dict(prefix=prefix, loaded=loaded, missing=missing,
                unexpected=unexpected)


def _literal(node: ast.AST):
    """``ast.literal_eval`` that also takes ``dict(key=literal, ...)``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == 'dict' and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v)
                for k, v in zip(node.keys, node.values)}
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_literal(e) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    return ast.literal_eval(node)


def parse_extractor_cfg(text: Optional[str]) -> dict:
    """``--extractor-cfg``: a Python dict literal (``{...}`` or
    ``dict(type=..., ...)``), or a config file whose
    ``extractor`` variable is the dict; None gives
    :data:`DEFAULT_EXTRACTOR`."""
    if text is None:
        return dict(DEFAULT_EXTRACTOR)
    if osp.isfile(text):
        from mmengine.config import Config
        cfg = Config.fromfile(text)
        if 'extractor' not in cfg:
            raise DistillError(f'distill_teacher: --extractor-cfg file {text} '
                               'defines no `extractor` dict')
        return cfg['extractor'].to_dict()
    try:
        cfg = _literal(ast.parse(text, mode='eval').body)
    except (ValueError, SyntaxError) as err:
        raise DistillError(
            f'distill_teacher: --extractor-cfg must be a dict literal such as '
            f'"{DEFAULT_EXTRACTOR}" or a config file, but got {text!r}'
        ) from err
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise DistillError(f'distill_teacher: --extractor-cfg must be a dict '
                           f'with a `type`, but got {text!r}')
    return cfg


def build_extractor(cfg: dict, checkpoint: Optional[str] = None,
                    random_weights: bool = False) -> nn.Module:
    """A frozen, eval-mode backbone from the densekit registry
    (``type='densekit.WideResNet'``, ``'mmdet.ResNet'`` ...) whose outputs
    are the maps :func:`aggregate_features` combines, first one at the
    target resolution.

    Raises:
        ValueError: neither ``checkpoint`` nor ``random_weights``.
    """
    if checkpoint is None and not random_weights:
        raise DistillError(
            'distill_teacher: give --extractor-checkpoint (for the default '
            "extractor torchvision's wide_resnet101_2-32ee1156.pth, "
            'loaded by name) or --random-extractor for a smoke test')
    import densekit.models.backbones.wide_resnet  # noqa: F401 (registers)
    from densekit.registry import MODELS
    extractor = MODELS.build(dict(cfg))
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # mmengine dumps every init otherwise
    try:
        extractor.init_weights()
    finally:
        logger.setLevel(level)
    num_params = sum(p.numel() for p in extractor.parameters())
    print_log(f'distill_teacher: extractor {cfg["type"]} '
              f'({num_params / 1e6:.2f}M parameters in the stages built; '
              f'torchvision wide_resnet101_2 without fc has '
              f'{WRN101_2_PARAMS / 1e6:.2f}M over four stages)',
              logger='current')
    if checkpoint is not None:
        load_extractor_weights(extractor, checkpoint)
    else:
        warnings.warn(
            'distill_teacher: --random-extractor: the extractor keeps its '
            'RANDOM initialisation, so the distilled teacher is USELESS for '
            'real anomaly detection (smoke tests only). Give '
            '--extractor-checkpoint to distil from pretrained weights.')
    extractor.eval()
    extractor.requires_grad_(False)
    return extractor


# ----------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------
def last_checkpoint_path(out: str) -> str:
    """``work_dirs/teacher_small.pth`` -> ``work_dirs/teacher_small_last
    .pth``."""
    root, ext = osp.splitext(out)
    return f'{root}_last{ext or ".pth"}'


def _atomic_save(obj, path: str) -> None:
    tmp = f'{path}.tmp'
    torch.save(obj, tmp)
    os.replace(tmp, path)


#: recipe entries a resumed run must share with the checkpoint
RESUME_KEYS = ('size', 'img_size', 'extractor_size', 'batch_size',
               'extractor_cfg', 'seed', 'num_images', 'norm_images')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Distil EfficientAD's PDN teacher (nelson1425 "
        'pretraining.py recipe)')
    parser.add_argument('--img-dir', help='ImageNet-style image folder '
                        '(searched recursively for jpg/jpeg/png)')
    parser.add_argument('--synthetic-images', type=int, default=0,
                        metavar='N', help='without --img-dir: distil on N '
                        'synthetic images (smoke tests only)')
    parser.add_argument('--out', default='work_dirs/teacher_small.pth',
                        help='output; <out>_last.pth holds the resume state')
    parser.add_argument('--size', choices=('S', 'M'), default='S',
                        help='PDN-S or PDN-M')
    parser.add_argument('--extractor-cfg', help='registry dict literal or '
                        f'config file (`extractor = dict(...)`); defaults to '
                        f'{DEFAULT_EXTRACTOR}')
    parser.add_argument('--extractor-checkpoint', help='backbone weights, '
                        "e.g. torchvision's wide_resnet101_2-32ee1156.pth")
    parser.add_argument('--random-extractor', action='store_true',
                        help='allow a randomly initialised extractor '
                        '(tests only)')
    parser.add_argument('--iters', type=int, default=60000)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--lr', type=float, default=1e-4)
    parser.add_argument('--weight-decay', type=float, default=1e-5)
    parser.add_argument('--img-size', type=int, default=256,
                        help='PDN input side')
    parser.add_argument('--extractor-size', type=int, default=512,
                        help='extractor input side')
    parser.add_argument('--grayscale-prob', type=float, default=0.1)
    parser.add_argument('--norm-images', type=int, default=10000,
                        help='images per pass of the feature mean / std')
    parser.add_argument('--device', default=None,
                        help='defaults to cuda when available, else cpu')
    parser.add_argument('--seed', type=int, default=42)
    parser.add_argument('--workers', type=int, default=4)
    parser.add_argument('--log-interval', type=int, default=100)
    parser.add_argument('--save-interval', type=int, default=10000)
    parser.add_argument('--resume', action='store_true',
                        help='continue from <out>_last.pth')
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error(f'--seed must be >= 0, but got {args.seed}')
    for name in ('iters', 'batch_size', 'img_size', 'extractor_size',
                 'norm_images', 'log_interval', 'save_interval'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be positive, but '
                         f'got {getattr(args, name)}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from densekit.models.layers.patch_description_network import \
        PatchDescriptionNetwork
    extractor_cfg = parse_extractor_cfg(args.extractor_cfg)
    if args.synthetic_images > 0 and not (args.img_dir
                                          and osp.isdir(args.img_dir)):
        files = []
        where = ('no --img-dir' if not args.img_dir else
                 f'--img-dir {args.img_dir} does not exist')
        warnings.warn(
            f'distill_teacher: {where}; distilling on '
            f'{args.synthetic_images} SYNTHETIC images (random colour noise '
            'and shapes), not ImageNet: smoke tests only. Give --img-dir to '
            'silence this.')
    else:
        files = list_images(args.img_dir)
    dataset = DistillImages(files, args.synthetic_images, args.img_size,
                            args.extractor_size, args.grayscale_prob)
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    last_path = last_checkpoint_path(args.out)
    recipe = dict(
        size=args.size, out_channels=OUT_CHANNELS, pdn_padding=True,
        img_size=args.img_size, extractor_size=args.extractor_size,
        batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, iters=args.iters,
        grayscale_prob=args.grayscale_prob, norm_images=args.norm_images,
        seed=args.seed, extractor_cfg=extractor_cfg,
        extractor_checkpoint=args.extractor_checkpoint,
        random_extractor=bool(args.random_extractor),
        img_dir=args.img_dir, num_images=len(dataset),
        synthetic=not files, loss='mean((target - pdn(x)) ** 2)',
        optimizer='Adam', reference='nelson1425/EfficientAD pretraining.py')

    state = None
    if args.resume:
        if not osp.isfile(last_path):
            raise FileNotFoundError(
                f'distill_teacher: --resume: {last_path} does not exist '
                '(start without --resume)')
        state = torch.load(last_path, map_location='cpu', weights_only=True)
        changed = {k: (state['meta'].get(k), recipe[k]) for k in RESUME_KEYS
                   if state['meta'].get(k) != recipe[k]}
        if changed:
            raise DistillError(
                f'distill_teacher: --resume: {last_path} was made with other '
                'settings (checkpoint, now): '
                + ', '.join(f'{k}={v[0]!r} vs {v[1]!r}'
                            for k, v in changed.items()))

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    extractor = build_extractor(extractor_cfg, args.extractor_checkpoint,
                                args.random_extractor).to(device)
    pdn = PatchDescriptionNetwork(args.size, OUT_CHANNELS,
                                  padding=True).to(device)
    optimizer = torch.optim.Adam(pdn.parameters(), lr=args.lr,
                                 weight_decay=args.weight_decay)

    def targets_of(images: Tensor) -> Tensor:
        return extract_targets(extractor, images.to(device))

    if state is None:
        start_iter = 0
        stream = batch_stream(dataset, args.batch_size, args.seed, 0,
                              args.workers, device.type == 'cuda')
        print_log(f'distill_teacher: feature mean / std over 2 x '
                  f'{args.norm_images} images', logger='current')
        mean, std, stats_batches = feature_normalization(
            targets_of, (fe for fe, _ in stream), args.norm_images)
        std = guard_std(std)
    else:
        pdn.load_state_dict(state['state_dict'])
        optimizer.load_state_dict(state['optimizer'])
        start_iter = int(state['iteration'])
        mean, std = state['feature_mean'], state['feature_std']
        stats_batches = int(state['stats_batches'])
        print_log(f'distill_teacher: resumed from {last_path} at iteration '
                  f'{start_iter}', logger='current')
        stream = batch_stream(dataset, args.batch_size, args.seed,
                              stats_batches + start_iter, args.workers,
                              device.type == 'cuda')
    mean, std = mean.to(device), std.to(device)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)

    def meta(iteration: int, loss: Optional[float]) -> dict:
        return dict(recipe, iteration=iteration, last_loss=loss,
                    feature_mean=mean.cpu(), feature_std=std.cpu())

    def save_last(iteration: int, loss: Optional[float]) -> None:
        _atomic_save(
            dict(state_dict=pdn.state_dict(),
                 optimizer=optimizer.state_dict(), iteration=iteration,
                 feature_mean=mean.cpu(), feature_std=std.cpu(),
                 stats_batches=stats_batches, meta=meta(iteration, loss)),
            last_path)

    pdn.train()
    iteration, loss, window = start_iter, None, []
    tic = time.time()
    try:
        while iteration < args.iters:
            image_fe, image_pdn = next(stream)
            targets = normalize_targets(targets_of(image_fe), mean, std)
            loss = train_step(pdn, optimizer, image_pdn.to(device), targets)
            iteration += 1
            window.append(loss)
            if iteration % args.log_interval == 0 or \
                    iteration == args.iters:
                speed = len(window) / max(time.time() - tic, 1e-9)
                print_log(
                    f'distill_teacher: iter {iteration}/{args.iters} loss '
                    f'{np.mean(window):.4f} ({speed:.2f} it/s, eta '
                    f'{(args.iters - iteration) / speed / 60:.1f} min)',
                    logger='current')
                window, tic = [], time.time()
            if iteration % args.save_interval == 0:
                save_last(iteration, loss)
    except KeyboardInterrupt:
        save_last(iteration, loss)
        print_log(f'distill_teacher: interrupted at iteration {iteration}; '
                  f'state saved to {last_path} (--resume continues)',
                  logger='current')
        raise
    save_last(iteration, loss)
    _atomic_save(dict(state_dict=pdn.state_dict(),
                      meta=meta(iteration, loss)), args.out)
    print_log(f'distill_teacher: teacher saved to {args.out} '
              f'(EfficientAD(teacher_checkpoint=...)); resume state '
              f'{last_path}', logger='current')
    return 0


if __name__ == '__main__':
    sys.exit(main())

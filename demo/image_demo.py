"""Detect objects in, segment or score images for anomalies; save annotated
copies and a JSON.

Examples:
    python demo/image_demo.py data/synthetic_shapes/val \
        --config configs/det/yolov8_n_shapes.py \
        --weights work_dirs/yolov8_n_shapes/epoch_12.pth --limit 8
    python demo/image_demo.py 'data/synthetic_shapes/val/*.jpg' --config ...

INPUTS are image files, folders (their images, not recursive) or glob
patterns (quote them; ``**`` recurses). Writes ``OUT/vis/<name>.jpg`` and
``OUT/predictions.json`` and logs one line per image, ultralytics style.
A segmentation config (``default_scope='mmseg'``) goes through the same
command: the visualisation is a coloured class overlay with a legend, the
label maps are written to ``OUT/masks/<name>.png`` (class index per pixel)
and the JSON lists each image's class areas::

    python demo/image_demo.py data/synthetic_shapes_seg/images/validation \
        --config configs/seg/upernet_yolov8-n_shapes.py \
        --weights work_dirs/upernet_yolov8-n_shapes/iter_1600.pth --limit 8

An anomaly-detection config (``model.type='densekit.EfficientAD'``) also
goes through it: the visualisation is a JET heat map of the anomaly map
(fixed colour range [0, 2 * threshold]) with the thresholded region outlined
and the image's score and decision (ANOMALOUS / normal) in the top-left
corner; ``--score-thr`` is the image-score threshold (default: the config's
``model.test_cfg.score_threshold``, else 0.3, see
``densekit.apis.anomaly_inferencer.DEFAULT_SCORE_THR``). The float32 maps
(original image size) are written to ``OUT/maps/<name>.npy``, the JSON
gives each image's ``score``, ``is_anomalous`` and ``threshold``, and a
final line counts the anomalous images::

    python demo/image_demo.py data/synthetic_anomaly/texture/test/scratch \
        --config configs/anomaly/efficientad_s_synthetic.py \
        --weights work_dirs/efficientad_s_synthetic/iter_600.pth

Exit status: 0 on success; 1 if the checkpoint does not fit the config's
model (strict loading; ``--no-strict`` loads what fits), is corrupt, or an
input file is missing or unreadable (the other images are still processed,
every bad file is named); 2 if an input pattern or folder matched no image.
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
from collections import Counter
from typing import List, Optional, Sequence, Tuple, Union

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import cv2
import numpy as np
from mmengine.config import Config, DictAction

from densekit.apis import (AnomalyInferencer, AnomalyResult, DetResult,
                           SegInferencer, SegResult, build_inferencer,
                           draw_anomaly, draw_detections, draw_segmentation,
                           read_image)
from densekit.apis.cli import add_label_args, add_runtime_args
from densekit.apis.image_io import TIMING_STAGES
from densekit.utils.config_check import check_cfg_options

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def collect_inputs(inputs: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Expand files, folders and glob patterns into image paths.

    Args:
        inputs (Sequence[str]): Files (kept even if missing, so they are
            reported), folders (images directly inside, sorted) or glob
            patterns (sorted files matched).

    Returns:
        tuple[list[str], list[str]]: Image paths in order without duplicates,
        and the folders/patterns that matched no image.
    """
    files, unmatched = [], []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(
                osp.join(item, name) for name in os.listdir(item)
                if name.lower().endswith(IMG_EXTENSIONS)
                and osp.isfile(osp.join(item, name)))
        elif glob.has_magic(item):
            found = sorted(
                path for path in glob.glob(item, recursive=True)
                if osp.isfile(path))
        else:
            found = [item]
        if not found:
            unmatched.append(item)
        files.extend(found)
    return list(dict.fromkeys(files)), unmatched


def describe(result: Union[DetResult, SegResult, AnomalyResult]) -> str:
    """'3 circles, 1 star' in class-index order, or '(no detections)';
    for segmentation 'background 91%, circle 6%', largest first; for
    anomaly detection 'score 0.812 ANOMALOUS (thr 0.3)'."""
    if isinstance(result, AnomalyResult):
        decision = 'ANOMALOUS' if result.is_anomalous else 'normal'
        return (f'score {result.score:.3f} {decision} '
                f'(thr {result.threshold:g})')
    if isinstance(result, SegResult):
        areas = sorted(result.class_fractions().items(), key=lambda kv: -kv[1])
        return ', '.join(f'{name} {frac:.0%}' for name, frac in areas)
    if len(result) == 0:
        return '(no detections)'
    counts = Counter(zip(result.labels.tolist(), result.class_names))
    return ', '.join(f'{n} {plural(name) if n > 1 else name}'
                     for (_, name), n in sorted(counts.items()))


# COCO names whose plural no suffix rule gives
_IRREGULAR_PLURALS = {'person': 'people', 'mouse': 'mice', 'knife': 'knives',
                      'sheep': 'sheep', 'skis': 'skis',
                      'scissors': 'scissors', 'broccoli': 'broccoli'}


def plural(name: str) -> str:
    """English plural of a class name: 'bus' -> 'buses', 'sandwich' ->
    'sandwiches', 'hot dog' -> 'hot dogs', 'person' -> 'people'."""
    head, _, last = name.rpartition(' ')
    lower = last.lower()
    if lower in _IRREGULAR_PLURALS:
        last = _IRREGULAR_PLURALS[lower]
    elif lower.endswith(('s', 'x', 'z', 'ch', 'sh')):
        last += 'es'
    elif lower.endswith('y') and lower[-2:-1] not in ('a', 'e', 'i', 'o',
                                                      'u', ''):
        last = last[:-1] + 'ies'
    else:
        last += 's'
    return f'{head} {last}' if head else last


def _vis_name(path: str, used: set) -> str:
    """<stem>.jpg, suffixed with _1, _2, ... when a stem repeats."""
    stem = osp.splitext(osp.basename(path))[0]
    name, k = f'{stem}.jpg', 0
    while name in used:
        k += 1
        name = f'{stem}_{k}.jpg'
    used.add(name)
    return name


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Detect objects in, segment or score (anomaly detection) '
        'images with a densekit model')
    parser.add_argument(
        'inputs', nargs='+', help='image files, folders or glob patterns')
    parser.add_argument('--config', required=True, help='model config file')
    parser.add_argument('--weights', required=True, help='checkpoint file')
    parser.add_argument(
        '--device',
        default=None,
        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=None,
        help='detection: box score threshold (default 0.3); anomaly '
        'detection: image-score threshold (default the config\'s '
        'model.test_cfg.score_threshold, else 0.3); unused for segmentation')
    parser.add_argument(
        '--out-dir', default='outputs/demo', help='output folder')
    parser.add_argument(
        '--limit', type=int, default=None, help='process at most N images')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, xxx=yyy format (as for '
        'tools/train.py, e.g. model.bbox_head.num_classes=3 for a custom '
        'set)')
    parser.add_argument(
        '--no-strict', action='store_true',
        help='load a checkpoint that does not fit the config\'s model (the '
        'weights that fit; the rest stay random); by default a mismatch '
        'stops with the first mismatching keys')
    add_runtime_args(parser)
    add_label_args(parser)
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f'--limit must be at least 1, got {args.limit}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    files, unmatched = collect_inputs(args.inputs)
    for pattern in unmatched:
        print(f'error: no image matched {pattern!r}', file=sys.stderr)
    if not files:
        return 2
    if args.limit is not None:
        files = files[:args.limit]

    try:
        config = args.config
        if args.cfg_options:
            config = Config.fromfile(args.config)
            check_cfg_options(config, args.cfg_options)
            config.merge_from_dict(args.cfg_options)
        inferencer = build_inferencer(
            config,
            args.weights,
            device=args.device,
            score_thr=args.score_thr,
            strict=not args.no_strict,
            backend=args.backend,
            backend_model=args.backend_model,
            fuse_conv_bn=args.fuse_conv_bn,
            multi_label=args.multi_label)
    except (FileNotFoundError, KeyError, ValueError, TypeError,
            ImportError) as e:
        print(f'error: {e.args[0] if isinstance(e, KeyError) else e}',
              file=sys.stderr)
        return 1
    vis_dir = osp.join(args.out_dir, 'vis')
    os.makedirs(vis_dir, exist_ok=True)

    predictions, bad_files, used_names = [], [], set()
    totals = dict.fromkeys(TIMING_STAGES, 0.0)
    for i, path in enumerate(files, 1):
        prefix = f'image {i}/{len(files)} {path}:'
        try:
            img = read_image(path)
        except (FileNotFoundError, ValueError) as e:
            print(f'{prefix} error: {e}', file=sys.stderr)
            bad_files.append(path)
            continue
        result = inferencer(img)
        result.img_path = path
        height, width = result.img_shape
        print(f'{prefix} {height}x{width} {describe(result)}, '
              f'{result.timings_ms["inference"]:.1f}ms')
        is_seg = isinstance(result, SegResult)
        is_anomaly = isinstance(result, AnomalyResult)
        if is_anomaly:
            vis = draw_anomaly(img, result.anomaly_map, result.score,
                               result.threshold)
        else:
            draw = draw_segmentation if is_seg else draw_detections
            vis = draw(img, result, inferencer.palette)
        vis_name = _vis_name(path, used_names)
        out_file = osp.join(vis_dir, vis_name)
        if not cv2.imwrite(out_file, vis):
            print(f'error: could not write {out_file}', file=sys.stderr)
            return 1
        if is_seg:
            mask_dir = osp.join(args.out_dir, 'masks')
            os.makedirs(mask_dir, exist_ok=True)
            mask_file = osp.join(mask_dir,
                                 osp.splitext(vis_name)[0] + '.png')
            label_map = result.label_map.astype(
                np.uint8 if len(result.classes) <= 256 else np.uint16)
            if not cv2.imwrite(mask_file, label_map):
                print(f'error: could not write {mask_file}', file=sys.stderr)
                return 1
        if is_anomaly:
            map_dir = osp.join(args.out_dir, 'maps')
            os.makedirs(map_dir, exist_ok=True)
            map_name = osp.splitext(vis_name)[0] + '.npy'
            np.save(osp.join(map_dir, map_name), result.anomaly_map)
        for stage in TIMING_STAGES:
            totals[stage] += result.timings_ms[stage]
        record = result.to_dict()
        entry = dict(file=path, width=width, height=height)
        if is_seg:
            entry.update(class_fractions=record['class_fractions'],
                         mask=osp.join('masks', osp.splitext(vis_name)[0] +
                                       '.png'))
        elif is_anomaly:
            entry.update(score=record['score'],
                         is_anomalous=record['is_anomalous'],
                         threshold=record['threshold'],
                         calibrated=record['calibrated'],
                         map=osp.join('maps', map_name))
        else:
            entry.update(instances=record['instances'])
        entry['timings'] = record['timings_ms']
        predictions.append(entry)

    with open(osp.join(args.out_dir, 'predictions.json'), 'w') as f:
        json.dump(predictions, f)
    if predictions:
        mean = {k: v / len(predictions) for k, v in totals.items()}
        print(f'Speed: {mean["preprocess"]:.1f}ms preprocess, '
              f'{mean["inference"]:.1f}ms inference, '
              f'{mean["postprocess"]:.1f}ms postprocess per image '
              f'(mean of {len(predictions)}, device '
              f'{inferencer.device.type})')
    if isinstance(inferencer, AnomalyInferencer):
        outputs = 'vis/, maps/, predictions.json'
        anomalous = sum(p['is_anomalous'] for p in predictions)
        print(f'{anomalous}/{len(predictions)} image(s) anomalous (score >= '
              f'{inferencer.score_thr:g})')
    elif isinstance(inferencer, SegInferencer):
        outputs = 'vis/, masks/, predictions.json'
    else:
        outputs = 'vis/, predictions.json'
    print(f'Results saved to {args.out_dir} ({len(predictions)} image(s): '
          f'{outputs})')
    if bad_files:
        print(
            f'error: {len(bad_files)} input file(s) could not be read: '
            + ', '.join(bad_files),
            file=sys.stderr)
    if unmatched:
        return 2
    return 1 if bad_files else 0


if __name__ == '__main__':
    sys.exit(main())

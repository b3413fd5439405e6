"""One-line verdict on the image demo's pictures: how many of the ground-truth
objects in the shown images the detector found at the demo threshold.

Reads the demo's ``predictions.json`` and the COCO annotation file of the
images; an object is found when a prediction of the same class overlaps it
with IoU >= 0.5 (each prediction matches one object, best score first);
other predictions are wrong labels (they overlap an object of another class)
or false positives (including duplicates of a found object).

Examples:
    python tools/analysis/demo_verdict.py outputs/demo/yolov8_n_shapes \
        data/synthetic_shapes/annotations/instances_val.json --map50 0.97

    yolov8_n_shapes: found 31/31 val objects in the 8 pictures at score >=
    0.3 (0 wrong labels, 0 false positives); val mAP@0.5 0.970
"""
import argparse
import json
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

IOU_THR = 0.5


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x1, y1, x2, y2) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (union - inter)


def match_image(preds: List[dict],
                gts: List[Tuple[str, List[float]]]) -> Tuple[int, int, int]:
    """(found, wrong labels, false positives) of one image.

    Args:
        preds (list[dict]): ``instances`` of ``predictions.json`` (``bbox``
            x1, y1, x2, y2, ``score``, ``class_name``).
        gts (list[tuple]): (class name, [x1, y1, x2, y2]) per object.
    """
    taken = [False] * len(gts)
    found = wrong = false_pos = 0
    for pred in sorted(preds, key=lambda p: -p['score']):
        best, best_iou = None, IOU_THR
        for i, (name, box) in enumerate(gts):
            overlap = iou(pred['bbox'], box)
            if not taken[i] and name == pred['class_name'] and \
                    overlap >= best_iou:
                best, best_iou = i, overlap
        if best is not None:
            taken[best] = True
            found += 1
        elif any(iou(pred['bbox'], box) >= IOU_THR and
                 name != pred['class_name'] for name, box in gts):
            wrong += 1  # on an object of another class
        else:
            false_pos += 1
    return found, wrong, false_pos


def verdict(predictions: List[dict], coco: dict, name: str,
            score_thr: float, map50: Optional[float] = None) -> str:
    """The verdict line (see the module docstring)."""
    cats = {c['id']: c['name'] for c in coco['categories']}
    by_file: Dict[str, List[Tuple[str, List[float]]]] = {}
    ids = {img['id']: img['file_name'] for img in coco['images']}
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        by_file.setdefault(ids[ann['image_id']], []).append(
            (cats[ann['category_id']], [x, y, x + w, y + h]))
    total = found = wrong = false_pos = 0
    for entry in predictions:
        gts = by_file.get(osp.basename(entry['file']), [])
        preds = [p for p in entry['instances'] if p['score'] >= score_thr]
        f, w, fp = match_image(preds, gts)
        total += len(gts)
        found, wrong, false_pos = found + f, wrong + w, false_pos + fp
    line = (f'{name}: found {found}/{total} val objects in the '
            f'{len(predictions)} pictures at score >= {score_thr:g} '
            f'({wrong} wrong labels, {false_pos} false positives)')
    if map50 is not None:
        line += f'; val mAP@0.5 {map50:.3f}'
    return line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('demo_dir', help='the demo --out-dir')
    parser.add_argument('ann_file', help='COCO annotations of the images')
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--map50', type=float, default=None,
                        help='val mAP@0.5 to print with the verdict')
    parser.add_argument('--name', default=None)
    args = parser.parse_args(argv)
    with open(osp.join(args.demo_dir, 'predictions.json')) as f:
        predictions = json.load(f)
    with open(args.ann_file) as f:
        coco = json.load(f)
    print(verdict(predictions, coco,
                  args.name or osp.basename(osp.normpath(args.demo_dir)),
                  args.score_thr, args.map50))
    return 0


if __name__ == '__main__':
    sys.exit(main())

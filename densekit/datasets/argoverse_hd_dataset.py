"""Argoverse-HD as a streaming (video) detection dataset.

Argoverse-HD (Li, Wang and Ramanan, "Towards Streaming Perception", ECCV
2020; annotations from ``mtli/sAP``) labels the ``ring_front_center`` camera
of the Argoverse 1.1 tracking sequences (30 FPS, 1200 x 1920) in COCO style,
with extra keys marking which image belongs to which sequence::

    {"images": [{"id": 0, "sid": 0, "fid": 0, "width": 1920, "height": 1200,
                 "name": "ring_front_center_315984808200927224.jpg"}, ...],
     "annotations": [{"id": 1, "image_id": 0, "bbox": [x, y, w, h],
                      "category_id": 2, "area": ..., "iscrowd": 0,
                      "track": 17}, ...],
     "categories": [{"id": 0, "name": "person"}, ...],
     "sequences": ["<log hash>", ...],
     "seq_dirs": ["train/<log hash>/ring_front_center", ...]}

``sid`` indexes ``sequences``/``seq_dirs``, ``fid`` is the frame index in
the sequence. The frame file is ``data_root / data_prefix['img'] /
seq_dirs[sid] / file_name`` (the official files call the file name
``name``; either key is read, ``file_name`` first). Category ids are 0..7 in
the order of :data:`ARGOVERSE_HD_CLASSES` (``mtli/sAP:det/offline_det.py``
and ``yancie-yjr/StreamYOLO:exps/dataset/
tal_flip_one_future_argoversedataset.py``).

StreamYOLO (Yang et al., CVPR 2022, sec. 3.2-3.3) trains on a frame pair
(t-1, t) to predict the boxes of frame t+1; DAMO-StreamNet (He et al., IJCAI
2023) adds a longer past. :class:`ArgoverseHDDataset` makes one sample per
current frame ``t`` whose target frame ``t + forecast_offset`` exists; see
the class docstring for the keys.
"""
import os.path as osp
import warnings
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmdet.datasets import BaseDetDataset
from mmengine.fileio import load

from densekit.registry import DATASETS

ARGOVERSE_HD_CLASSES = ('person', 'bicycle', 'car', 'motorcycle', 'bus',
                        'truck', 'traffic_light', 'stop_sign')
# RGB colours for visualisation only.
ARGOVERSE_HD_PALETTE = [(220, 20, 60), (119, 11, 32), (0, 0, 142),
                        (0, 0, 230), (0, 60, 100), (0, 0, 70),
                        (250, 170, 30), (220, 220, 0)]
ARGOVERSE_HD_METAINFO = dict(
    classes=ARGOVERSE_HD_CLASSES, palette=ARGOVERSE_HD_PALETTE)

_IMAGE_KEYS = ('id', 'sid', 'fid', 'width', 'height')
_ANN_KEYS = ('id', 'image_id', 'bbox', 'category_id')


def pairwise_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU of every box in ``boxes1`` with every box in ``boxes2``.

    Args:
        boxes1 (np.ndarray): (N, 4) boxes in (x1, y1, x2, y2).
        boxes2 (np.ndarray): (M, 4) boxes in (x1, y1, x2, y2).

    Returns:
        np.ndarray: float64 IoU matrix of shape (N, M); 0 where a union is
        empty.
    """
    boxes1 = np.asarray(boxes1, np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, np.float64).reshape(-1, 4)
    lt = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=-1)
    area1 = np.clip(boxes1[:, 2:] - boxes1[:, :2], 0, None).prod(axis=-1)
    area2 = np.clip(boxes2[:, 2:] - boxes2[:, :2], 0, None).prod(axis=-1)
    union = area1[:, None] + area2[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def trend_ious(target_boxes: np.ndarray, target_labels: np.ndarray,
               target_tracks: np.ndarray, cur_boxes: np.ndarray,
               cur_labels: np.ndarray, cur_tracks: np.ndarray) -> np.ndarray:
    """Per target object, the IoU with its own box in the current frame.

    This is the "trend factor" of StreamYOLO's trend-aware loss (Yang et al.,
    CVPR 2022, sec. 3.3, eq. 3): a low IoU between an object's box at t+k and
    at t marks a fast-moving object. StreamYOLO takes the max IoU over all
    current boxes; where track ids exist we use the same track instead, and
    fall back to the max IoU over current boxes of the same class when the
    track is absent at t (or has no id, -1).

    Args:
        target_boxes (np.ndarray): (N, 4) xyxy boxes of frame t+k.
        target_labels (np.ndarray): (N, ) class indices.
        target_tracks (np.ndarray): (N, ) track ids, -1 for none.
        cur_boxes (np.ndarray): (M, 4) xyxy boxes of frame t.
        cur_labels (np.ndarray): (M, ) class indices.
        cur_tracks (np.ndarray): (M, ) track ids, -1 for none.

    Returns:
        np.ndarray: float32 array of shape (N, ) in [0, 1].
    """
    iou = pairwise_iou(target_boxes, cur_boxes)
    target_tracks = np.asarray(target_tracks).reshape(-1, 1)
    cur_tracks = np.asarray(cur_tracks).reshape(1, -1)
    same_track = (target_tracks == cur_tracks) & (target_tracks >= 0)
    same_class = (np.asarray(target_labels).reshape(-1, 1) ==
                  np.asarray(cur_labels).reshape(1, -1))
    by_track = np.where(same_track, iou, -1.0).max(axis=1, initial=-1.0)
    by_class = np.where(same_class, iou, 0.0).max(axis=1, initial=0.0)
    return np.where(same_track.any(axis=1), by_track,
                    by_class).astype(np.float32)


def _fid_ranges(missing: np.ndarray) -> List[Tuple[int, int]]:
    """Sorted missing fids -> list of inclusive (first, last) runs."""
    if missing.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(missing) > 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [missing.size - 1]])
    return [(int(missing[s]), int(missing[e])) for s, e in zip(starts, ends)]


def _check_int(cls_name: str, name: str, value, minimum: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f'{cls_name}: {name} must be an int, but got '
                        f'{value!r} ({type(value).__name__})')
    if value < minimum:
        raise ValueError(
            f'{cls_name}: {name} must be >= {minimum}, but got {value}')


@DATASETS.register_module()
class ArgoverseHDDataset(BaseDetDataset):
    """Argoverse-HD (or any set in its layout) for streaming detection.

    One sample per current frame ``t`` (fid) of each sequence whose target
    frame ``t + forecast_offset`` exists. Each ``data_info`` holds:

    - ``img_path`` (str): frame t.
    - ``past_img_paths`` (list[str]): frames ``t - N*s, ..., t - s`` (oldest
      first; N = ``num_past_frames``, s = ``frame_stride``). Before the first
      frame of a sequence the first frame is repeated.
    - ``past_fids`` (list[int]): their fids (repeats included).
    - ``future_img_path`` (str) / ``future_fid`` (int): frame t+k
      (k = ``forecast_offset``).
    - ``img_id`` (int): image id of the TARGET frame t+k, so a COCO metric
      with ``ann_file`` scores each forecast against the frame it forecasts.
    - ``cur_img_id`` (int): image id of frame t.
    - ``sid``, ``fid`` (int): sequence index and the fid of frame t.
    - ``seq_name`` (str): ``sequences[sid]``.
    - ``width``, ``height`` (int): of the target frame.
    - ``instances`` (list[dict]): the annotations of frame t+k, each with
      ``bbox`` (x1, y1, x2, y2), ``bbox_label``, ``ignore_flag`` (1 for
      ``iscrowd`` or ``ignore`` annotations), ``track_id`` (-1 if none) and
      ``trend_iou`` (see :func:`trend_ious`).

    Sequence integrity (never silently misaligned):

    - frames of a sequence are sorted by fid; frames that are not in fid
      order in the file are reordered with a ``UserWarning`` naming the
      sequence;
    - missing fids (gaps) give one ``UserWarning`` per sequence naming the
      sequence and the missing fid ranges; a sample is skipped when any fid
      in ``[max(first fid, t - N*s), t + k]`` is missing;
    - a fid that appears twice in a sequence, a ``sid`` outside
      ``seq_dirs``, or a missing key raise ``ValueError`` naming the image
      (or annotation) and the annotation file.

    Annotations are parsed as ``mmdet.CocoDataset`` does: boxes with
    ``w < 1``, ``h < 1``, ``area <= 0`` or outside the image are dropped, as
    are categories not in ``metainfo['classes']``. Class names are matched
    with ``' '`` and ``'_'`` treated alike (``traffic light`` ==
    ``traffic_light``); a class of ``metainfo`` missing from the file's
    categories is an error.

    ``filter_cfg`` accepts ``filter_empty_gt`` (drop samples whose target has
    no non-ignored instance) and ``min_size``, as in ``mmdet.CocoDataset``;
    nothing is filtered in ``test_mode``.

    Args:
        num_past_frames (int): N, past frames per sample (0: only frame t).
            Defaults to 1 (StreamYOLO's pair).
        frame_stride (int): s, fid step between the past frames. Defaults
            to 1.
        forecast_offset (int): k, the target frame is t + k (0: plain
            detection of frame t). Defaults to 1.
        data_prefix (dict): ``img`` is the folder that ``seq_dirs`` are
            relative to, itself relative to ``data_root``. Defaults to
            ``dict(img='')``.
        **kwargs: ``ann_file``, ``metainfo``, ``data_root``, ``filter_cfg``,
            ``pipeline``, ``test_mode``, ``backend_args``, ... of
            :class:`mmdet.datasets.BaseDetDataset`.

    Examples:
        >>> ds = ArgoverseHDDataset(
        ...     data_root='data/synthetic_moving_shapes',
        ...     ann_file='annotations/val.json',
        ...     data_prefix=dict(img='frames/'),
        ...     metainfo=dict(classes=('circle', 'square', 'triangle',
        ...                            'star')))
        >>> info = ds.get_data_info(0)
        >>> info['past_img_paths'], info['img_path'], info['future_img_path']
    """
    METAINFO = ARGOVERSE_HD_METAINFO

    def __init__(self,
                 *args,
                 num_past_frames: int = 1,
                 frame_stride: int = 1,
                 forecast_offset: int = 1,
                 data_prefix: Optional[dict] = None,
                 **kwargs) -> None:
        name = type(self).__name__
        _check_int(name, 'num_past_frames', num_past_frames, 0)
        _check_int(name, 'frame_stride', frame_stride, 1)
        _check_int(name, 'forecast_offset', forecast_offset, 0)
        if data_prefix is None:
            data_prefix = dict(img='')
        if not isinstance(data_prefix, dict) or 'img' not in data_prefix:
            raise ValueError(
                f"{name}: data_prefix must be a dict with key 'img' (the "
                'folder seq_dirs are relative to), but got '
                f'{data_prefix!r}')
        # Set before super().__init__: mmengine's BaseDataset.__init__ calls
        # full_init() -> load_data_list(), which reads them.
        self.num_past_frames = int(num_past_frames)
        self.frame_stride = int(frame_stride)
        self.forecast_offset = int(forecast_offset)
        super().__init__(*args, data_prefix=data_prefix, **kwargs)

    # ----------------------------------------------------------- loading
    def load_data_list(self) -> List[dict]:
        """Read the annotation file and build one data_info per sample.

        Returns:
            list[dict]: data_infos in sequence order, then fid order.
        """
        where = self.ann_file
        raw = load(self.ann_file, backend_args=self.backend_args)
        if not isinstance(raw, dict):
            raise ValueError(f'{type(self).__name__}: {where} must hold a '
                             f'JSON object, but got {type(raw).__name__}')
        for key in ('images', 'annotations', 'categories', 'sequences',
                    'seq_dirs'):
            if key not in raw:
                raise ValueError(
                    f'{type(self).__name__}: {where} has no top-level key '
                    f'"{key}" (keys: {sorted(raw)}); an Argoverse-HD file '
                    'has images, annotations, categories, sequences and '
                    'seq_dirs')
        seq_dirs, sequences = raw['seq_dirs'], raw['sequences']
        if len(sequences) != len(seq_dirs):
            raise ValueError(
                f'{type(self).__name__}: {where} has {len(sequences)} '
                f'"sequences" but {len(seq_dirs)} "seq_dirs"; both are '
                'indexed by sid and must have the same length')
        self._map_categories(raw['categories'])
        frames_by_sid = self._group_images(raw['images'], len(seq_dirs))
        anns_by_img = self._group_annotations(raw['annotations'],
                                              raw['images'])

        data_list = []
        self.cat_img_map: Dict[int, List[int]] = defaultdict(list)
        self.skipped_by_gap: Dict[str, int] = {}
        for sid in sorted(frames_by_sid):
            frames = self._ordered_frames(frames_by_sid[sid], sequences[sid],
                                          sid)
            data_list.extend(
                self._sequence_samples(frames, anns_by_img, sid,
                                       sequences[sid], seq_dirs[sid]))
        return data_list

    def _map_categories(self, categories: Sequence[dict]) -> None:
        """Set ``cat_ids`` / ``cat2label`` from metainfo class names."""

        def norm(n):
            return str(n).replace(' ', '_')

        by_name = {}
        for cat in categories:
            if 'id' not in cat or 'name' not in cat:
                raise ValueError(
                    f'{type(self).__name__}: a category in {self.ann_file} '
                    f'lacks "id" or "name": {cat!r}')
            by_name[norm(cat['name'])] = cat['id']
        classes = self.metainfo['classes']
        missing = [c for c in classes if norm(c) not in by_name]
        if missing:
            raise ValueError(
                f'{type(self).__name__}: classes {missing} of metainfo are '
                f'not among the categories of {self.ann_file} '
                f'({[c["name"] for c in categories]}); pass '
                'metainfo=dict(classes=...) matching the file')
        self.cat_ids = [by_name[norm(c)] for c in classes]
        self.cat2label = {cat_id: i for i, cat_id in enumerate(self.cat_ids)}

    def _group_images(self, images: Sequence[dict],
                      num_seqs: int) -> Dict[int, List[dict]]:
        """Check every image's keys and sid; group them by sid (file order)."""
        by_sid: Dict[int, List[dict]] = defaultdict(list)
        for index, img in enumerate(images):
            missing = [k for k in _IMAGE_KEYS if k not in img]
            if 'file_name' not in img and 'name' not in img:
                missing.append('file_name (or name)')
            if missing:
                raise ValueError(
                    f'{type(self).__name__}: image #{index} (id '
                    f'{img.get("id")}) in {self.ann_file} lacks {missing}')
            sid = img['sid']
            if not isinstance(sid, int) or not 0 <= sid < num_seqs:
                raise ValueError(
                    f'{type(self).__name__}: image id {img["id"]} '
                    f'({img.get("file_name", img.get("name"))}) in '
                    f'{self.ann_file} has sid {sid!r}, but seq_dirs has '
                    f'{num_seqs} entries (valid sids 0..{num_seqs - 1})')
            by_sid[sid].append(img)
        return by_sid

    def _group_annotations(self, annotations: Sequence[dict],
                           images: Sequence[dict]) -> Dict[int, List[dict]]:
        img_ids = {img['id'] for img in images}
        by_img: Dict[int, List[dict]] = defaultdict(list)
        for ann in annotations:
            missing = [k for k in _ANN_KEYS if k not in ann]
            if missing:
                raise ValueError(
                    f'{type(self).__name__}: annotation id {ann.get("id")} '
                    f'in {self.ann_file} lacks {missing}')
            if ann['image_id'] not in img_ids:
                raise ValueError(
                    f'{type(self).__name__}: annotation id {ann["id"]} in '
                    f'{self.ann_file} refers to image_id {ann["image_id"]}, '
                    'which is not in "images"')
            by_img[ann['image_id']].append(ann)
        return by_img

    def _ordered_frames(self, frames: List[dict], seq_name: str,
                        sid: int) -> List[dict]:
        """Sort a sequence's frames by fid; warn if reordered, raise on
        duplicates."""
        fids = np.array([f['fid'] for f in frames], np.int64)
        order = np.argsort(fids, kind='stable')
        sorted_fids = fids[order]
        dup = np.flatnonzero(np.diff(sorted_fids) == 0)
        if dup.size:
            fid = int(sorted_fids[dup[0]])
            ids = [f['id'] for f in frames if f['fid'] == fid]
            raise ValueError(
                f'{type(self).__name__}: sequence {seq_name!r} (sid {sid}) '
                f'in {self.ann_file} has fid {fid} more than once (image ids '
                f'{ids}); every frame of a sequence needs its own fid')
        if (np.diff(fids) < 0).any():
            first = int(np.flatnonzero(np.diff(fids) < 0)[0]) + 1
            warnings.warn(
                f'{type(self).__name__}: frames of sequence {seq_name!r} '
                f'(sid {sid}) are not in fid order in {self.ann_file} (fid '
                f'{int(fids[first])} follows fid {int(fids[first - 1])}); '
                'reordered by fid. Sort "images" by (sid, fid) to silence '
                'this.', UserWarning)
        return [frames[i] for i in order]

    def _parse_instances(self, img: dict,
                         anns: List[dict]) -> Tuple[List[dict], np.ndarray]:
        """mmdet CocoDataset-style parsing of one frame's annotations.

        Returns:
            tuple: instance dicts (without ``trend_iou``) and their
            (N, 6) float64 array ``[x1, y1, x2, y2, label, track]``.
        """
        instances, rows = [], []
        width, height = img['width'], img['height']
        for ann in anns:
            x1, y1, w, h = ann['bbox']
            inter_w = max(0, min(x1 + w, width) - max(x1, 0))
            inter_h = max(0, min(y1 + h, height) - max(y1, 0))
            if inter_w * inter_h == 0 or w < 1 or h < 1:
                continue
            if ann.get('area', w * h) <= 0:
                continue
            if ann['category_id'] not in self.cat2label:
                continue
            label = self.cat2label[ann['category_id']]
            track = ann.get('track')
            track = -1 if track is None else int(track)
            ignore = bool(ann.get('iscrowd', False)) or bool(
                ann.get('ignore', False))
            bbox = [float(x1), float(y1), float(x1 + w), float(y1 + h)]
            instances.append(
                dict(bbox=bbox, bbox_label=label, ignore_flag=int(ignore),
                     track_id=track))
            rows.append([*bbox, label, track])
        return instances, np.array(rows, np.float64).reshape(-1, 6)

    def _sequence_samples(self, frames: List[dict],
                          anns_by_img: Dict[int, List[dict]], sid: int,
                          seq_name: str, seq_dir: str) -> List[dict]:
        """Samples of one fid-sorted sequence (see the class docstring)."""
        n, s, k = self.num_past_frames, self.frame_stride, self.forecast_offset
        fids = np.array([f['fid'] for f in frames], np.int64)
        pos_of = {int(f): i for i, f in enumerate(fids)}
        img_dir = osp.join(self.data_prefix['img'], seq_dir)
        paths = [
            osp.join(img_dir, f.get('file_name', f.get('name')))
            for f in frames
        ]

        # Window [max(first, t - n*s), t + k] must hold every fid in it.
        lo = np.maximum(fids - n * s, fids[0])
        hi = fids + k
        count = (np.searchsorted(fids, hi, side='right') -
                 np.searchsorted(fids, lo, side='left'))
        in_range = hi <= fids[-1]
        complete = count == hi - lo + 1
        missing = np.setdiff1d(
            np.arange(fids[0], fids[-1] + 1), fids, assume_unique=True)
        num_skipped = int((in_range & ~complete).sum())
        if missing.size:
            ranges = ', '.join(f'{a}' if a == b else f'{a}-{b}'
                               for a, b in _fid_ranges(missing))
            self.skipped_by_gap[seq_name] = num_skipped
            warnings.warn(
                f'{type(self).__name__}: sequence {seq_name!r} (sid {sid}) '
                f'in {self.ann_file} is missing fids {ranges} (of '
                f'{int(fids[0])}-{int(fids[-1])}); skipped the '
                f'{num_skipped} samples whose window (fid t - '
                f'{n}*{s} .. t + {k}) spans a gap. Add the missing frames '
                'or split the sequence at the gap to silence this.',
                UserWarning)

        parsed = [
            self._parse_instances(f, anns_by_img.get(f['id'], []))
            for f in frames
        ]
        samples = []
        for i in np.flatnonzero(in_range & complete):
            t = int(fids[i])
            target = pos_of[t + k]
            past_fids = [max(t - j * s, int(fids[0])) for j in range(n, 0, -1)]
            instances, rows = parsed[target]
            cur_rows = parsed[i][1]
            trends = trend_ious(rows[:, :4], rows[:, 4], rows[:, 5],
                                cur_rows[:, :4], cur_rows[:, 4],
                                cur_rows[:, 5])
            instances = [
                dict(inst, trend_iou=float(trend))
                for inst, trend in zip(instances, trends)
            ]
            target_img = frames[target]
            for inst in instances:
                self.cat_img_map[self.cat_ids[inst['bbox_label']]].append(
                    target_img['id'])
            samples.append(
                dict(
                    img_path=paths[i],
                    past_img_paths=[paths[pos_of[f]] for f in past_fids],
                    past_fids=past_fids,
                    future_img_path=paths[target],
                    future_fid=t + k,
                    img_id=target_img['id'],
                    cur_img_id=frames[i]['id'],
                    sid=sid,
                    fid=t,
                    seq_name=seq_name,
                    width=target_img['width'],
                    height=target_img['height'],
                    instances=instances))
        return samples

    # --------------------------------------------------------- filtering
    def filter_data(self) -> List[dict]:
        """Apply ``filter_cfg`` (``filter_empty_gt``, ``min_size``).

        Returns:
            list[dict]: The kept data_infos.
        """
        if self.test_mode or self.filter_cfg is None:
            return self.data_list
        filter_empty_gt = self.filter_cfg.get('filter_empty_gt', False)
        min_size = self.filter_cfg.get('min_size', 0)
        kept = []
        for info in self.data_list:
            if filter_empty_gt and not any(
                    inst['ignore_flag'] == 0 for inst in info['instances']):
                continue
            if min(info['width'], info['height']) >= min_size:
                kept.append(info)
        return kept


__all__ = [
    'ARGOVERSE_HD_CLASSES', 'ARGOVERSE_HD_PALETTE', 'ARGOVERSE_HD_METAINFO',
    'ArgoverseHDDataset', 'pairwise_iou', 'trend_ious'
]

import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from densekit.apis import DetInferencer, DetResult, draw_detections
from tests.conftest import ROOT, captured_warnings

CONFIG = osp.join(ROOT, 'configs', 'det', 'yolov8_n_shapes.py')
CLASSES = ('circle', 'square', 'triangle', 'star')
PALETTE = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
STAGES = {'preprocess', 'inference', 'postprocess'}


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    # OpenMP with 2 threads slows ~50x when another process holds a core
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """Untrained YOLOv8-n weights with their class names, as training saves
    them (``meta.dataset_meta``)."""
    from mmdet.apis import init_detector
    torch.manual_seed(0)
    model = init_detector(Config.fromfile(CONFIG), None, device='cpu')
    path = str(tmp_path_factory.mktemp('ckpt') / 'yolov8_n.pth')
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(dataset_meta=dict(classes=CLASSES, palette=PALETTE))),
        path)
    return path


@pytest.fixture(scope='module')
def inferencer(checkpoint):
    # score_thr=0: untrained weights still give boxes to check
    return DetInferencer(CONFIG, checkpoint, device='cpu', score_thr=0.0)


@pytest.fixture(scope='module')
def image():
    """A 96x160 (H, W) BGR image: not the 256x256 model input."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)
    cv2.circle(img, (50, 40), 25, (0, 0, 255), -1)
    return img


@pytest.fixture(scope='module')
def image_file(image, tmp_path_factory):
    path = str(tmp_path_factory.mktemp('imgs') / 'img.png')  # lossless
    cv2.imwrite(path, image)
    return path


def _check_result(result, img_shape, score_thr=0.0):
    assert isinstance(result, DetResult)
    num = len(result)
    assert num > 0
    assert result.img_shape == img_shape
    assert result.bboxes.shape == (num, 4)
    assert result.bboxes.dtype == np.float32
    assert result.scores.shape == result.labels.shape == (num, )
    assert result.labels.dtype == np.int64
    height, width = img_shape
    x1, y1, x2, y2 = result.bboxes.T
    assert (x1 >= 0).all() and (y1 >= 0).all()
    assert (x2 <= width).all() and (y2 <= height).all()
    assert (x1 <= x2).all() and (y1 <= y2).all()
    assert (result.scores >= score_thr).all()
    assert (np.diff(result.scores) <= 0).all(), 'scores must be sorted'
    assert set(result.labels.tolist()) <= set(range(len(CLASSES)))
    assert result.class_names == [CLASSES[i] for i in result.labels]
    assert set(result.timings_ms) == STAGES
    assert all(v >= 0 for v in result.timings_ms.values())


def test_path_input(inferencer, image_file, image):
    result = inferencer(image_file)
    _check_result(result, image.shape[:2])
    assert result.img_path == image_file


def test_ndarray_input_matches_path_input(inferencer, image_file, image):
    from_array = inferencer(image)
    _check_result(from_array, image.shape[:2])
    assert from_array.img_path is None
    from_file = inferencer(image_file)
    np.testing.assert_allclose(from_array.bboxes, from_file.bboxes, atol=1e-4)
    np.testing.assert_array_equal(from_array.labels, from_file.labels)


def test_list_input_keeps_order(inferencer, image_file, image):
    small = cv2.resize(image, (64, 48))
    results = inferencer([image_file, small])
    assert isinstance(results, list) and len(results) == 2
    _check_result(results[0], image.shape[:2])
    _check_result(results[1], (48, 64))
    assert [r.img_path for r in results] == [image_file, None]
    assert inferencer([]) == []


def test_grayscale_array_is_accepted(inferencer, image):
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    _check_result(inferencer(gray), gray.shape)


def test_score_thr_filters_detections(inferencer, image):
    scores = inferencer(image).scores
    thr = float(np.median(scores))
    inferencer.score_thr = thr
    try:
        result = inferencer(image)
    finally:
        inferencer.score_thr = 0.0
    assert len(result) == int((scores >= thr).sum())
    assert (result.scores >= thr).all()


def test_test_step_fallback_gives_same_detections(inferencer, image):
    """Models without ``bbox_head.predict_by_feat`` run model.test_step."""
    staged = inferencer(image)
    inferencer._staged = False
    try:
        whole = inferencer(image)
    finally:
        inferencer._staged = True
    np.testing.assert_allclose(staged.bboxes, whole.bboxes, atol=1e-4)
    np.testing.assert_allclose(staged.scores, whole.scores, atol=1e-6)
    assert set(whole.timings_ms) == STAGES


def test_metadata_classes_from_checkpoint_palette_from_config(inferencer):
    assert inferencer.classes == CLASSES
    # mmdet's init_detector: a palette in the config wins over the checkpoint
    palette = Config.fromfile(CONFIG).metainfo['palette']
    assert inferencer.palette == [tuple(c) for c in palette]


def test_config_object_without_checkpoint_uses_config_classes():
    cfg = Config.fromfile(CONFIG)
    before = cfg.pretty_text
    inferencer = DetInferencer(cfg, device='cpu')
    assert inferencer.classes == CLASSES  # not COCO's 80
    assert cfg.pretty_text == before, 'the given Config must not be modified'


def test_missing_file_raises_naming_it(inferencer, tmp_path):
    missing = str(tmp_path / 'nope.jpg')
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        inferencer(missing)


def test_unreadable_file_raises_naming_it(inferencer, tmp_path):
    bad = tmp_path / 'corrupt.jpg'
    bad.write_bytes(b'not a jpeg at all')
    with pytest.raises(ValueError, match='corrupt.jpg'):
        inferencer(str(bad))
    with pytest.raises(ValueError, match='directory'):
        inferencer(str(tmp_path))


def test_bad_inputs_raise(inferencer, checkpoint):
    with pytest.raises(ValueError, match=r'\(4, 4, 4\)'):
        inferencer(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(TypeError, match='int'):
        inferencer(3)
    with pytest.raises(ValueError, match='score_thr'):
        DetInferencer(CONFIG, checkpoint, score_thr=1.5)
    with pytest.raises(FileNotFoundError, match='no_such_config.py'):
        DetInferencer('no_such_config.py')
    with pytest.raises(FileNotFoundError, match='no_such.pth'):
        DetInferencer(CONFIG, 'no_such.pth')


def test_to_dict_is_json_serialisable(inferencer, image_file):
    result = inferencer(image_file)
    record = json.loads(json.dumps(result.to_dict()))
    assert record['img_path'] == image_file
    assert record['img_shape'] == [96, 160]
    assert len(record['instances']) == len(result)
    first = record['instances'][0]
    assert set(first) == {'bbox', 'score', 'label', 'class_name'}
    assert first['class_name'] == CLASSES[first['label']]
    assert set(record['timings_ms']) == STAGES


def test_draw_returns_annotated_copy(inferencer, image):
    result = inferencer(image)
    original = image.copy()
    vis = draw_detections(image, result, inferencer.palette)
    assert vis.shape == image.shape and vis.dtype == np.uint8
    assert not np.array_equal(vis, image)
    np.testing.assert_array_equal(image, original)  # input untouched


def test_draw_uses_palette_colour():
    img = np.zeros((64, 64, 3), np.uint8)
    result = DetResult(
        bboxes=np.array([[10, 30, 50, 60]], np.float32),
        scores=np.array([0.9], np.float32),
        labels=np.array([2]),
        class_names=['triangle'],
        img_shape=(64, 64))
    vis = draw_detections(img, result, PALETTE)
    # left edge, below the caption: palette[2] is RGB blue -> BGR (255, 0, 0)
    b, g, r = vis[45, 10]
    assert b > 200 and g < 60 and r < 60
    empty = DetResult(
        bboxes=np.zeros((0, 4), np.float32),
        scores=np.zeros(0, np.float32),
        labels=np.zeros(0, np.int64),
        class_names=[],
        img_shape=(64, 64))
    np.testing.assert_array_equal(draw_detections(img, empty), img)
    with pytest.raises(ValueError, match='shape'):
        draw_detections(img[..., 0], result)


def test_det_result_checks_lengths():
    with pytest.raises(ValueError, match='lengths'):
        DetResult(
            bboxes=np.zeros((2, 4), np.float32),
            scores=np.zeros(1, np.float32),
            labels=np.zeros(2, np.int64),
            class_names=['a', 'b'],
            img_shape=(8, 8))


def _warnings_of(make):
    """(result of make(), WARNING messages logged meanwhile)."""
    with captured_warnings() as records:
        result = make()
    return result, [r.getMessage() for r in records]


def _checkpoint_with(path, checkpoint, **meta):
    state = torch.load(checkpoint, weights_only=True)
    state['meta'] = dict(state['meta'], **meta)
    torch.save(state, path)
    return str(path)


def test_a_checkpoint_of_other_classes_is_named_in_a_warning(
        checkpoint, tmp_path):
    other = _checkpoint_with(
        tmp_path / 'other.pth', checkpoint,
        dataset_meta=dict(classes=('cup', 'cat', 'bus', 'sandwich')))
    inferencer, warned = _warnings_of(
        lambda: DetInferencer(CONFIG, other, device='cpu'))
    assert inferencer.classes == ('cup', 'cat', 'bus', 'sandwich')
    assert [w for w in warned if f'checkpoint {other} was trained on 4 '
            'classes (cup, cat, bus, sandwich) but the config\'s test '
            'dataset has 4 (circle, square, triangle, star)' in w]


def test_a_class_count_mismatch_uses_the_config_names_and_warns(
        checkpoint, tmp_path):
    # COCO's 80 names (a checkpoint without meta.dataset_meta reads as COCO)
    # for a 4-class head: the config's names, and a warning
    coco = _checkpoint_with(tmp_path / 'coco.pth', checkpoint,
                            dataset_meta=dict(classes=tuple(
                                f'c{i}' for i in range(80))))
    inferencer, warned = _warnings_of(
        lambda: DetInferencer(CONFIG, coco, device='cpu'))
    assert inferencer.classes == CLASSES
    assert [w for w in warned if f'checkpoint {coco} gives 80 class names'
            in w and 'the head predicts 4 classes' in w]


def test_a_barely_trained_checkpoint_is_warned_about(checkpoint, tmp_path):
    """60 iterations: YOLO's BatchNorm statistics (momentum 0.03) trail the
    weights, eval-mode scores can saturate; 334 = ceil(10 / 0.03) do not
    warn."""
    young = _checkpoint_with(tmp_path / 'young.pth', checkpoint, iter=60)
    _, warned = _warnings_of(lambda: DetInferencer(CONFIG, young,
                                                   device='cpu'))
    assert [w for w in warned if f'checkpoint {young} was saved after 60 '
            'training iterations, fewer than the 334' in w
            and 'train for more iterations' in w]
    settled = _checkpoint_with(tmp_path / 'settled.pth', checkpoint,
                               iter=334)
    _, warned = _warnings_of(lambda: DetInferencer(CONFIG, settled,
                                                   device='cpu'))
    assert not [w for w in warned if 'training iterations' in w]


def test_single_label_keeps_only_best_classes(checkpoint, image):
    """multi_label=False (the demos' default, ultralytics' predict): each
    box's best class (tests/test_models/test_dense_heads/test_yolov8_head
    checks it per box); the config's multi-label results hold every one of
    those detections and the runners-up besides."""
    kwargs = dict(device='cpu', score_thr=0.0)
    single = DetInferencer(CONFIG, checkpoint, multi_label=False,
                           **kwargs)(image)
    multi = DetInferencer(CONFIG, checkpoint, **kwargs)(image)

    def rows(result):
        return {(tuple(b), int(label), round(float(score), 5))
                for b, label, score in zip(result.bboxes.round(2).tolist(),
                                           result.labels, result.scores)}
    assert 0 < len(single) < len(multi)
    assert rows(single) <= rows(multi)


def test_demos_take_multi_label():
    import importlib.util
    for name in ('image_demo', 'video_demo'):
        spec = importlib.util.spec_from_file_location(
            name, osp.join(ROOT, 'demo', f'{name}.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        args = ['in.jpg' if name == 'image_demo' else 'in.mp4', '--config',
                CONFIG, '--weights', 'w.pth']
        assert module.parse_args(args).multi_label is False
        assert module.parse_args(args + ['--multi-label']).multi_label

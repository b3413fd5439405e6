"""The inferencers' runtime backends give PyTorch's results: the same boxes
after NMS at the demo threshold, the same masks, the same anomaly maps; on
the fly (exported into a cache) and from a file of tools/deploy/export.py.
"""
import glob
import importlib.util
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from densekit.apis import (AnomalyInferencer, DetInferencer, SegInferencer,
                           VolumeInferencer)
from tests.conftest import ROOT
from tests.test_deploy.test_exporter import match_detections

YOLO = osp.join(ROOT, 'configs', 'det', 'yolov8_n_shapes.py')
UPERNET = osp.join(ROOT, 'configs', 'seg', 'upernet_yolov8-n_shapes.py')
EFFICIENTAD = osp.join(ROOT, 'configs', 'anomaly',
                       'efficientad_s_synthetic.py')
UNET = osp.join(ROOT, 'configs', 'medseg', 'unet_phantom.py')
CLASSES = ('circle', 'square', 'triangle', 'star')


def export_tool():
    spec = importlib.util.spec_from_file_location(
        'export_tool', osp.join(ROOT, 'tools', 'deploy', 'export.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """On-the-fly exports go to a fresh cache per test."""
    monkeypatch.setenv('DENSEKIT_CACHE', str(tmp_path / 'cache'))


def save_random(config: str, path: str, scope: str, tweak=None) -> str:
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(scope)
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    if tweak is not None:
        tweak(model)
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=CLASSES))), path)
    return path


def confident_yolo(model):
    # untrained class logits sit near the prior (~0.001); spread them so
    # boxes pass the demo threshold 0.3
    for tower in model.bbox_head.cls_towers:
        torch.nn.init.normal_(tower[-1].bias, 0.0, 2.0)


@pytest.fixture(scope='module')
def image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (200, 256, 3), dtype=np.uint8)  # letterboxed
    cv2.circle(img, (90, 80), 40, (0, 0, 255), -1)
    return img


def test_det_backends_give_the_same_detections(image, tmp_path):
    ckpt = save_random(YOLO, str(tmp_path / 'yolo.pth'), 'mmdet',
                       confident_yolo)
    expected = DetInferencer(YOLO, ckpt, device='cpu')(image)
    assert len(expected) > 0
    # a file with decode + NMS in the graph, made by the export tool
    assert export_tool().main([YOLO, ckpt, '--format', 'openvino', '--out',
                               str(tmp_path / 'ir'), '--with-postprocess',
                               '--shape', '256']) == 0
    xml = str(tmp_path / 'ir' / 'yolov8_n_shapes.xml')
    runs = [('onnxruntime', None), ('openvino', None), ('openvino', xml)]
    for backend, model_file in runs:
        got = DetInferencer(YOLO, ckpt, device='cpu', backend=backend,
                            backend_model=model_file)(image)
        assert len(got) == len(expected)
        box_diff, score_diff = match_detections(
            (got.bboxes, got.scores, got.labels),
            (expected.bboxes, expected.scores, expected.labels))
        assert got.class_names[0] in CLASSES
        print(f'DetInferencer {backend} ({model_file or "on the fly"}): '
              f'{len(got)} detections at 0.3, max box diff {box_diff:.1e} '
              f'px, score diff {score_diff:.1e}')
        assert box_diff < 1e-3 and score_diff < 1e-5
    # the on-the-fly export was cached: a second inferencer reuses it
    assert glob.glob(str(tmp_path / 'cache' / 'deploy' / '*' / '*.onnx'))


def test_det_backend_model_must_match_the_input_size(image, tmp_path):
    ckpt = save_random(YOLO, str(tmp_path / 'yolo.pth'), 'mmdet')
    assert export_tool().main([YOLO, ckpt, '--out', str(tmp_path),
                               '--shape', '128']) == 0
    inferencer = DetInferencer(YOLO, ckpt, device='cpu',
                               backend='onnxruntime',
                               backend_model=str(tmp_path /
                                                 'yolov8_n_shapes.onnx'))
    with pytest.raises(ValueError, match='exported for 128x128 inputs'):
        inferencer(image)
    with pytest.raises(ValueError, match='backend must be one of'):
        DetInferencer(YOLO, ckpt, device='cpu', backend='tensorrt')


def test_seg_backend_gives_the_same_masks(tmp_path):
    from densekit.datasets.synthetic import generate_shapes_ade
    generate_shapes_ade(str(tmp_path / 'seg'), num_train=1, num_val=2,
                        img_size=96, seed=3)
    images = sorted(glob.glob(str(tmp_path / 'seg' / 'images' /
                                  'validation' / '*.jpg')))
    ckpt = save_random(UPERNET, str(tmp_path / 'upernet.pth'), 'mmseg')
    expected = SegInferencer(UPERNET, ckpt, device='cpu')(images)
    for backend in ('onnxruntime', 'openvino'):
        got = SegInferencer(UPERNET, ckpt, device='cpu',
                            backend=backend)(images)
        for g, e in zip(got, expected):
            same = float((g.label_map == e.label_map).mean())
            print(f'SegInferencer {backend}: {same:.6f} of the pixels '
                  'labelled alike')
            assert g.label_map.shape == e.label_map.shape
            assert same >= 0.9999


def test_anomaly_backend_gives_the_same_maps(image, tmp_path):
    ckpt = save_random(EFFICIENTAD, str(tmp_path / 'ead.pth'), 'densekit')
    with pytest.warns(UserWarning, match='no map-normalisation'):
        expected = AnomalyInferencer(EFFICIENTAD, ckpt, device='cpu')(image)
    for backend in ('onnxruntime', 'openvino'):
        with pytest.warns(UserWarning, match='no map-normalisation'):
            got = AnomalyInferencer(EFFICIENTAD, ckpt, device='cpu',
                                    backend=backend)(image)
        diff = float(np.abs(got.anomaly_map - expected.anomaly_map).max() /
                     np.abs(expected.anomaly_map).max())
        print(f'AnomalyInferencer {backend}: map max rel diff {diff:.1e}, '
              f'score {got.score:.6g} vs {expected.score:.6g}')
        assert got.anomaly_map.shape == image.shape[:2]
        assert diff < 1e-4
        assert got.score == pytest.approx(expected.score, rel=1e-4)


def test_volume_backend_gives_the_same_labels(tmp_path):
    from densekit.datasets.synthetic import generate_phantom_synapse
    generate_phantom_synapse(str(tmp_path / 'ph'), num_train_volumes=1,
                             num_test_volumes=1, size=(3, 48, 40), seed=5)
    volume = glob.glob(str(tmp_path / 'ph' / 'test_vol_h5' /
                           '*.npy.h5'))[0]
    ckpt = save_random(UNET, str(tmp_path / 'unet.pth'), 'mmseg')
    options = {f'{k}.dataset.data_root': str(tmp_path / 'ph')
               for k in ('train_dataloader', 'val_dataloader',
                         'test_dataloader')}
    expected = VolumeInferencer(UNET, ckpt, device='cpu', batch_size=2,
                                cfg_options=options)(volume)
    got = VolumeInferencer(UNET, ckpt, device='cpu', batch_size=2,
                           cfg_options=options,
                           backend='onnxruntime')(volume)
    same = float((got.label_volume == expected.label_volume).mean())
    print(f'VolumeInferencer onnxruntime (batch 2 slices): {same:.6f} of '
          'the voxels labelled alike')
    assert same >= 0.9999


def test_image_demo_backend_writes_the_same_predictions(image, tmp_path):
    import json
    ckpt = save_random(YOLO, str(tmp_path / 'yolo.pth'), 'mmdet',
                       confident_yolo)
    img_path = str(tmp_path / 'img.jpg')
    cv2.imwrite(img_path, image)
    spec = importlib.util.spec_from_file_location(
        'image_demo', osp.join(ROOT, 'demo', 'image_demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    found = {}
    for backend in ('pytorch', 'onnxruntime'):
        out = tmp_path / backend
        assert demo.main([img_path, '--config', YOLO, '--weights', ckpt,
                          '--backend', backend, '--out-dir', str(out)]) == 0
        with open(out / 'predictions.json') as f:
            found[backend] = json.load(f)[0]['instances']
    got, want = found['onnxruntime'], found['pytorch']
    assert len(got) == len(want) > 0
    box_diff, score_diff = match_detections(
        (np.array([d['bbox'] for d in got]),
         np.array([d['score'] for d in got]),
         np.array([d['label'] for d in got])),
        (np.array([d['bbox'] for d in want]),
         np.array([d['score'] for d in want]),
         np.array([d['label'] for d in want])))
    print(f'image_demo --backend onnxruntime: {len(got)} detections, max '
          f'box diff {box_diff:.2f} px (JSON rounds to 0.01)')
    assert box_diff <= 0.011 and score_diff <= 1.1e-5  # 5 decimals

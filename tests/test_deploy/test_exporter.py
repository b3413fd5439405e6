"""Export parity: every exported family in ONNX Runtime and OpenVINO vs
PyTorch eager on the same input (random weights, small inputs).

Each case exports with a dynamic batch and checks batch 1 and batch 2 in
both runtimes; raw outputs must agree within 1e-4 relative (max abs
difference over the output's max abs value, that value taken as at least
0.1: an output whose values are all near zero, e.g. FCOS's one-element
centerness of the 1 x 1 level at 0.002, carries the float32 round-off of
inputs near 1, ~1e-7 absolute, so it is held to 1e-5 absolute), printed per
runtime.
"""
import os
import os.path as osp

import numpy as np
import pytest
import torch

from densekit.deploy.backend import postprocessed_instances
from densekit.deploy.exporter import (ExportError, build_export_spec,
                                      export_model, load_model, read_meta)
from densekit.deploy.runtime import RuntimeSession
from tests.conftest import ROOT

RTOL = 1e-4
# forwards that turn the batch size into a trace constant: exported with a
# fixed batch (the dynamic-batch export is refused, one line)
FIXED_BATCH = ('bvr_retinanet', 'bvr_fcos', 'bvr_atss', 'swin_unet',
               'att_swin_unet')
BACKENDS = ('onnxruntime', 'openvino')

# (id, config, input size); slow cases run in `make test-slow` and CI
FAMILIES = [
    ('yolov8_n', 'configs/det/yolov8_n_shapes.py', 64),
    ('mamba_yolo_t', 'configs/det/mamba_yolo_t_shapes.py', 64),
    ('upernet_yolov8_n', 'configs/seg/upernet_yolov8-n_shapes.py', 64),
    ('dtop_vit_t', 'configs/seg/dtop_vit-t-p8_shapes.py', 64),
    ('unet', 'configs/medseg/unet_phantom.py', 64),
    ('efficientad_s', 'configs/anomaly/efficientad_s_synthetic.py', 256),
    ('streamyolo_yolov8_n',
     'configs/stream/streamyolo_yolov8-n_moving-shapes.py', 64),
]
SLOW_FAMILIES = [
    ('retinanet', 'configs/det/retinanet_r50_fpn_shapes.py', 64),
    ('fcos', 'configs/det/fcos_r50_fpn_1x_coco.py', 64),
    ('atss', 'configs/det/atss_r50_fpn_1x_coco.py', 64),
    ('bvr_retinanet', 'configs/det/bvr_retinanet_r50_fpn_shapes.py', 64),
    ('bvr_fcos', 'configs/det/bvr_fcos_r50_fpn_1x_coco.py', 64),
    ('bvr_atss', 'configs/det/bvr_atss_r50_fpn_1x_coco.py', 64),
    ('upernet_mamba_yolo_t', 'configs/seg/upernet_mamba-yolo-t_shapes.py',
     64),
    ('unet_scse', 'configs/medseg/unet-scse_phantom.py', 64),
    ('swin_unet', 'configs/medseg/swin-unet_phantom.py', 128),
    ('att_swin_unet', 'configs/medseg/att-swin-unet_phantom.py', 128),
    ('focal_unet', 'configs/medseg/focal-unet_phantom.py', 128),
    ('mamba_unet', 'configs/medseg/mamba-unet_phantom.py', 128),
    ('transunet', 'configs/medseg/transunet_phantom.py', 128),
    ('efficientad_m', 'configs/anomaly/efficientad_m_mvtec.py', 256),
    ('streamyolo_mamba_yolo_t',
     'configs/stream/streamyolo_mamba-yolo-t_moving-shapes.py', 64),
    ('still_yolov8_n', 'configs/stream/still_yolov8-n_moving-shapes.py', 64),
]


@pytest.fixture(scope='module', autouse=True)
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


#: the smallest output scale rel_diff divides by (see the module docstring)
MIN_SCALE = 0.1


def rel_diff(ref: np.ndarray, out: np.ndarray) -> float:
    """max |out - ref| / max(max |ref|, MIN_SCALE)."""
    if not ref.size:
        return 0.0
    scale = max(float(np.abs(ref).max()), MIN_SCALE)
    return float(np.abs(out.astype(np.float64) - ref).max()) / scale


def check_parity(name: str, config: str, size: int, tmp_path) -> None:
    torch.manual_seed(0)
    model, _ = load_model(osp.join(ROOT, config))
    dynamic = name not in FIXED_BATCH
    if not dynamic:
        with pytest.raises(ExportError, match='does not export with a '
                           'dynamic batch') as info:
            export_model(model, str(tmp_path / 'dyn'), shape=(size, size),
                         name=name, dynamic_batch=True)
        print(info.value)
        assert os.listdir(tmp_path / 'dyn') == []
    path = export_model(model, str(tmp_path), shape=(size, size), name=name,
                        dynamic_batch=dynamic)
    meta = read_meta(path)
    assert meta['dynamic_batch'] == dynamic
    assert meta['input_shape'] == [size, size]
    for batch in ((1, 2) if dynamic else (1, )):
        spec = build_export_spec(model, (size, size), batch_size=batch)
        with torch.no_grad():
            ref = spec.module(*spec.inputs)
        ref = ref if isinstance(ref, tuple) else (ref, )
        feeds = dict(zip(spec.input_names, spec.inputs))
        for backend in BACKENDS:
            outs = RuntimeSession(path, backend, num_threads=2)(feeds)
            assert list(outs) == spec.output_names
            worst = 0.0
            for r, (out_name, o) in zip(ref, outs.items()):
                r = r.float().numpy()
                assert o.shape == r.shape, (out_name, o.shape, r.shape)
                worst = max(worst, rel_diff(r, o))
            print(f'{name} batch {batch} {backend}: max rel diff '
                  f'{worst:.2e} over {len(ref)} outputs')
            assert worst <= RTOL, (name, backend, batch, worst)


@pytest.mark.parametrize('name,config,size', FAMILIES,
                         ids=[f[0] for f in FAMILIES])
def test_export_parity(name, config, size, tmp_path):
    check_parity(name, config, size, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize('name,config,size', SLOW_FAMILIES,
                         ids=[f[0] for f in SLOW_FAMILIES])
def test_export_parity_slow(name, config, size, tmp_path):
    check_parity(name, config, size, tmp_path)


def test_openvino_ir_and_fp16(tmp_path):
    """IR files (xml + bin) load in OpenVINO; fp16 weights stay within
    float16 rounding of the float32 graph."""
    torch.manual_seed(0)
    model, _ = load_model(osp.join(ROOT, 'configs/det/yolov8_n_shapes.py'))
    xml = export_model(model, str(tmp_path), fmt='openvino', shape=(64, 64),
                       name='ir')
    assert osp.isfile(xml) and osp.isfile(xml[:-4] + '.bin')
    half = export_model(model, str(tmp_path), shape=(64, 64), name='half',
                        fp16=True)
    spec = build_export_spec(model, (64, 64))
    with torch.no_grad():
        ref = [r.numpy() for r in spec.module(*spec.inputs)]
    outs = RuntimeSession(xml, 'openvino', 2)(spec.inputs[0])
    worst = max(rel_diff(r, o) for r, o in zip(ref, outs.values()))
    print(f'OpenVINO IR: max rel diff {worst:.2e}')
    assert worst <= RTOL
    for backend in BACKENDS:
        outs = RuntimeSession(half, backend, 2)(spec.inputs[0])
        worst = max(rel_diff(r, o) for r, o in zip(ref, outs.values()))
        print(f'fp16 weights, {backend}: max rel diff {worst:.2e}')
        assert worst <= 2e-2
    assert osp.getsize(half) < 0.6 * osp.getsize(
        export_model(model, str(tmp_path), shape=(64, 64), name='full'))
    # only finished files in the folder
    assert not [f for f in os.listdir(tmp_path) if f.startswith('.tmp')]


def test_yolo_postprocess_matches_predict(tmp_path):
    """Decode + ONNX NonMaxSuppression in the graph: the detections of
    YOLOv8Head.predict_by_feat at the demo threshold (0.3)."""
    from mmdet.structures import DetDataSample
    torch.manual_seed(0)
    model, _ = load_model(osp.join(ROOT, 'configs/det/yolov8_n_shapes.py'))
    for tower in model.bbox_head.cls_towers:
        # confident scores that vary with the features: a large bias alone
        # gives neighbouring anchors scores equal to float32 round-off,
        # whose order (and so NMS's pick) is then arbitrary
        torch.nn.init.normal_(tower[-1].weight, 0.0, 0.3)
        torch.nn.init.normal_(tower[-1].bias, 0.0, 1.0)
    model.bbox_head.test_cfg['score_thr'] = 0.3
    path = export_model(model, str(tmp_path), shape=(64, 64), name='pp',
                        with_postprocess=True, dynamic_batch=True)
    x = torch.rand(2, 3, 64, 64)
    meta = dict(img_shape=(64, 64), ori_shape=(64, 64), scale_factor=(1, 1))
    with torch.no_grad():
        expected = model.predict(
            x, [DetDataSample(metainfo=meta) for _ in range(2)])
    for backend in BACKENDS:
        outs = {k: torch.from_numpy(v) for k, v in
                RuntimeSession(path, backend, 2)(x).items()}
        for i, sample in enumerate(expected):
            want = sample.pred_instances
            # boxes back in image pixels, clipped, as the inferencer does
            got = postprocessed_instances(outs, meta, i)
            num = len(got)
            assert num == len(want) > 0
            box_diff, score_diff = match_detections(
                (got.bboxes.numpy(), got.scores.numpy(),
                 got.labels.numpy()),
                (want.bboxes.numpy(), want.scores.numpy(),
                 want.labels.numpy()))
            print(f'postprocess {backend} image {i}: {num} detections, max '
                  f'box diff {box_diff:.2e} px, score diff {score_diff:.2e}')
            assert box_diff < 1e-3 and score_diff < 1e-5


def match_detections(got, want):
    """Pair the wanted detections one-to-one with detections of the same
    label, minimising the summed box + score difference (the order of
    near-equal scores may differ, so a greedy pairing can take a
    neighbour's match); returns the largest box and score differences, or
    fails when a label has no partner."""
    from scipy.optimize import linear_sum_assignment
    boxes, scores, labels = got
    want_boxes, want_scores, want_labels = want
    cost = (np.abs(want_boxes[:, None] - boxes[None]).max(2) +
            np.abs(want_scores[:, None] - scores[None]))
    cost[want_labels[:, None] != labels[None]] = 1e9
    rows, cols = linear_sum_assignment(cost)
    assert len(rows) == len(want_scores), 'unpaired detections'
    assert (want_labels[rows] == labels[cols]).all(), \
        'a label without a partner'
    worst_box = float(np.abs(boxes[cols] - want_boxes[rows]).max(initial=0))
    worst_score = float(np.abs(scores[cols] - want_scores[rows]).max(
        initial=0))
    return worst_box, worst_score


def test_two_stage_detector_names_roi_head(tmp_path):
    model, _ = load_model(
        osp.join(ROOT, 'configs/det/faster-rcnn_r50_fpn_shapes.py'))
    with pytest.raises(ExportError, match=r'module roi_head \(StandardRoI'):
        export_model(model, str(tmp_path), shape=(64, 64))
    assert os.listdir(tmp_path) == []


def test_custom_op_names_module(tmp_path):
    """DAMO-StreamNet's deformable convolutions are mmcv custom ops."""
    model, _ = load_model(osp.join(
        ROOT, 'configs/stream/damo-streamnet_yolov8-n_moving-shapes.py'))
    with pytest.raises(ExportError) as info:
        export_model(model, str(tmp_path), shape=(64, 64))
    message = str(info.value)
    print(message)
    assert 'module temporal_fusion.dcn_blocks.0' in message
    assert 'mmcv::' in message and '\n' not in message
    assert os.listdir(tmp_path) == []


def test_unsupported_op_names_module(tmp_path):
    """An op without an ONNX translation: the error names the module."""
    import torch.nn as nn

    from densekit.deploy.exporter import onnx_export

    class Unsupported(nn.Module):

        def forward(self, x):
            return torch.special.erfinv(x.clamp(-0.5, 0.5))

    class Net(nn.Module):

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.block = nn.Sequential(nn.ReLU(), Unsupported())

        def forward(self, x):
            return self.block(self.conv(x))

    class Wrapper(nn.Module):  # as the task wrappers: .model

        def __init__(self):
            super().__init__()
            self.model = Net()

        def forward(self, x):
            return self.model(x)

    path = str(tmp_path / 'bad.onnx')
    with pytest.raises(ExportError) as info:
        onnx_export(Wrapper(), (torch.rand(1, 3, 4, 4), ), path,
                    input_names=['x'], output_names=['y'])
    print(info.value)
    assert str(info.value).startswith('module block.1 (Unsupported) does '
                                      'not export')
    assert 'erfinv' in str(info.value)
    assert os.listdir(tmp_path) == []


def test_adaptive_pool_export_matches_torch():
    from densekit.deploy.exporter import AdaptiveAvgPool2dExport
    x = torch.randn(2, 3, 16, 13)
    for size in (1, 2, 3, 6, (5, None)):
        expected = torch.nn.AdaptiveAvgPool2d(size)(x)
        got = AdaptiveAvgPool2dExport(size)(x)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_bad_format_and_shape(tmp_path):
    model, _ = load_model(osp.join(ROOT, 'configs/det/yolov8_n_shapes.py'))
    with pytest.raises(ValueError, match="format must be one of"):
        export_model(model, str(tmp_path), fmt='tensorrt')
    with pytest.raises(ValueError, match='shape must be'):
        export_model(model, str(tmp_path), shape=(64, ))
    with pytest.raises(ExportError, match='with-postprocess is for'):
        seg, _ = load_model(
            osp.join(ROOT, 'configs/seg/upernet_yolov8-n_shapes.py'))
        export_model(seg, str(tmp_path), with_postprocess=True)
    assert os.listdir(tmp_path) == []

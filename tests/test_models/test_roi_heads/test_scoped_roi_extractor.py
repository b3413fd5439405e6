"""ScopedRoIExtractor: registry-scoped RoI layers (densekit.RoIAlign), the
same features as mmdet's SingleRoIExtractor with mmcv's RoIAlign, mmcv.ops
names still accepted, a clear error for unknown types, and the shapes
Faster R-CNN configs using densekit's kernel."""
import os.path as osp

import pytest
import torch
from mmcv.ops import RoIAlign as MMCVRoIAlign
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmengine.config import Config
from mmengine.registry import init_default_scope

from densekit.models.roi_heads import ScopedRoIExtractor
from densekit.ops.roi_align import RoIAlign
from densekit.registry import MODELS
from tests.conftest import ROOT

STRIDES = [4, 8, 16, 32]


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmdet')


def extractor(layer_type, cls=ScopedRoIExtractor):
    return cls(roi_layer=dict(type=layer_type, output_size=7,
                              sampling_ratio=0),
               out_channels=8, featmap_strides=STRIDES)


def test_matches_mmdet_extractor_with_mmcv_roi_align():
    torch.manual_seed(0)
    feats = [torch.randn(2, 8, 128 // s, 128 // s, requires_grad=True)
             for s in STRIDES]
    xy = torch.rand(30, 2) * 60
    wh = torch.rand(30, 2) * 120 + 2  # spread over all four levels
    rois = torch.cat([torch.randint(0, 2, (30, 1)).float(), xy, xy + wh], 1)
    ours = extractor('densekit.RoIAlign')
    ref = extractor('RoIAlign', cls=SingleRoIExtractor)
    assert all(type(layer) is RoIAlign for layer in ours.roi_layers)
    assert [layer.spatial_scale for layer in ours.roi_layers] == \
        [1 / s for s in STRIDES]
    out = ours(feats, rois)
    grads = torch.autograd.grad(out.sum(), feats)
    ref_out = ref(feats, rois)
    ref_grads = torch.autograd.grad(ref_out.sum(), feats)
    assert out.shape == (30, 8, 7, 7)
    torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-4)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


def test_mmcv_names_and_classes_still_work():
    assert all(type(layer) is MMCVRoIAlign
               for layer in extractor('RoIAlign').roi_layers)
    assert all(type(layer) is RoIAlign
               for layer in extractor(RoIAlign).roi_layers)


def test_unknown_layer_type_names_it():
    with pytest.raises(KeyError, match="'NoSuchRoIOp' is neither in "
                       'mmcv.ops nor registered'):
        extractor('NoSuchRoIOp')


@pytest.mark.parametrize('name', ['faster-rcnn_r50_fpn_shapes.py',
                                  'faster-rcnn_cbv2-r50_fpn_shapes.py',
                                  'bvr_faster-rcnn_r50_fpn_shapes.py'])
def test_shapes_configs_use_densekit_roi_align(name):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'det', name))
    model = MODELS.build(cfg.model)
    layers = model.roi_head.bbox_roi_extractor.roi_layers
    assert type(model.roi_head.bbox_roi_extractor) is ScopedRoIExtractor
    assert len(layers) == 4 and all(type(m) is RoIAlign for m in layers)

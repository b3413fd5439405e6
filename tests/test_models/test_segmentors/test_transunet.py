"""The TransUNet configs: the Synapse model's size against the official
figure, tools/analysis/get_flops.py on it, and one CPU training step and
prediction of the phantom config."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from densekit.registry import MODELS
from tests.conftest import ROOT

MEDSEG = osp.join(ROOT, 'configs', 'medseg')
# TransUNet R50-ViT-B/16, 224 x 224, 9 classes (Synapse). Comparison tables
# quote 105.28M parameters (e.g. HiFormer, Heidari et al., WACV 2023,
# arXiv:2207.08518, Synapse table). Counting the official definition
# (Beckschen/TransUNet networks/vit_seg_modeling.py, get_r50_b16_config,
# n_classes=9) layer by layer gives exactly 105,277,081:
#   ResNetV2 root 9,536 + block1 215,808 + block2 1,219,584
#     + block3 10,449,920                                  = 11,894,848
#   patch embedding 787,200 + position embedding 150,528
#     + 12 x 7,087,872 (attention, MLP, 2 LN) + final LN 1,536
#   DecoderCup 7,387,200 + SegmentationHead 1,305           =  7,388,505
OFFICIAL_PARAMS = 105_277_081
PUBLISHED_PARAMS_M = 105.28


def build(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    return cfg, MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def synapse_model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield build(osp.join(MEDSEG, 'transunet_synapse-224x224.py'))[1]
    torch.set_num_threads(threads)


def test_synapse_config_size_matches_the_official_model(synapse_model):
    params = sum(p.numel() for p in synapse_model.parameters())
    print(f'TransUNet Synapse: {params:,} parameters '
          f'(official definition {OFFICIAL_PARAMS:,})')
    assert abs(params / 1e6 - PUBLISHED_PARAMS_M) / PUBLISHED_PARAMS_M < .05
    assert params == OFFICIAL_PARAMS
    backbone = sum(p.numel() for p in synapse_model.backbone.parameters())
    assert backbone == 97_888_576
    assert synapse_model.decode_head.in_channels == [64, 256, 512, 768]


def test_get_flops_counts_the_synapse_config(synapse_model):
    spec = importlib.util.spec_from_file_location(
        'get_flops', osp.join(ROOT, 'tools', 'analysis', 'get_flops.py'))
    get_flops = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(get_flops)
    info = get_flops.count_model_complexity(synapse_model, (224, 224))
    print(f'TransUNet Synapse 224x224: {info["gmacs"]:.2f} GMACs')
    assert info['params'] == OFFICIAL_PARAMS
    assert info['input_shape'] == (224, 224)
    # every conv, linear and attention product: 29.33 GMACs (by hand:
    # ResNet 3.96, ViT 17.53, decoder 7.84)
    assert abs(info['gmacs'] - 29.33) < 0.05, info['gmacs']
    # Comparison tables quote 24.64 G; that is this count without the
    # weight-standardised ResNet convs and the attention matmuls, which a
    # module-hook counter (thop) does not see (StdConv2d is a Conv2d
    # subclass it has no hook for; matmuls are not modules)
    analyzer = FlopAnalyzer(get_flops._TensorForward(synapse_model),
                            (torch.zeros(1, 3, 224, 224), ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    by_module = analyzer.by_module()
    ws_convs = sum(by_module[f'model.backbone.stages.{i}'] for i in range(4))
    hook_visible = (analyzer.total() - ws_convs -
                    analyzer.by_operator()['bmm']) / 1e9
    print(f'without WS convs and attention matmuls: {hook_visible:.2f} G')
    assert abs(hook_visible - 24.64) / 24.64 < 0.01


def test_phantom_config_trains_a_step_and_predicts():
    cfg, model = build(osp.join(MEDSEG, 'transunet_phantom.py'))
    params = sum(p.numel() for p in model.parameters())
    assert params < 1.1e6, params  # CPU-sized: 1,025,181
    assert model.backbone.out_strides == [2, 4, 8, 16]
    assert model.decode_head.num_classes == 5
    gen = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(2):
        sample = SegDataSample(gt_sem_seg=PixelData(
            data=torch.randint(0, 5, (1, 128, 128), generator=gen)))
        sample.set_metainfo(dict(img_shape=(128, 128), ori_shape=(128, 128),
                                 pad_shape=(128, 128)))
        samples.append(sample)
    # grey slices, as LoadMedicalSlice(num_channels=1) packs them
    data = dict(inputs=[torch.rand(1, 128, 128, generator=gen)
                        for _ in range(2)], data_samples=samples)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    before = model.backbone.stages[0].conv.weight.detach().clone()
    log_vars = model.train_step(data, optim_wrapper)
    assert {'decode.loss_ce', 'decode.loss_dice'} <= set(log_vars)
    assert torch.isfinite(log_vars['loss'])
    assert not torch.equal(before, model.backbone.stages[0].conv.weight)
    model.eval()
    with torch.no_grad():
        preds = model.test_step(dict(inputs=data['inputs'][:1],
                                     data_samples=samples[:1]))
    assert preds[0].pred_sem_seg.data.shape == (1, 128, 128)
    assert preds[0].seg_logits.data.shape == (5, 128, 128)

"""PatchExpandingUNetHead (Swin-Unet's decoder) with every decoder block
family and skip attention; the Swin-UNet family's configs (build, one
training step, prediction); parameter counts against the official models;
the FLOP tool on the Swin-UNet Synapse config."""
import importlib.util
import os.path as osp

import pytest
import torch

from densekit.models.decode_heads import PatchExpanding, PatchExpandingUNetHead
from densekit.models.layers import CrossContextualAttention
from tests.conftest import ROOT

CHANNELS = [8, 16, 32, 64]  # strides 4, 8, 16, 32
BLOCKS = {
    'swin': (dict(type='densekit.SwinDecoderStage', window_size=2),
             (1, 2, 4)),
    'focal': (dict(type='densekit.FocalNetDecoderStage', focal_level=2),
              None),
    'vss': (dict(type='densekit.VSSDecoderStage', ssm_d_state=4), None),
}
# The official Swin-Unet (HuCaoFighting/Swin-Unet, SwinTransformerSys with
# configs/swin_tiny_patch4_window7_224_lite.yaml, 9 classes) has 27,168,900
# parameters, counted from its definition (encoder 20,413,386 with the final
# norm, decoder 6,755,514); the tables that compare with it quote 27.17 M
# (e.g. HiFormer, Heidari et al., WACV 2023, Table 1).
SWIN_UNET_PARAMS = 27_168_900
# Focal-UNet (givkashi/Focal-Unet, focalUnet.FocalNet as the registered
# focalnet_tiny_lrf builds it: depths (4, 4, 4, 4), focal level 3, window 3,
# decoder depths 1, 9 classes): 44,254,060 counted from its definition
# (encoder 39,736,096, decoder 4,517,964); the paper gives no count.
FOCAL_UNET_PARAMS = 44_254_060


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _feats(batch=2, size=64, channels=CHANNELS):
    return [torch.rand(batch, c, size // 2**(i + 2), size // 2**(i + 2))
            for i, c in enumerate(channels)]


def _head(block='swin', **kwargs):
    block_cfg, heads = BLOCKS[block]
    cfg = dict(in_channels=CHANNELS, num_classes=3, depths=(1, 1, 2),
               num_heads=heads, block_cfg=block_cfg)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return PatchExpandingUNetHead(**cfg)


def test_patch_expanding_rearranges_tokens_into_patches():
    # identity expansion: token channels (p1, p2, c) land at (2h+p1, 2w+p2)
    expand = PatchExpanding(4, 1, scale=2, with_norm=False)
    with torch.no_grad():
        expand.expand.weight.copy_(torch.eye(4))
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).view(1, 2, 3, 4)
    y = expand(x)
    assert y.shape == (1, 4, 6, 1)
    torch.testing.assert_close(y[0, 0:2, 0:2, 0],
                               torch.tensor([[0., 1.], [2., 3.]]))
    torch.testing.assert_close(y[0, 2:4, 4:6, 0],
                               torch.tensor([[20., 21.], [22., 23.]]))
    # Swin-Unet's PatchExpand: Linear C -> 2C without bias, LN(C / 2)
    up = PatchExpanding(16, 8)
    assert tuple(up.expand.weight.shape) == (32, 16)
    assert up.expand.bias is None and up.norm.normalized_shape == (8, )
    # FinalPatchExpand_X4: Linear C -> 16C, LN(C)
    final = PatchExpanding(8, 8, scale=4)
    assert tuple(final.expand.weight.shape) == (128, 8)
    assert final(torch.rand(1, 2, 2, 8)).shape == (1, 8, 8, 8)


@pytest.mark.parametrize('block', list(BLOCKS))
@pytest.mark.parametrize('skip_attention', [None, 'cross', 'scse'])
def test_head_shapes_for_each_block_and_attention(block, skip_attention):
    extra = {}
    if skip_attention == 'cross':
        extra['skip_attention'] = dict(
            type='densekit.CrossContextualAttention', num_heads=2,
            head_dims=4)
    elif skip_attention == 'scse':
        extra['decoder_attention'] = dict(type='densekit.SCSE')
    head = _head(block, **extra)
    feats = _feats()
    for f in feats:
        f.requires_grad_(True)
    logits = head(feats)
    # the x4 expansion brings the stride-4 map back to the input size
    assert logits.shape == (2, 3, 64, 64)
    assert torch.isfinite(logits).all()
    features = head._forward_feature(feats)
    assert features.shape == (2, CHANNELS[0], 64, 64)
    logits.sum().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)
    assert [s.embed_dims for s in head.stages] == CHANNELS[:3]
    if skip_attention == 'cross':
        assert len(head.skip_attentions) == 3
        assert head.skip_attentions[0].embed_dims == CHANNELS[0]
    if skip_attention == 'scse':
        assert [m.in_channels for m in head.decoder_attentions] == \
            CHANNELS[:3]


def test_head_structure_follows_swin_unet():
    head = _head('swin', depths=(2, 2, 2), num_heads=(1, 2, 4),
                 drop_path_rate=0.2, encoder_depths=(2, 2, 2, 2))
    # expand C_{i+1} -> C_i (Linear C -> 2C), fuse Linear 2C_i -> C_i
    assert [tuple(e.expand.weight.shape) for e in head.expands] == \
        [(32, 16), (64, 32), (128, 64)]
    assert [tuple(f.weight.shape) for f in head.fuses] == \
        [(8, 16), (16, 32), (32, 64)]
    assert [len(s.stage.blocks) for s in head.stages] == [2, 2, 2]
    # decoder stage i reuses encoder stage i's stochastic depth
    rates = torch.linspace(0, 0.2, 8).tolist()
    assert head._drop_path_rates(0.2, (2, 2, 2, 2)) == \
        [rates[0:2], rates[2:4], rates[4:6]]
    # bias-free 1x1 classifier (the official `output`)
    assert head.conv_seg.kernel_size == (1, 1) and head.conv_seg.bias is None
    # Focal-UNet's 7x7 classifier, biased expanding, no final norm
    focal = _head('focal', cls_kernel_size=7, expand_bias=True,
                  final_expand_norm=False)
    assert focal.conv_seg.kernel_size == (7, 7)
    assert focal.expands[0].bias is not None
    assert focal.final_expand.norm is None


def test_head_handles_odd_sizes_and_zero_depth():
    head = _head('focal', depths=(1, 0, 1))
    assert isinstance(head.stages[1], torch.nn.Identity)
    # a 72 x 72 input: 18, 9, 5 (padded), 3 (padded)
    feats = [torch.rand(1, c, s, s) for c, s in zip(CHANNELS, (18, 9, 5, 3))]
    assert head(feats).shape == (1, 3, 72, 72)


def test_head_rejects_bad_arguments():
    with pytest.raises(ValueError, match='depths needs 3 values'):
        _head('focal', depths=(1, 1))
    with pytest.raises(ValueError, match='num_heads needs 3 values'):
        _head('swin', num_heads=(1, 2))
    with pytest.raises(ValueError, match='block_cfg must be one dict or 3'):
        _head('focal', block_cfg=[BLOCKS['focal'][0]] * 2)
    with pytest.raises(ValueError, match='at least two pyramid levels'):
        _head('focal', in_channels=8)
    head = _head('focal')
    with pytest.raises(ValueError, match=r'input 1 should be \(N, 16'):
        head(_feats(channels=[8, 17, 32, 64]))


def test_cross_contextual_attention_exchanges_global_tokens():
    torch.manual_seed(0)
    attn = CrossContextualAttention(embed_dims=8, depth=2, num_heads=2,
                                    head_dims=4)
    # 8 heads x 64 by default: the official CrossTransformer's width
    assert CrossContextualAttention(16).layers[0][0].q.out_features == 512
    x, skip = torch.rand(2, 3, 3, 8), torch.rand(2, 3, 3, 8)
    x_out, s_out = attn(x, skip)
    assert x_out.shape == x.shape and s_out.shape == skip.shape
    # only the first token of each sequence is replaced (official)
    torch.testing.assert_close(x_out.view(2, 9, 8)[:, 1:],
                               x.view(2, 9, 8)[:, 1:])
    torch.testing.assert_close(s_out.view(2, 9, 8)[:, 1:],
                               skip.view(2, 9, 8)[:, 1:])
    assert not torch.allclose(x_out[:, 0, 0], x[:, 0, 0])
    # the decoder's global token reads the skip
    x_other, _ = attn(x, torch.rand(2, 3, 3, 8))
    assert not torch.allclose(x_other[:, 0, 0], x_out[:, 0, 0])
    with pytest.raises(ValueError, match='one shape'):
        attn(x, torch.rand(2, 3, 4, 8))
    with pytest.raises(ValueError, match='depth must be an int >= 1'):
        CrossContextualAttention(8, depth=0)


def _config(name):
    from mmengine.config import Config
    return Config.fromfile(osp.join(ROOT, 'configs', 'medseg', name))


def _build(cfg):
    from mmengine.registry import init_default_scope

    from densekit.registry import MODELS
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def _num_params(model):
    return sum(p.numel() for p in model.parameters())


FAMILY = ['swin-unet', 'att-swin-unet', 'focal-unet', 'mamba-unet']


@pytest.mark.parametrize('family', FAMILY)
def test_phantom_config_trains_one_step_and_predicts(family):
    from mmengine.optim import build_optim_wrapper
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    cfg = _config(f'{family}_phantom.py')
    assert cfg.train_dataloader.dataset.pipeline[0].num_channels == 3
    assert cfg.model.decode_head.type == 'densekit.PatchExpandingUNetHead'
    size, num_classes = 64, cfg.model.decode_head.num_classes
    cfg.model.data_preprocessor.size = (size, size)  # 128 in the config
    model = _build(cfg)
    assert _num_params(model) < 3e6  # CPU-sized
    samples = []
    for _ in range(2):
        sample = SegDataSample(gt_sem_seg=PixelData(
            data=torch.randint(0, num_classes, (1, size, size))))
        sample.set_metainfo(dict(img_shape=(size, size),
                                 ori_shape=(size, size),
                                 pad_shape=(size, size)))
        samples.append(sample)
    data = dict(inputs=[torch.rand(3, size, size) for _ in range(2)],
                data_samples=samples)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    before = [p.detach().clone() for p in model.decode_head.parameters()]
    losses = model.train_step(data, optim_wrapper)
    assert {'decode.loss_ce', 'decode.loss_dice'} <= set(losses)
    assert all(torch.isfinite(losses[k]) for k in losses)
    assert any(not torch.equal(b, p) for b, p in
               zip(before, model.decode_head.parameters()))
    model.eval()
    with torch.no_grad():
        preds = model.test_step(dict(inputs=data['inputs'],
                                     data_samples=samples))
    assert len(preds) == 2
    assert preds[0].pred_sem_seg.data.shape == (1, size, size)
    assert preds[0].seg_logits.data.shape == (num_classes, size, size)


@pytest.mark.parametrize('family', FAMILY)
@pytest.mark.parametrize('dataset,num_classes',
                         [('synapse-224x224', 9), ('acdc-224x224', 4),
                          ('phantom', 5)])
def test_family_configs_parse(family, dataset, num_classes):
    cfg = _config(f'{family}_{dataset}.py')
    assert cfg.model.decode_head.num_classes == num_classes
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        pipeline = cfg[loader].dataset.pipeline
        assert pipeline[0].type == 'densekit.LoadMedicalSlice'
        assert pipeline[0].num_channels == 3  # grey repeated (official)
    losses = {d.loss_name: d.loss_weight
              for d in cfg.model.decode_head.loss_decode}
    assert losses == {'loss_ce': 0.4, 'loss_dice': 0.6}


def test_swin_unet_synapse_params_match_official():
    model = _build(_config('swin-unet_synapse-224x224.py'))
    params = _num_params(model)
    print(f'Swin-UNet: {params} params, official {SWIN_UNET_PARAMS}')
    assert abs(params - SWIN_UNET_PARAMS) / SWIN_UNET_PARAMS < 0.05
    # the only difference: mmseg's per-output LNs norm0-2 (2 x (96 + 192
    # + 384)); the official model normalises only the bottleneck (norm3)
    assert params - SWIN_UNET_PARAMS == 2 * (96 + 192 + 384)


def test_focal_unet_synapse_params_match_official():
    model = _build(_config('focal-unet_synapse-224x224.py'))
    params = _num_params(model)
    print(f'Focal-UNet: {params} params, official {FOCAL_UNET_PARAMS}')
    assert abs(params - FOCAL_UNET_PARAMS) / FOCAL_UNET_PARAMS < 0.05
    blocks = [len(s.blocks) for s in model.decode_head.stages]
    assert blocks == [1, 1, 1]
    assert [len(s.blocks) for s in model.backbone.stages] == [4, 4, 4, 4]


def test_get_flops_runs_on_swin_unet_synapse():
    spec = importlib.util.spec_from_file_location(
        'get_flops', osp.join(ROOT, 'tools', 'analysis', 'get_flops.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    config = osp.join(ROOT, 'configs', 'medseg',
                      'swin-unet_synapse-224x224.py')
    info = tool.count_complexity(config, (224, 224))
    assert info['input_shape'] == (224, 224)
    assert abs(info['params'] - SWIN_UNET_PARAMS) / SWIN_UNET_PARAMS < 0.05
    print(f'Swin-UNet at 224: {info["gmacs"]:.2f} GMACs')
    # comparison tables quote 6.16 G (multiply-adds) for Swin-Unet at 224;
    # mmengine counts 6.17 G (attention softmax / GELU etc. uncounted)
    assert 5.5 < info['gmacs'] < 7.0


@pytest.mark.parametrize('family', ['focal-unet', 'att-swin-unet',
                                    'mamba-unet'])
def test_synapse_and_acdc_configs_share_one_model_block(family):
    """Each method's change of Swin-Unet is written once
    (configs/_base_/models/<family>.py): its Synapse and ACDC models differ
    in the class count only, and both differ from Swin-Unet's."""
    synapse = _config(f'{family}_synapse-224x224.py').model.to_dict()
    acdc = _config(f'{family}_acdc-224x224.py').model.to_dict()
    assert (synapse['decode_head'].pop('num_classes'),
            acdc['decode_head'].pop('num_classes')) == (9, 4)
    assert synapse == acdc
    swin = _config('swin-unet_synapse-224x224.py').model.to_dict()
    swin['decode_head'].pop('num_classes')
    assert swin['backbone'] != synapse['backbone']

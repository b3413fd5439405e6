"""DToP: token selection, the ATM exit head and loss, the pruning segmentor
and its configs."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch.utils.flop_counter import FlopCounterMode

from densekit.models.losses import ATMLoss
from densekit.models.utils import select_exiting_tokens
from densekit.registry import MODELS
from tests.conftest import ROOT

NUM_CLASSES = 5
HEADS = ['ATMHead', 'TokenClassifierHead']  # DToP's two exit-head kinds


# -- which tokens exit ---------------------------------------------------
def exiting_reference(scores, threshold, keep_topk):
    """Per-token Python reference of the rule (the official code's loop)."""
    conf, label = scores.max(0)
    exiting = conf > threshold
    for c in label[exiting].unique().tolist():
        members = [i for i in range(scores.shape[1])
                   if exiting[i] and label[i] == c]
        members.sort(key=lambda i: -float(conf[i]))
        for i in members[:keep_topk]:
            exiting[i] = False
    return exiting


@pytest.mark.parametrize('threshold,keep_topk', [(0.5, 5), (0.2, 2),
                                                 (0.0, 0), (0.9, 5)])
def test_select_exiting_tokens_matches_reference(threshold, keep_topk):
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(6, 300, generator=gen)
    got = select_exiting_tokens(scores, threshold, keep_topk)
    assert torch.equal(got, exiting_reference(scores, threshold, keep_topk))
    if threshold < 0.9:
        assert got.any()


def test_select_exiting_tokens_keeps_topk_per_class():
    # class 0 confident on tokens 0..6, class 1 on 7..8, nothing else
    scores = torch.full((2, 12), 0.05)
    scores[0, :7] = torch.linspace(0.99, 0.93, 7)
    scores[1, 7:9] = 0.95
    exiting = select_exiting_tokens(scores, 0.9, keep_topk=5)
    # the 5 most confident of class 0 stay, its two weakest leave; class 1
    # has only 2 easy tokens: both stay as context
    assert exiting.tolist() == [False] * 5 + [True, True] + [False] * 5
    assert not select_exiting_tokens(scores, 1.0, 5).any()
    with pytest.raises(ValueError, match='scores must be'):
        select_exiting_tokens(scores[0], 0.9)


# -- the ATM loss -----------------------------------------------------------
def test_atm_loss_prefers_the_right_masks_and_ignores_255():
    label = torch.zeros(1, 16, 16, dtype=torch.long)
    label[:, 4:12, 4:12] = 2
    label[:, :2] = 255
    loss = ATMLoss()
    good_masks = torch.full((1, NUM_CLASSES, 16, 16), -8.0)
    good_masks[0, 0] = 8.0
    good_masks[0, 0, 4:12, 4:12] = -8.0
    good_masks[0, 2, 4:12, 4:12] = 8.0
    present = torch.tensor([[4.0, -4.0]]).repeat(NUM_CLASSES, 1)
    present[[1, 3, 4]] = torch.tensor([-4.0, 4.0])
    good = loss(present[None], good_masks, label)
    bad = loss(present.flip(-1)[None], -good_masks, label)
    assert set(good) == {'loss_cls', 'loss_mask', 'loss_dice'}
    for key in good:
        assert good[key] < 0.1 * bad[key], key
    # what the network predicts under ignored pixels does not matter
    flipped = good_masks.clone()
    flipped[..., :2, :] *= -1
    again = loss(present[None], flipped, label)
    for key in good:
        assert torch.allclose(good[key], again[key])


def test_atm_loss_rejects_labels_out_of_range():
    label = torch.full((1, 8, 8), NUM_CLASSES)
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 5\)'):
        ATMLoss()(torch.zeros(1, NUM_CLASSES, 2), torch.zeros(
            1, NUM_CLASSES, 4, 4), label)


# -- the segmentor ----------------------------------------------------------
def small_dtop(threshold=0.9, head_type='ATMHead', **backbone):
    init_default_scope('mmseg')
    embed = 48

    def head(i):
        if head_type == 'TokenClassifierHead':
            return dict(type='densekit.TokenClassifierHead',
                        in_channels=embed, channels=32,
                        num_classes=NUM_CLASSES, in_index=i,
                        loss_decode=dict(type='CrossEntropyLoss'))
        return dict(type='densekit.ATMHead', in_channels=embed, channels=32,
                    num_layers=2, num_heads=4, num_classes=NUM_CLASSES,
                    in_index=i)

    vit = dict(type='VisionTransformer', img_size=(64, 64), patch_size=8,
               embed_dims=embed, num_layers=6, num_heads=4,
               out_indices=[1, 3, 5], with_cls_token=False,
               final_norm=False)
    vit.update(backbone)
    model = MODELS.build(dict(
        type='densekit.DToPEncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0, 0, 0],
                               std=[1, 1, 1], size=(64, 64)),
        backbone=vit, decode_head=head(2),
        auxiliary_head=[head(0), head(1)],
        pruning=dict(threshold=threshold, keep_topk=2),
        test_cfg=dict(mode='whole')))
    model.init_weights()
    return model


def samples(batch, size=64):
    out = []
    for i in range(batch):
        sample = SegDataSample()
        label = torch.zeros(1, size, size, dtype=torch.long)
        label[:, 8 * i:8 * i + 24, 16:40] = 1 + i % (NUM_CLASSES - 1)
        sample.gt_sem_seg = PixelData(data=label)
        sample.set_metainfo(dict(img_shape=(size, size),
                                 ori_shape=(size, size),
                                 pad_shape=(size, size)))
        out.append(sample)
    return out


@pytest.mark.parametrize('head_type', HEADS)
def test_training_uses_every_exit_and_every_token(head_type):
    torch.manual_seed(0)
    model = small_dtop(head_type=head_type)
    model.train()
    losses = model.loss(torch.randn(2, 3, 64, 64), samples(2))
    terms = (('loss_cls', 'loss_mask', 'loss_dice')
             if head_type == 'ATMHead' else ('loss_ce', ))
    for prefix in ('decode', 'aux_0', 'aux_1'):
        for term in terms:
            assert torch.isfinite(losses[f'{prefix}.{term}'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    heads = [model.decode_head, *model.auxiliary_head]
    for head in heads:
        first = next(p for p in head.parameters() if p.dim() == 2)
        assert first.grad.abs().sum() > 0
    assert model.backbone.layers[0].attn.attn.in_proj_weight.grad.abs(
    ).sum() > 0


def test_auxiliary_heads_get_their_own_init():
    model = small_dtop()
    for head in model.auxiliary_head:
        # ATMHead.init_weights: truncated normal (std 0.02) on linears
        assert head.input_proj.weight.std() < 0.03
        assert float(head.input_proj.bias.detach().abs().max()) == 0


def test_embedding_and_stages_match_the_vit_forward():
    torch.manual_seed(0)
    model = small_dtop(with_cls_token=True, final_norm=True,
                       out_indices=[1, 3, 5])
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model.backbone(x)
        seq, (h, w) = model.embed_tokens(x)
        for i, layer in enumerate(model.backbone.layers):
            seq = layer(seq)
        seq = model.backbone.norm1(seq)
    last = seq[:, 1:].transpose(1, 2).reshape(1, -1, h, w)
    assert torch.allclose(last, expected[-1], atol=1e-6)


def predict_both(model, inputs, batch):
    metas = samples(batch)
    model.eval()
    with torch.no_grad():
        model.pruning['enabled'] = False
        off = model.predict(inputs, metas)
        off_stats = model.prune_stats
        model.pruning['enabled'] = True
        on = model.predict(inputs, samples(batch))
        on_stats = model.prune_stats
    return off, off_stats, on, on_stats


@pytest.mark.parametrize('head_type', HEADS)
def test_threshold_one_is_identical_to_no_pruning(head_type):
    torch.manual_seed(0)
    model = small_dtop(threshold=1.0, head_type=head_type)
    inputs = torch.randn(2, 3, 64, 64)
    off, off_stats, on, on_stats = predict_both(model, inputs, 2)
    for a, b in zip(off, on):
        assert torch.allclose(a.seg_logits.data, b.seg_logits.data,
                              atol=1e-6)
        assert torch.equal(a.pred_sem_seg.data, b.pred_sem_seg.data)
    assert on_stats['exited_per_stage'] == [0, 0]
    assert sum(on_stats['tokens_per_block']) == sum(
        off_stats['tokens_per_block']) == 2 * 64 * 6


@pytest.mark.parametrize('head_type', HEADS)
def test_pruning_removes_tokens_and_flops(head_type):
    torch.manual_seed(0)
    # threshold 0: every token is "easy" at the first exit, so all but the
    # top-2 per predicted class leave the sequence
    model = small_dtop(threshold=0.0, head_type=head_type)
    inputs = torch.randn(1, 3, 64, 64)
    off, off_stats, on, on_stats = predict_both(model, inputs, 1)
    per_block = on_stats['tokens_per_block']
    assert per_block[:2] == [64, 64]
    assert max(per_block[2:]) <= 2 * NUM_CLASSES < 64
    assert on_stats['exited_per_stage'][0] >= 64 - 2 * NUM_CLASSES
    assert sum(per_block) < sum(off_stats['tokens_per_block'])
    assert on[0].seg_logits.data.shape == off[0].seg_logits.data.shape

    def flops(enabled):
        model.pruning['enabled'] = enabled
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model.predict(inputs, samples(1))
        return counter.get_total_flops()

    # the two extra exit heads cost less than the four pruned blocks save
    assert flops(True) < flops(False)


def test_batched_pruning_equals_one_image_at_a_time():
    torch.manual_seed(0)
    model = small_dtop(threshold=0.3)
    model.eval()
    inputs = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        both = model.pruned_scores(inputs)
        single = torch.cat([model.pruned_scores(x[None]) for x in inputs])
    assert torch.allclose(both, single, atol=1e-6)


def test_bad_stage_layouts_name_the_key():
    init_default_scope('mmseg')
    base = small_dtop()
    with pytest.raises(ValueError, match=r'auxiliary_head\[1\].in_index=0'):
        MODELS.build(dict(
            type='densekit.DToPEncoderDecoder',
            backbone=dict(type='VisionTransformer', img_size=(64, 64),
                          patch_size=8, embed_dims=48, num_layers=6,
                          num_heads=4, out_indices=[1, 3, 5]),
            decode_head=dict(type='densekit.ATMHead', in_channels=48,
                             channels=32, num_heads=4, num_classes=5, in_index=2),
            auxiliary_head=[
                dict(type='densekit.ATMHead', in_channels=48, channels=32,
                     num_heads=4, num_classes=5, in_index=0)
            ] * 2))
    with pytest.raises(ValueError, match='one auxiliary head per early exit'):
        MODELS.build(dict(
            type='densekit.DToPEncoderDecoder',
            backbone=dict(type='VisionTransformer', img_size=(64, 64),
                          patch_size=8, embed_dims=48, num_layers=6,
                          num_heads=4, out_indices=[1, 3, 5]),
            decode_head=dict(type='densekit.ATMHead', in_channels=48,
                             channels=32, num_heads=4, num_classes=5, in_index=1),
            auxiliary_head=[dict(type='densekit.ATMHead', in_channels=48,
                                 channels=32, num_heads=4, num_classes=5, in_index=0)]))
    with pytest.raises(ValueError, match='model.pruning: unknown keys'):
        base._check_pruning_cfg(dict(thresh=0.9))
    with pytest.raises(ValueError, match='threshold: 3 values for 2 early'):
        base._check_pruning_cfg(dict(threshold=[0.9, 0.9, 0.9]))
    with pytest.raises(TypeError, match='needs a plain ViT backbone'):
        MODELS.build(dict(
            type='densekit.DToPEncoderDecoder',
            backbone=dict(type='ResNetV1c', depth=18, out_indices=(1, 2, 3)),
            decode_head=dict(type='densekit.ATMHead', in_channels=512,
                             channels=32, num_heads=4, num_classes=5,
                             in_index=2),
            auxiliary_head=[
                dict(type='densekit.ATMHead', in_channels=c, channels=32,
                     num_heads=4, num_classes=5, in_index=i)
                for i, c in enumerate((128, 256))]))


# -- configs ----------------------------------------------------------------
def official_dtop_params(embed, layers, tokens, classes=150, ch=384,
                         head_layers=3, exits=3):
    """Parameter count of the official DToP config (ViT + PruneHeads),
    written out from its modules: mmseg ViT (patch conv, cls token, pos
    table, blocks) and per exit head input_proj, proj_norm, 3 x
    TransformerDecoderLayer (self-attention, q/k/v/proj cross-attention,
    FFN x4, 3 norms), class queries and the 2-way class_embed."""
    # patch conv without bias (mmseg's PatchEmbed in ViT), cls token, pos
    vit = 3 * 16 * 16 * embed + embed + (tokens + 1) * embed
    block = 2 * 2 * embed + (3 * embed * embed + 3 * embed) + (
        embed * embed + embed) + (embed * 4 * embed + 4 * embed) + (
            4 * embed * embed + embed)
    vit += layers * block
    decoder_layer = (4 * ch * ch + 4 * ch) + 4 * (ch * ch + ch) + (
        ch * 4 * ch + 4 * ch) + (4 * ch * ch + ch) + 3 * 2 * ch
    head = (embed * ch + ch) + 2 * ch + head_layers * decoder_layer + \
        classes * ch + (ch * 2 + 2)
    return vit + exits * head


@pytest.mark.parametrize('name,embed', [('dtop_vit-b16_ade20k-512x512', 768),
                                        ('dtop_vit-s16_ade20k-512x512', 384)])
def test_dtop_ade20k_configs_match_the_official_size(name, embed):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'seg', f'{name}.py'))
    init_default_scope(cfg.default_scope)
    assert cfg.model.backbone.out_indices == [5, 7, 11]
    assert cfg.model.pruning == dict(enabled=True, threshold=0.9,
                                     keep_topk=5)
    model = MODELS.build(cfg.model)
    params = sum(p.numel() for p in model.parameters())
    assert params == official_dtop_params(embed, 12, (512 // 16)**2)
    if embed == 768:  # ViT-B: 86.4M backbone + 3 x 7.45M heads
        assert abs(params / 1e6 - 108.79) < 0.01


@pytest.mark.parametrize('name', ['dtop_vit-t-p8_shapes',
                                  'dtop-setr_vit-t-p8_shapes',
                                  'dtop-setr_convvit-t_shapes'])
def test_dtop_shapes_config_builds_and_predicts(name):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'seg', f'{name}.py'))
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    model.eval()
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, 192, 192), samples(1, 192))
    assert out[0].pred_sem_seg.data.shape == (1, 192, 192)
    assert model.prune_stats['tokens'] == 24 * 24


def test_conv_stem_vit_is_a_plain_vit_with_a_conv_stem():
    init_default_scope('mmseg')
    vit = MODELS.build(dict(type='densekit.ConvStemViT', img_size=(64, 64),
                            patch_size=8, embed_dims=32, num_layers=2,
                            num_heads=2, stem_channels=(8, 16, 32),
                            out_indices=[0, 1], with_cls_token=False))
    vit.init_weights()
    vit.eval()
    feats = vit(torch.randn(1, 3, 70, 45))  # not multiples of 8
    assert [tuple(f.shape) for f in feats] == [(1, 32, 9, 6)] * 2
    assert vit.patch_embed.token_grid((70, 45)) == (9, 6)
    with pytest.raises(ValueError, match='one stem channel per halving'):
        MODELS.build(dict(type='densekit.ConvStemViT', patch_size=8,
                          embed_dims=32, num_layers=1, num_heads=2,
                          stem_channels=(8, 16)))

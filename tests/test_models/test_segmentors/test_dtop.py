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
def test_atm_loss_prefers_the_right_masks_and_handles_255():
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
    # with ignore_mode='exclude' what the network predicts under ignored
    # pixels does not matter; officially they are background
    flipped = good_masks.clone()
    flipped[..., :2, :] *= -1
    excluding = ATMLoss(ignore_mode='exclude')
    again = excluding(present[None], flipped, label)
    for key in good:
        assert torch.allclose(excluding(present[None], good_masks, label)[key],
                              again[key])
    # officially an ignored pixel predicted as every class costs more
    everything = good_masks.clone()
    everything[..., :2, :] = 8.0
    assert loss(present[None], everything, label)['loss_mask'] > \
        good['loss_mask']


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
                             channels=32, num_heads=4, num_classes=5,
                             in_index=2),
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
                             channels=32, num_heads=4, num_classes=5,
                             in_index=1),
            auxiliary_head=[dict(type='densekit.ATMHead', in_channels=48,
                                 channels=32, num_heads=4, num_classes=5,
                                 in_index=0)]))
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
    # patch conv with its bias (the official vit.py builds mmseg's
    # PatchEmbed with its default bias=True), cls token, pos table
    vit = 3 * 16 * 16 * embed + embed + embed + (tokens + 1) * embed
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
    assert cfg.model.pruning == dict(enabled=True, train=False,
                                     threshold=0.9, keep_topk=5)
    model = MODELS.build(cfg.model)
    params = sum(p.numel() for p in model.parameters())
    assert params == official_dtop_params(embed, 12, (512 // 16)**2)
    # the patch-embedding bias of pretrained ViTs is a parameter
    assert model.backbone.patch_embed.projection.bias is not None
    if embed == 768:  # the official ViT-B DToP ADE20K build
        assert params == 108_795_654


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


# -- fidelity: the official pruned forward, restated -------------------------
def official_pruned_forward(model, inputs, thresh, topk):
    """zbwxp/Dynamic-Token-Pruning's pruned forward, restated from
    ``backbone/vit_prune.py`` (``ViT_prune.forward``), ``backbone/vit.py``
    (``TransformerEncoderLayer.forward(x, batch_idx)``: exited tokens are
    zeroed and skipped) and ``decode_heads/prune_head.py``
    (``PruneHead.forward(inference=True)``: the canvas keeps the earlier
    heads' mask logits for exited tokens; ``pred`` is this head's class
    presence times the sigmoid of the canvas; the top-``topk`` confident
    tokens of each class stay). The heads' decoder (``per_img_forward``)
    is the model's ``forward_tokens``. Returns every head's
    ``(pred_logits, canvas, pred)`` and the final exited-token mask."""
    vit = model.backbone
    x, (h, w) = vit.patch_embed(inputs)
    B, hw = x.shape[0], h * w
    x = torch.cat((vit.cls_token.expand(B, -1, -1), x), dim=1)
    x = vit._pos_embeding(x, (h, w), vit.pos_embed)[:, 1:]  # no cls token
    heads = list(model.auxiliary_head) + [model.decode_head]
    K = model.decode_head.num_classes
    batch_idx = torch.zeros(B, hw, dtype=torch.bool)
    canvas = torch.zeros(B, K, hw, dtype=x.dtype)
    results = []
    for i, layer in enumerate(vit.layers):
        if batch_idx.sum() == 0:
            x = layer(x)
        else:
            out = []
            for x_, b_id in zip(x, batch_idx):
                x_ = x_[None]
                x_new = torch.zeros_like(x_)
                x_new[:, ~b_id] = layer(x_[:, ~b_id])
                out.append(x_new)
            x = torch.cat(out)
        if i not in vit.out_indices:
            continue
        idx = list(vit.out_indices).index(i)
        head = heads[idx]
        head_thresh = 1.0 if idx == len(heads) - 1 else thresh
        canvas_copy = canvas.clone()
        if batch_idx.sum():
            cls, pred = [], []
            for b in range(B):
                cls_, attn_ = head.forward_tokens(x[b][~batch_idx[b]][None])
                cls.append(cls_)
                pred.append((cls_.softmax(-1)[..., :-1] * attn_.sigmoid())[0])
                canvas_copy[b][:, ~batch_idx[b]] = attn_[0]
            cls = torch.cat(cls)
            final_pred = cls.softmax(-1)[..., :-1] * canvas_copy.sigmoid()
        else:
            cls, attn = head.forward_tokens(x)
            pred = cls.softmax(-1)[..., :-1] * attn.sigmoid()
            canvas_copy = attn
            final_pred = pred
        results.append((cls, canvas_copy, final_pred))
        canvas = canvas_copy
        if head_thresh == 1:
            continue
        for b, pred_ in enumerate(pred):
            val, ind = pred_.max(dim=0)
            pos = val > head_thresh
            for per_cls in ind[pos].unique():
                per_cls_topk = int((ind[pos] == per_cls).sum().clamp_max(topk))
                _, topk_idx = val[pos][ind[pos] == per_cls].topk(per_cls_topk)
                ind_idx = pos.nonzero()[ind[pos] == per_cls]
                pos[ind_idx[topk_idx]] = False
            pos_true = torch.zeros_like(batch_idx[b])
            pos_true[~batch_idx[b]] = pos
            batch_idx[b] = batch_idx[b] | pos_true
    return results, batch_idx


def random_float64_dtop(threshold):
    torch.manual_seed(0)
    model = small_dtop(threshold=threshold).double().eval()
    with torch.no_grad():
        # non-degenerate: the heads' 0.02-std init gives near-constant
        # scores; unit-gain linears, random biases and queries instead
        for head in model._exit_heads():
            for m in head.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.normal_(0, 1.5 / m.in_features**0.5)
            head.queries.weight.normal_(0, 1.0)
        for name, p in model.named_parameters():
            if name.endswith('bias'):
                p.normal_(0, 0.2)
    return model


@pytest.mark.parametrize('threshold', [0.4, 0.6])
def test_pruned_inference_equals_the_official_composition(threshold):
    model = random_float64_dtop(threshold)
    inputs = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        official, exited = official_pruned_forward(model, inputs, threshold,
                                                   topk=2)
        per_head, exit_stage = model.pruned_forward(inputs)
        scores = model.pruned_scores(inputs)
    assert model.prune_stats['exited_per_stage'][0] > 0  # tokens did exit
    assert torch.equal(exit_stage.flatten(1) < 2, exited)
    diffs = []
    for (cls, canvas, _), ((presence, ), ours) in zip(official, per_head):
        diffs.append(float((cls - presence).abs().max()))
        diffs.append(float((canvas - ours.flatten(2)).abs().max()))
    final = official[-1][2].view_as(scores)
    diffs.append(float((final - scores).abs().max()))
    print(f'DToP pruned forward vs official (float64, threshold '
          f'{threshold}, {int(exited.sum())} exited): max abs diff '
          f'{max(diffs):.2e}')
    assert max(diffs) < 1e-10


def test_exited_tokens_take_the_final_heads_class_presence():
    model = random_float64_dtop(0.25)
    inputs = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        per_head, exit_stage = model.pruned_forward(inputs)
        scores = model.pruned_scores(inputs).flatten(2)[0]
        exited = exit_stage.flatten() == 0
        assert exited.any()
        # the final head's presence x sigmoid(the exit head's mask logits)
        (final_presence, ), _ = per_head[-1]
        (exit_presence, ), exit_canvas = per_head[0]
        expected = final_presence[0].softmax(-1)[:, :1] * \
            exit_canvas.flatten(2)[0].sigmoid()
        assert torch.allclose(scores[:, exited], expected[:, exited],
                              rtol=1e-12, atol=0)
        # and not the exit head's own presence
        own = exit_presence[0].softmax(-1)[:, :1] * \
            exit_canvas.flatten(2)[0].sigmoid()
        assert (own[:, exited] - scores[:, exited]).abs().max() > 1e-3
        # the named option keeps the exit head's whole score
        model.pruning['exited_scores'] = 'exit_head'
        kept = model.pruned_scores(inputs).flatten(2)[0]
        assert torch.allclose(kept[:, exited], own[:, exited], rtol=1e-12,
                              atol=0)
        assert torch.equal(kept[:, ~exited], scores[:, ~exited])
    with pytest.raises(ValueError, match='exited_scores'):
        model._check_pruning_cfg(dict(exited_scores='mean'))


def zero_dropout(model):
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        elif isinstance(m, torch.nn.MultiheadAttention):
            m.dropout = 0.0  # a float, not a Dropout module
    return model


def test_pruning_aware_training_at_threshold_one_is_plain_training():
    torch.manual_seed(0)
    model = zero_dropout(small_dtop(threshold=1.0))
    model.train()
    inputs, data = torch.randn(2, 3, 64, 64), samples(2)
    plain = model.loss(inputs, data)
    model.pruning['train'] = True
    pruned = model.loss(inputs, data)
    assert set(plain) == set(pruned)
    for key in plain:
        assert torch.allclose(plain[key], pruned[key], rtol=1e-5,
                              atol=1e-6), key


def test_pruning_aware_training_prunes_and_trains_every_head():
    model = random_float64_dtop(0.25)
    zero_dropout(model).train()
    model.pruning['train'] = True
    inputs = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    data = samples(2)
    losses = model.loss(inputs, data)
    assert model.prune_stats['exited_per_stage'][0] > 0
    assert sum(model.prune_stats['tokens_per_block']) < 2 * 64 * 6
    # each head's loss is the ATM loss on its official canvas
    official, _ = official_pruned_forward(model, inputs, 0.25, topk=2)
    label = torch.stack([d.gt_sem_seg.data[0] for d in data])
    for prefix, head, (cls, canvas, _) in zip(
            ('aux_0', 'aux_1', 'decode'), model._exit_heads(), official):
        expected = head.loss_decode(cls, canvas.view(2, -1, 8, 8), label,
                                    ignore_index=head.ignore_index)
        for term, value in expected.items():
            assert torch.allclose(losses[f'{prefix}.{term}'], value,
                                  rtol=1e-10), (prefix, term)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    for head in model._exit_heads():
        assert head.input_proj.weight.grad.abs().sum() > 0
    assert model.backbone.layers[-1].ffn.layers[0][0].weight.grad.abs(
    ).sum() > 0


def official_atm_loss(cls_logits, mask_logits, label, ignore_index=255,
                      eos_coef=0.1, weights=(1.0, 20.0, 1.0)):
    """The official ATMLoss + SetCriterion (``loss/atm_loss.py``,
    ``loss/criterion.py``): query k is class k; presence CE with the
    no-object class weighted ``eos_coef``; sigmoid focal and Dice mask
    losses over ALL pixels against ``label == cls`` (ignored pixels are
    background), normalised by the number of masks."""
    import torch.nn.functional as F
    indices, masks = [], []
    for lab in label:
        gt_cls = lab.unique()
        gt_cls = gt_cls[gt_cls != ignore_index]
        indices.append(gt_cls)
        masks.append(torch.stack([lab == c for c in gt_cls]))
    num_masks = max(sum(len(i) for i in indices), 1)
    target_classes = torch.full(cls_logits.shape[:2], 1, dtype=torch.long)
    for b, gt_cls in enumerate(indices):
        target_classes[b, gt_cls] = 0
    # SetCriterion.empty_weight: a float32 buffer (torch.ones, then eos)
    empty_weight = torch.ones(2)
    empty_weight[-1] = eos_coef
    loss_ce = F.cross_entropy(cls_logits.transpose(1, 2), target_classes,
                              empty_weight.to(cls_logits.dtype))
    src = torch.cat([mask_logits[b, gt_cls] for b, gt_cls in
                     enumerate(indices)])
    tgt = torch.cat(masks).to(src.dtype).flatten(1)
    src = F.interpolate(src[:, None], size=label.shape[-2:],
                        mode='bilinear', align_corners=False)[:, 0].flatten(1)
    prob = src.sigmoid()
    ce = F.binary_cross_entropy_with_logits(src, tgt, reduction='none')
    p_t = prob * tgt + (1 - prob) * (1 - tgt)
    focal = (0.25 * tgt + 0.75 * (1 - tgt)) * ce * (1 - p_t)**2
    loss_mask = focal.mean(1).sum() / num_masks
    dice = 1 - (2 * (prob * tgt).sum(-1) + 1) / (prob.sum(-1) + tgt.sum(-1)
                                                 + 1)
    loss_dice = dice.sum() / num_masks
    return dict(loss_cls=loss_ce * weights[0],
                loss_mask=loss_mask * weights[1],
                loss_dice=loss_dice * weights[2])


def test_atm_loss_equals_the_official_criterion():
    gen = torch.Generator().manual_seed(0)
    label = torch.randint(0, NUM_CLASSES, (2, 24, 24), generator=gen)
    label[0, label[0] == 3] = 1  # image 0 lacks class 3
    label[:, :3] = 255  # ignored rows (counted as background officially)
    cls_logits = torch.randn(2, NUM_CLASSES, 2, generator=gen,
                             dtype=torch.float64)
    mask_logits = torch.randn(2, NUM_CLASSES, 6, 6, generator=gen,
                              dtype=torch.float64)
    ours = ATMLoss()(cls_logits, mask_logits, label)
    ref = official_atm_loss(cls_logits, mask_logits, label)
    diff = max(float((ours[k] - ref[k]).abs().max()) for k in ref)
    print(f'ATMLoss vs official criterion (float64): max abs diff {diff:.2e}')
    assert diff < 1e-12
    excluded = ATMLoss(ignore_mode='exclude')(cls_logits, mask_logits, label)
    assert not torch.allclose(excluded['loss_mask'], ours['loss_mask'])
    with pytest.raises(ValueError, match='ignore_mode'):
        ATMLoss(ignore_mode='skip')


def test_prune_finetune_config_is_the_official_second_stage():
    cfg = Config.fromfile(osp.join(
        ROOT, 'configs', 'seg', 'dtop_vit-b16_ade20k-512x512_prune-ft40k.py'))
    base = Config.fromfile(osp.join(
        ROOT, 'configs', 'seg', 'dtop_vit-b16_ade20k-512x512.py'))
    assert base.model.pruning.train is False
    assert cfg.model.pruning.train is True
    assert cfg.model.pruning.threshold == 0.9
    assert cfg.load_from.endswith(
        'dtop_vit-b16_ade20k-512x512/iter_160000.pth')
    assert cfg.train_cfg.max_iters == 40000
    assert cfg.param_scheduler[-1].end == 40000
    # the official run has no effective gradient clipping
    for c in (cfg, base):
        assert c.optim_wrapper.get('clip_grad') is None
        assert c.model.backbone.patch_bias is True

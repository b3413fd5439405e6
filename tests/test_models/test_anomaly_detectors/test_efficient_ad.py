"""EfficientAD: the PDN-S/M and autoencoder layer specs of the paper, the
losses against direct formulas, the statistics against nelson1425's
two-pass computation, inference outputs and the bad-input errors."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

import densekit.models  # noqa: F401  (registers)
from densekit.models.anomaly_detectors.efficient_ad import (
    EfficientAD, _quantile, hard_feature_loss, postprocess_maps,
    random_color_augment)
from densekit.models.layers.patch_description_network import (
    EfficientADAutoencoder, PatchDescriptionNetwork)
from densekit.registry import MODELS

# (out, in, k, k) of every conv, from the paper's Tables 6-8 (== nelson1425
# common.py get_pdn_small / get_pdn_medium / get_autoencoder)
PDN_S_SHAPES = [(128, 3, 4, 4), (256, 128, 4, 4), (256, 256, 3, 3),
                (384, 256, 4, 4)]
PDN_M_SHAPES = [(256, 3, 4, 4), (512, 256, 4, 4), (512, 512, 1, 1),
                (512, 512, 3, 3), (384, 512, 4, 4), (384, 384, 1, 1)]
AE_ENCODER = [(32, 3, 4, 4), (32, 32, 4, 4), (64, 32, 4, 4), (64, 64, 4, 4),
              (64, 64, 4, 4), (64, 64, 8, 8)]
AE_DECODER = [(64, 64, 4, 4)] * 6 + [(64, 64, 3, 3), (384, 64, 3, 3)]


def conv_shapes(module):
    return [tuple(m.weight.shape) for m in module.modules()
            if isinstance(m, torch.nn.Conv2d)]


def test_pdn_layer_specs_match_the_paper():
    assert conv_shapes(PatchDescriptionNetwork('S', 384)) == PDN_S_SHAPES
    assert conv_shapes(PatchDescriptionNetwork('M', 384)) == PDN_M_SHAPES
    student = PatchDescriptionNetwork('S', 768)
    assert conv_shapes(student)[-1] == (768, 256, 4, 4)
    ae = EfficientADAutoencoder(384)
    assert conv_shapes(ae.encoder) == AE_ENCODER
    assert conv_shapes(ae.decoder) == AE_DECODER
    # strides / paddings: unpadded PDN, stride-2 padded AE encoder
    assert all(c.padding == (0, 0) for c in PatchDescriptionNetwork(
        'S').modules() if isinstance(c, torch.nn.Conv2d))
    assert ae.encoder.enconv1.stride == (2, 2)
    assert ae.encoder.enconv1.padding == (1, 1)


def test_parameter_counts():
    s = EfficientAD('S', allow_random_teacher=True)
    m = EfficientAD('M', allow_random_teacher=True)

    def count(module):
        return sum(p.numel() for p in module.parameters())

    # sums of the spec shapes (+ biases)
    def spec_count(shapes):
        return sum(o * i * k1 * k2 + o for o, i, k1, k2 in shapes)

    assert count(s.teacher) == spec_count(PDN_S_SHAPES)
    assert count(m.teacher) == spec_count(PDN_M_SHAPES)
    assert count(s.autoencoder) == spec_count(AE_ENCODER + AE_DECODER)
    assert count(s.teacher) == 2_694_144
    assert count(m.teacher) == 8_026_624
    assert count(s) == 8_057_856


@pytest.mark.parametrize('size', ['S', 'M'])
def test_output_sizes_patch_33(size):
    pdn = PatchDescriptionNetwork(size, 384).eval()
    with torch.no_grad():
        assert pdn(torch.rand(1, 3, 256, 256)).shape == (1, 384, 56, 56)
        # receptive field 33: a 33x33 input gives one feature vector
        assert pdn(torch.rand(1, 3, 33, 33)).shape == (1, 384, 1, 1)
    assert PatchDescriptionNetwork.output_size(256) == 56
    ae = EfficientADAutoencoder(384).eval()
    assert ae.decoder_sizes((256, 256)) == ((3, 3), (8, 8), (15, 15),
                                            (32, 32), (63, 63), (127, 127),
                                            (56, 56))
    with torch.no_grad():
        assert ae(torch.rand(1, 3, 256, 320)).shape == (1, 384, 56, 72)
    with pytest.raises(ValueError, match='at least 256x256'):
        ae(torch.rand(1, 3, 128, 128))


def test_hard_feature_loss_is_mean_above_quantile():
    d = torch.rand(1, 384, 20, 20)
    q = torch.quantile(d.flatten(), 0.999)
    expected = d[d >= q].mean()
    torch.testing.assert_close(hard_feature_loss(d, 0.999), expected)
    # the exact sort-based quantile beyond torch's limit agrees with torch
    x = torch.randn(5000)
    torch.testing.assert_close(
        _quantile(x, [0.9, 0.995]), torch.quantile(x, torch.tensor([0.9,
                                                                     0.995])))


def test_color_augment_is_one_of_three_torchvision_adjustments():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(64, 3, 8, 8)
    out = random_color_augment(images, generator=g)
    g = torch.Generator().manual_seed(0)
    factor = torch.empty(64, 1, 1, 1).uniform_(0.8, 1.2, generator=g)
    choice = torch.randint(0, 3, (64, ), generator=g)
    gray = (images * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            ).sum(1, keepdim=True)
    for i in range(64):
        f, img = factor[i], images[i]
        if choice[i] == 0:
            ref = img * f
        elif choice[i] == 1:
            ref = f * img + (1 - f) * gray[i].mean()
        else:
            ref = f * img + (1 - f) * gray[i]
        torch.testing.assert_close(out[i], ref.clamp(0, 1))
    assert set(choice.tolist()) == {0, 1, 2}


def test_losses_match_direct_formulas():
    torch.manual_seed(0)
    model = EfficientAD(allow_random_teacher=True).train()
    x = torch.rand(1, 3, 256, 256)
    sample = BaseDataElement()
    sample.penalty_img = torch.rand(3, 256, 256)
    torch.manual_seed(1)
    losses = model.loss(x, [sample])
    assert set(losses) == {'loss_hard', 'loss_penalty', 'loss_ae',
                           'loss_stae'}
    # recompute with the same augmentation draw, network by network
    torch.manual_seed(1)
    aug = random_color_augment(x)
    model.eval()  # dropout off for a deterministic comparison
    torch.manual_seed(1)
    losses_eval = model.loss(x, [sample])
    norm = model.normalize_inputs
    with torch.no_grad():
        t = model.teacher(norm(x))
        s = model.student(norm(x))
        t_aug = model.teacher(norm(aug))
        s_aug = model.student(norm(aug))
        ae = model.autoencoder(norm(aug))
        s_pen = model.student(norm(sample.penalty_img[None]))
    d = (t - s[:, :384])**2
    torch.testing.assert_close(losses_eval['loss_hard'],
                               d[d >= torch.quantile(d.flatten(),
                                                     0.999)].mean())
    torch.testing.assert_close(losses_eval['loss_penalty'],
                               (s_pen[:, :384]**2).mean())
    torch.testing.assert_close(losses_eval['loss_ae'],
                               ((t_aug - ae)**2).mean())
    torch.testing.assert_close(losses_eval['loss_stae'],
                               ((ae - s_aug[:, 384:])**2).mean())
    # gradients reach student and autoencoder, never the teacher
    model.train()
    sum(model.loss(x, [sample]).values()).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(p.grad is not None for p in model.student.parameters())
    assert all(p.grad is not None for p in model.autoencoder.parameters())
    assert not model.teacher.training


def test_teacher_stats_equal_the_two_pass_reference():
    torch.manual_seed(0)
    model = EfficientAD(allow_random_teacher=True)
    batches = [torch.rand(1, 3, 64, 64) for _ in range(4)]
    model.set_teacher_stats(iter(batches))
    with torch.no_grad():
        outs = [model.teacher(model.normalize_inputs(b)) for b in batches]
    mean = torch.stack([o.mean(dim=(0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack([((o - mean[None, :, None, None])**2).mean(
        dim=(0, 2, 3)) for o in outs]).mean(0)
    torch.testing.assert_close(model.teacher_mean.flatten(), mean,
                               rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(model.teacher_std.flatten(), var.sqrt(),
                               rtol=1e-4, atol=1e-6)
    assert bool(model.has_teacher_stats)
    with torch.no_grad():
        normalized = model.teacher_features(model.normalize_inputs(
            batches[0]))
    torch.testing.assert_close(normalized,
                               (outs[0] - mean[None, :, None, None]) /
                               var.sqrt()[None, :, None, None],
                               rtol=1e-3, atol=1e-4)


def test_map_quantiles_and_prediction():
    torch.manual_seed(0)
    model = EfficientAD(allow_random_teacher=True)
    batches = [torch.rand(1, 3, 256, 256) for _ in range(2)]
    model.set_teacher_stats(batches)
    q = model.set_map_quantiles(batches)
    with torch.no_grad():
        raw = [model.raw_maps(model.normalize_inputs(b)) for b in batches]
    st = torch.cat([r[0].flatten() for r in raw])
    ae = torch.cat([r[1].flatten() for r in raw])
    torch.testing.assert_close(q[:2], torch.quantile(st, torch.tensor(
        [0.9, 0.995])))
    torch.testing.assert_close(q[2:], torch.quantile(ae, torch.tensor(
        [0.9, 0.995])))
    model.eval()
    samples = [BaseDataElement(metainfo=dict(ori_shape=(300, 200))),
               BaseDataElement(metainfo=dict(ori_shape=(256, 256)))]
    out = model.predict(torch.cat(batches), samples)
    assert out[0].anomaly_map.shape == (300, 200)
    assert out[1].anomaly_map.shape == (256, 256)
    combined, map_st, map_ae = model._forward(torch.cat(batches))
    assert combined.shape == (2, 1, 64, 64)  # 56 + 2 x 4 padding
    # the score is the maximum of the map resized to the image (as
    # nelson1425's and anomalib's; it was the 64x64 map's maximum before)
    resized = F.interpolate(combined[:1], size=(300, 200), mode='bilinear')
    torch.testing.assert_close(out[0].anomaly_map, resized[0, 0])
    torch.testing.assert_close(out[0].pred_score, resized.amax())
    torch.testing.assert_close(out[1].pred_score, F.interpolate(
        combined[1:], size=(256, 256), mode='bilinear').amax())
    # normalised maps: 0.9 quantile -> 0, 0.995 -> 0.1 (local map, inside)
    inner = map_st[:, :, 4:-4, 4:-4].flatten()
    assert abs(float(torch.quantile(inner, 0.9))) < 1e-4
    assert float(torch.quantile(inner, 0.995)) == pytest.approx(0.1,
                                                                abs=1e-4)
    torch.testing.assert_close(combined, 0.5 * map_st + 0.5 * map_ae)
    model.test_cfg['score_threshold'] = float(out[0].pred_score)
    # (the same ori_shape as out[0]: the score is taken at the image size)
    labelled = model.predict(batches[0], [BaseDataElement(metainfo=dict(
        ori_shape=(300, 200)))])
    assert int(labelled[0].pred_label) == 1


def test_postprocess_maps_orders():
    """Hand-checkable: a 2x2 raw map of 1s with quantiles qa = 0.5,
    qb = 1.5, so 1 -> 0.05 and the padding's 0 -> -0.05."""
    raw = torch.ones(1, 1, 2, 2)
    q = torch.tensor([0.5, 1.5, 0.5, 1.5])
    combined, map_st, map_ae = postprocess_maps(raw, 2 * raw, q)
    assert combined.shape == map_st.shape == (1, 1, 10, 10)
    # nelson1425: normalise (0.05 and 0.15), average (0.1), pad with 0
    torch.testing.assert_close(combined[0, 0, 4:6, 4:6],
                               torch.full((2, 2), 0.1))
    assert float(combined[0, 0, 0, 0]) == 0
    assert float(map_ae[0, 0, 5, 5]) == pytest.approx(0.15)
    # anomalib: pad the raw maps with 0, resize to the input, normalise:
    # the border is (0 - 0.5) * 0.1 and the image is 20x20
    combined, map_st, _ = postprocess_maps(raw, 2 * raw, q, order='anomalib',
                                           image_size=(20, 20))
    assert combined.shape == (1, 1, 20, 20)
    assert float(map_st[0, 0, 0, 0]) == pytest.approx(-0.05)
    assert float(combined[0, 0, 0, 0]) == pytest.approx(-0.05)
    assert float(combined[0, 0, 9:11, 9:11].max()) == pytest.approx(0.1)
    # without padding the orders agree (bilinear resizing is affine)
    st, ae = torch.rand(1, 1, 3, 3), torch.rand(1, 1, 3, 3)
    nelson = postprocess_maps(st, ae, q, pad=False)[0]
    anomalib = postprocess_maps(st, ae, q, order='anomalib', pad=False,
                                image_size=(7, 8))[0]
    torch.testing.assert_close(anomalib, F.interpolate(
        nelson, size=(7, 8), mode='bilinear'))
    with pytest.raises(ValueError, match="order must be one of "
                       r"\('nelson1425', 'anomalib'\), got 'paper'"):
        postprocess_maps(raw, raw, q, order='paper')
    with pytest.raises(ValueError, match='needs image_size'):
        postprocess_maps(raw, raw, q, order='anomalib')


def test_map_postprocess_option():
    nelson = EfficientAD(allow_random_teacher=True).eval()
    assert nelson.map_postprocess == 'nelson1425' and nelson.pad_maps
    # nelson1425's order pads only unpadded PDNs' maps, anomalib always
    assert not EfficientAD(padding=True, allow_random_teacher=True).pad_maps
    padded = EfficientAD(padding=True, map_postprocess='anomalib',
                         allow_random_teacher=True).eval()
    assert padded.pad_maps
    assert not EfficientAD(padding=True, pad_maps=False,
                           map_postprocess='anomalib').pad_maps
    with pytest.raises(ValueError, match="map_postprocess must be one of "
                       r"\('nelson1425', 'anomalib'\), got 'anomalib2'"):
        EfficientAD(map_postprocess='anomalib2')
    torch.manual_seed(0)
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        combined, map_st, map_ae = padded._forward(x)
        raw_st, raw_ae = padded.raw_maps(padded.normalize_inputs(x))
        sample = padded.predict(x, [BaseDataElement(
            metainfo=dict(ori_shape=(300, 320)))])[0]
    # anomalib, padding=True: 64x64 maps, padded to 72, resized to 256
    assert raw_st.shape == (1, 1, 64, 64)
    assert combined.shape == map_st.shape == (1, 1, 256, 256)
    torch.testing.assert_close(map_st, F.interpolate(
        F.pad(raw_st, (4, 4, 4, 4)), size=(256, 256), mode='bilinear'))
    # the score is the input-size map's maximum, the map resized further
    torch.testing.assert_close(sample.pred_score, combined.amax())
    assert sample.anomaly_map.shape == (300, 320)


def test_bad_input_and_warnings():
    with pytest.raises(ValueError, match='teacher_checkpoint'):
        EfficientAD().init_weights()
    with pytest.raises(ValueError, match="size must be one of"):
        PatchDescriptionNetwork('L')
    with pytest.raises(ValueError, match='map_quantiles'):
        EfficientAD(map_quantiles=(0.99, 0.9))
    model = EfficientAD(allow_random_teacher=True).train()
    x = torch.rand(2, 3, 256, 256)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        losses = model.loss(x, [BaseDataElement(), BaseDataElement()])
    text = ' '.join(str(w.message) for w in caught)
    assert 'batch size 2' in text and 'published recipe uses batch size 1' \
        in text
    assert 'no penalty images' in text
    assert 'loss_penalty' not in losses
    with pytest.raises(RuntimeError, match='invalid mode'):
        model(x, mode='nope')


def test_registry_and_teacher_stays_eval():
    model = MODELS.build(dict(type='densekit.EfficientAD', model_size='M',
                              allow_random_teacher=True))
    assert isinstance(model, EfficientAD) and model.model_size == 'M'
    model.train()
    assert model.training and model.student.training
    assert not model.teacher.training
    assert not any(p.requires_grad for p in model.teacher.parameters())
    model.init_weights()  # random teacher allowed: no error


def test_data_preprocessor_scales_inputs_and_penalty():
    model = EfficientAD(allow_random_teacher=True)
    img = torch.randint(0, 256, (3, 256, 256), dtype=torch.uint8)
    sample = BaseDataElement()
    sample.penalty_img = img.clone()
    data = model.data_preprocessor(dict(inputs=[img], data_samples=[sample]),
                                   True)
    expected = img[[2, 1, 0]].float() / 255  # BGR uint8 -> RGB [0, 1]
    torch.testing.assert_close(data['inputs'][0], expected)
    torch.testing.assert_close(data['data_samples'][0].penalty_img, expected)
    assert F.mse_loss(data['inputs'][0], expected) == 0

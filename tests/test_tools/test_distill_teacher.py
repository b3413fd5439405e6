"""tools/anomaly/distill_teacher.py: EfficientAD teacher distillation on a
tiny random ResNet-18 extractor and a handful of generated images."""
import importlib.util
import os.path as osp
import warnings

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import ROOT

# ResNet-18 up to layer3 with 16 base channels: layer2 (32 ch, stride 8)
# and layer3 (64 ch, stride 16), as WideResNet's layer2/layer3
TINY_EXTRACTOR = dict(type='mmdet.ResNet', depth=18, num_stages=3,
                      strides=(1, 2, 2), dilations=(1, 1, 1),
                      out_indices=(1, 2), base_channels=16)
IMG_SIZE, EXTRACTOR_SIZE = 32, 64  # padded PDN: 32 / 4 = 8 = 64 / 8


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'distill_teacher',
        osp.join(ROOT, 'tools', 'anomaly', 'distill_teacher.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield _load_tool()
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def img_dir(tmp_path_factory):
    """ImageNet layout: train/<wnid>/*.JPEG (+ one .png), odd sizes."""
    root = tmp_path_factory.mktemp('imagenet') / 'train'
    rng = np.random.default_rng(0)
    for i in range(6):
        wnid = 'n01440764' if i < 4 else 'n02102040'
        (root / wnid).mkdir(parents=True, exist_ok=True)
        h, w = int(rng.integers(40, 80)), int(rng.integers(40, 80))
        img = cv2.resize(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8),
                         (w, h), interpolation=cv2.INTER_CUBIC)
        name = f'{wnid}_{i}.JPEG' if i != 5 else f'{wnid}_{i}.png'
        cv2.imwrite(str(root / wnid / name), img)
    (root / 'README.txt').write_text('not an image')
    return str(root)


def _args(img_dir, out, iters, *extra):
    return ['--img-dir', img_dir, '--out', str(out), '--random-extractor',
            '--extractor-cfg', repr(TINY_EXTRACTOR), '--img-size',
            str(IMG_SIZE), '--extractor-size', str(EXTRACTOR_SIZE),
            '--batch-size', '2', '--norm-images', '4', '--iters', str(iters),
            '--workers', '0', '--device', 'cpu', '--log-interval', '2',
            '--save-interval', '3', '--seed', '0', *extra]


def _run(tool, argv):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return tool.main(argv)


def _tiny_extractor(tool, **overrides):
    with pytest.warns(UserWarning, match='RANDOM initialisation'):
        return tool.build_extractor(dict(TINY_EXTRACTOR, **overrides),
                                    random_weights=True)


# ----------------------------------------------------------------------
# pure functions
# ----------------------------------------------------------------------
def _reference_aggregation(features, pre_dim, out_dim):
    """The reference's steps one by one (patchify to (B, L, C, 3, 3),
    per-element resize of the coarser map with its permutations, per-layer
    pooling of each flattened patch, stacking and a second pooling)."""
    patches, grids = [], []
    for feat in features:
        b, c, h, w = feat.shape
        unfolded = torch.nn.Unfold(3, padding=1, stride=1)(feat)
        patches.append(unfolded.reshape(b, c, 3, 3, -1).permute(0, 4, 1, 2, 3))
        grids.append((h, w))
    ref_h, ref_w = grids[0]
    for i in range(1, len(patches)):
        x = patches[i]
        x = x.reshape(x.shape[0], grids[i][0], grids[i][1], *x.shape[2:])
        x = x.permute(0, 3, 4, 5, 1, 2)
        base = x.shape
        x = F.interpolate(x.reshape(-1, *x.shape[-2:]).unsqueeze(1),
                          size=(ref_h, ref_w), mode='bilinear',
                          align_corners=False).squeeze(1)
        x = x.reshape(*base[:-2], ref_h, ref_w).permute(0, 4, 5, 1, 2, 3)
        patches[i] = x.reshape(len(x), -1, *x.shape[-3:])
    flat = [x.reshape(-1, *x.shape[-3:]) for x in patches]
    per_layer = [F.adaptive_avg_pool1d(x.reshape(len(x), 1, -1),
                                       pre_dim).squeeze(1) for x in flat]
    stacked = torch.stack(per_layer, dim=1)
    out = F.adaptive_avg_pool1d(stacked.reshape(len(stacked), 1, -1),
                                out_dim).reshape(len(stacked), -1)
    return out.reshape(-1, ref_h, ref_w, out_dim).permute(0, 3, 1, 2)


@pytest.mark.parametrize('channels,pre_dim,out_dim', [
    ((8, 16), 24, 10),  # non-integer pooling ratios (as 512*9 -> 1024)
    ((4, 6), 50, 7),  # pre_dim above C*9 (adaptive pooling repeats)
])
def test_aggregation_matches_reference_steps(tool, channels, pre_dim,
                                             out_dim):
    torch.manual_seed(0)
    features = [torch.randn(2, channels[0], 6, 5),
                torch.randn(2, channels[1], 3, 3)]
    out = tool.aggregate_features(features, pre_dim=pre_dim, out_dim=out_dim)
    expected = _reference_aggregation(features, pre_dim, out_dim)
    print('max abs diff', (out - expected).abs().max().item())
    assert out.shape == (2, out_dim, 6, 5)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_aggregation_hand_checked(tool):
    """One 1-channel map of ones: the 3x3 zero-padded patch means are
    4/9 (corners), 6/9 (edges), 1 (inside), and pooling 9 -> 9 -> 1 keeps
    them."""
    out = tool.aggregate_features([torch.ones(1, 1, 3, 3)], pre_dim=9,
                                  out_dim=1)
    expected = torch.tensor([[4, 6, 4], [6, 9, 6], [4, 6, 4]]) / 9
    torch.testing.assert_close(out[0, 0], expected.float())


def test_feature_normalization_two_passes(tool):
    """Mean over the first ``num_images`` images, std around it over the
    next ones, each the mean of per-batch statistics."""
    batches = [torch.full((2, 1, 2, 2), v) for v in (1., 3., 0., 4., 9.)]
    mean, std, used = tool.feature_normalization(lambda x: x, iter(batches),
                                                 num_images=4)
    assert used == 4  # 2 batches per pass; the 5th is left unread
    assert mean.shape == std.shape == (1, 1, 1, 1)
    assert mean.item() == pytest.approx(2.0)
    assert std.item() == pytest.approx(((4 + 4) / 2)**0.5)
    with pytest.raises(ValueError, match='ran out after 2 of 4'):
        tool.feature_normalization(lambda x: x, iter(batches[:3]), 4)


def test_guard_std_replaces_constant_channels(tool):
    std = torch.tensor([0.5, 0.0, 2.0]).reshape(1, 3, 1, 1)
    with pytest.warns(UserWarning, match='1 of 3 target channels'):
        guarded = tool.guard_std(std)
    assert guarded.flatten().tolist() == [0.5, 1.0, 2.0]


def test_targets_and_train_step(tool):
    """Target grid = the padded PDN's; the loss drops on fixed images with
    the recipe's Adam (lr 1e-4, wd 1e-5)."""
    from densekit.models.layers.patch_description_network import \
        PatchDescriptionNetwork
    torch.manual_seed(0)
    extractor = _tiny_extractor(tool)
    dataset = tool.DistillImages([], 2, IMG_SIZE, EXTRACTOR_SIZE)
    views = [dataset[(i, (0, ))] for i in range(2)]
    image_fe = torch.stack([v[0] for v in views])
    image_pdn = torch.stack([v[1] for v in views])
    assert image_fe.shape == (2, 3, EXTRACTOR_SIZE, EXTRACTOR_SIZE)
    assert image_pdn.shape == (2, 3, IMG_SIZE, IMG_SIZE)
    targets = tool.extract_targets(extractor, image_fe)
    assert targets.shape == (2, 384, 8, 8) and not targets.requires_grad
    mean, std, _ = tool.feature_normalization(
        lambda x: tool.extract_targets(extractor, x),
        iter([image_fe] * 2), 2)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # dead channels of a random net
        std = tool.guard_std(std)
    targets = tool.normalize_targets(targets, mean, std)
    assert torch.isfinite(targets).all()

    pdn = PatchDescriptionNetwork('S', 384, padding=True)
    optimizer = torch.optim.Adam(pdn.parameters(), lr=1e-4,
                                 weight_decay=1e-5)
    losses = [tool.train_step(pdn, optimizer, image_pdn, targets)
              for _ in range(25)]
    print('losses', [round(x, 3) for x in losses])
    assert np.mean(losses[-5:]) < 0.75 * np.mean(losses[:5])

    # another target grid (e.g. a wrong --extractor-size): a clear error
    with pytest.raises(ValueError, match=r'PDN gives \(2, 384, 8, 8\) but '
                       r'the targets are \(2, 384, 7, 7\)'):
        tool.train_step(pdn, optimizer, image_pdn, targets[..., :7, :7])


def test_batch_stream_is_a_function_of_position(tool):
    """Batch k is the same whether the stream starts at 0 or at k (what
    --resume relies on); each epoch covers every image once."""
    sampler = tool.InfiniteBatchSampler(5, 2, seed=3)
    it = iter(sampler)
    batches = [next(it) for _ in range(6)]  # 2 epochs of 3 batches
    assert [len(b) for b in batches] == [2, 2, 1, 2, 2, 1]
    for epoch in range(2):
        seen = [i for b in batches[3 * epoch:3 * epoch + 3] for i, _ in b]
        assert sorted(seen) == list(range(5))
    resumed = iter(tool.InfiniteBatchSampler(5, 2, seed=3, start=4))
    assert [next(resumed) for _ in range(2)] == batches[4:6]


def test_list_images(tool, img_dir, tmp_path):
    files = tool.list_images(osp.dirname(img_dir))
    assert len(files) == 6 and any(f.endswith('.png') for f in files)
    with pytest.raises(FileNotFoundError, match='--synthetic-images N'):
        tool.list_images(str(tmp_path / 'nowhere'))
    with pytest.raises(FileNotFoundError, match='no --img-dir given'):
        tool.list_images(None)
    with pytest.raises(FileNotFoundError, match='no images'):
        tool.list_images(str(tmp_path))


def test_extractor_cfg_parsing(tool, tmp_path):
    assert tool.parse_extractor_cfg(None) == tool.DEFAULT_EXTRACTOR
    assert tool.parse_extractor_cfg(
        "dict(type='mmdet.ResNet', depth=18, out_indices=(1, 2))") == dict(
            type='mmdet.ResNet', depth=18, out_indices=(1, 2))
    assert tool.parse_extractor_cfg(repr(TINY_EXTRACTOR)) == TINY_EXTRACTOR
    cfg_file = tmp_path / 'extractor.py'
    cfg_file.write_text(f'extractor = {TINY_EXTRACTOR!r}\n')
    assert tool.parse_extractor_cfg(str(cfg_file))['depth'] == 18
    with pytest.raises(ValueError, match='dict literal'):
        tool.parse_extractor_cfg('ResNet(depth=18)')
    with pytest.raises(ValueError, match='with a `type`'):
        tool.parse_extractor_cfg('dict(depth=18)')


def test_default_extractor_is_wide_resnet101_2(tool):
    """Built on the meta device: layer2/layer3 of WRN-101-2, 512/1024
    channels at strides 8/16 (64x64 and 32x32 for 512x512 inputs)."""
    import densekit.models.backbones.wide_resnet  # noqa: F401
    from densekit.registry import MODELS
    with torch.device('meta'):
        extractor = MODELS.build(dict(tool.DEFAULT_EXTRACTOR))
        extractor.eval()
        outs = extractor(torch.empty(1, 3, 512, 512))
    assert [tuple(o.shape) for o in outs] == [(1, 512, 64, 64),
                                              (1, 1024, 32, 32)]
    assert extractor.feature_info == [dict(channels=512, stride=8),
                                      dict(channels=1024, stride=16)]


# ----------------------------------------------------------------------
# extractor checkpoints
# ----------------------------------------------------------------------
def test_extractor_checkpoint_layouts(tool, tmp_path):
    source = _tiny_extractor(tool)
    weights = {k: v.clone() for k, v in source.state_dict().items()}
    for v in weights.values():
        if v.is_floating_point():
            v.uniform_()
    # a detector checkpoint: backbone.* under state_dict, plus a neck, a
    # layer4 and fc the extractor does not build, no BN counters
    wrapped = {f'backbone.{k}': v for k, v in weights.items()
               if not k.endswith('num_batches_tracked')}
    wrapped['backbone.layer4.0.conv1.weight'] = torch.zeros(1)
    wrapped['backbone.fc.weight'] = torch.zeros(1)
    wrapped['neck.conv.weight'] = torch.zeros(1)
    path = str(tmp_path / 'detector.pth')
    torch.save(dict(state_dict=wrapped, meta=dict(epoch=1)), path)
    target = _tiny_extractor(tool)
    report = tool.load_extractor_weights(target, path)
    assert report['prefix'] == 'backbone.' and not report['missing']
    assert sorted(report['unexpected']) == ['fc.weight',
                                            'layer4.0.conv1.weight']
    for key, value in target.state_dict().items():
        if not key.endswith('num_batches_tracked'):
            assert torch.equal(value, weights[key]), key

    # the same through the CLI path (a plain state dict this time)
    plain = str(tmp_path / 'plain.pth')
    torch.save(weights, plain)
    built = tool.build_extractor(dict(TINY_EXTRACTOR), checkpoint=plain)
    assert torch.equal(built.conv1.weight, weights['conv1.weight'])
    assert not any(p.requires_grad for p in built.parameters())


def test_extractor_checkpoint_errors(tool, tmp_path):
    extractor = _tiny_extractor(tool)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        tool.load_extractor_weights(extractor, str(tmp_path / 'no.pth'))
    # a PDN instead of a backbone: nothing matches
    from densekit.models.layers.patch_description_network import \
        PatchDescriptionNetwork
    wrong = str(tmp_path / 'pdn.pth')
    torch.save(PatchDescriptionNetwork('S').state_dict(), wrong)
    with pytest.raises(ValueError, match=r'lacks \d+ of the \d+ extractor '
                       r'weights .*not a checkpoint of the --extractor-cfg'):
        tool.load_extractor_weights(extractor, wrong)
    # wider network: shapes differ
    wide = _tiny_extractor(tool, base_channels=32)
    other = str(tmp_path / 'wide.pth')
    torch.save(wide.state_dict(), other)
    with pytest.raises(ValueError, match='other shapes'):
        tool.load_extractor_weights(extractor, other)
    # not a state dict at all
    junk = str(tmp_path / 'junk.pth')
    torch.save([1, 2, 3], junk)
    with pytest.raises(ValueError, match='not a readable state dict'):
        tool.load_extractor_weights(extractor, junk)
    # a few keys missing: loads, warns
    partial = {k: v for k, v in extractor.state_dict().items()
               if not k.startswith('layer3.1.')}
    path = str(tmp_path / 'partial.pth')
    torch.save(partial, path)
    with pytest.warns(UserWarning, match='stay random: layer3'):
        report = tool.load_extractor_weights(extractor, path)
    assert report['missing'] and all(k.startswith('layer3.1.')
                                     for k in report['missing'])
    with pytest.raises(ValueError, match='--random-extractor'):
        tool.build_extractor(dict(TINY_EXTRACTOR))


# ----------------------------------------------------------------------
# the CLI end to end
# ----------------------------------------------------------------------
def test_main_writes_teacher_and_resumes(tool, img_dir, tmp_path):
    from densekit.models.layers.patch_description_network import \
        PatchDescriptionNetwork
    straight = tmp_path / 'straight' / 'teacher_small.pth'
    assert _run(tool, _args(img_dir, straight, 6)) == 0
    ckpt = torch.load(straight, map_location='cpu', weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    PatchDescriptionNetwork('S', 384).load_state_dict(ckpt['state_dict'],
                                                      strict=True)
    meta = ckpt['meta']
    assert meta['iteration'] == 6 and meta['pdn_padding'] is True
    assert meta['extractor_cfg'] == TINY_EXTRACTOR
    assert meta['random_extractor'] is True and meta['num_images'] == 6
    assert meta['feature_mean'].shape == meta['feature_std'].shape == (
        1, 384, 1, 1)
    assert (meta['lr'], meta['weight_decay']) == (1e-4, 1e-5)
    try:  # EfficientAD's own loader (another module) reads the layout
        from densekit.models.anomaly_detectors.efficient_ad_convert import \
            load_teacher_checkpoint
    except ImportError:
        load_teacher_checkpoint = None
    if load_teacher_checkpoint is not None:
        load_teacher_checkpoint(PatchDescriptionNetwork('S'), str(straight))

    # 4 iterations, then --resume up to 6: the same weights as 6 at once
    split = tmp_path / 'split' / 'teacher_small.pth'
    assert _run(tool, _args(img_dir, split, 4)) == 0
    last = split.parent / 'teacher_small_last.pth'
    state = torch.load(last, map_location='cpu', weights_only=True)
    assert state['iteration'] == 4 and 'exp_avg' in str(state['optimizer'])
    assert _run(tool, _args(img_dir, split, 6, '--resume')) == 0
    resumed = torch.load(split, map_location='cpu', weights_only=True)
    assert resumed['meta']['iteration'] == 6
    torch.testing.assert_close(resumed['meta']['feature_std'],
                               meta['feature_std'])
    for key, value in ckpt['state_dict'].items():
        torch.testing.assert_close(resumed['state_dict'][key], value,
                                   rtol=1e-5, atol=1e-6)

    # a resume with other settings is refused
    with pytest.raises(ValueError, match='batch_size=2 vs 3'):
        _run(tool, _args(img_dir, split, 8, '--resume', '--batch-size', '3'))


def test_main_input_errors(tool, img_dir, tmp_path):
    out = tmp_path / 'teacher.pth'
    with pytest.raises(FileNotFoundError, match='--synthetic-images N'):
        _run(tool, _args(str(tmp_path / 'missing'), out, 2))
    with pytest.raises(FileNotFoundError, match='--resume: .* does not '
                       'exist'):
        _run(tool, _args(img_dir, out, 2, '--resume'))
    argv = _args(img_dir, out, 2)
    argv.remove('--random-extractor')
    with pytest.raises(ValueError, match='--extractor-checkpoint'):
        _run(tool, argv)
    with pytest.raises(FileNotFoundError, match='--extractor-checkpoint'):
        _run(tool, argv + ['--extractor-checkpoint',
                           str(tmp_path / 'wrn.pth')])
    with pytest.raises(SystemExit):
        tool.parse_args(['--iters', '0'])


def test_main_synthetic_fallback_pdn_m(tool, tmp_path):
    from densekit.models.layers.patch_description_network import \
        PatchDescriptionNetwork
    argv = _args(str(tmp_path / 'missing'), tmp_path / 't.pth', 1,
                 '--synthetic-images', '3', '--size', 'M')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert tool.main(argv) == 0
    messages = [str(w.message) for w in caught]
    assert any('does not exist; distilling on 3 SYNTHETIC images' in m
               for m in messages), messages
    assert any('RANDOM initialisation' in m for m in messages), messages
    ckpt = torch.load(tmp_path / 't.pth', weights_only=True)
    assert ckpt['meta']['synthetic'] is True
    assert ckpt['meta']['num_images'] == 3 and ckpt['meta']['size'] == 'M'
    PatchDescriptionNetwork('M', 384).load_state_dict(ckpt['state_dict'],
                                                      strict=True)

"""The medical U-Net configs: a shortened training of
configs/medseg/unet_phantom.py on a tiny phantom set through tools/train.py
and tools/test.py (per-volume Dice / HD95 over the re-stacked slices), the
TransUNet augmentation keeping labels valid, and every configs/medseg
config building a model that runs forward and computes its losses."""
import glob
import json
import os.path as osp
import random
import re

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, run_tool

MEDSEG_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'medseg',
                                           '*.py')))
# the mmseg-UNet configs; the Swin-UNet family and TransUNet configs are
# built and stepped in tests/test_models/test_decode_heads/ and
# tests/test_models/test_segmentors/test_transunet.py
UNET_CONFIGS = [p for p in MEDSEG_CONFIGS
                if osp.basename(p).startswith(('unet_', 'unet-'))]
TINY_SIZE = (6, 64, 64)  # (D, H, W) of each phantom volume
MODEL_SIZE = 32  # slices are resized 64 -> 32, predictions back to 64
MAX_ITERS = 10


@pytest.fixture(scope='module')
def tiny_phantom(tmp_path_factory):
    from densekit.datasets.synthetic import generate_phantom_synapse
    out = tmp_path_factory.mktemp('phantom')
    generate_phantom_synapse(str(out), num_train_volumes=2,
                             num_test_volumes=1, size=TINY_SIZE, seed=3)
    return out


def _tiny_options(data_root) -> list:
    """--cfg-options pointing unet_phantom.py at the fixture, CPU-small."""
    size = f'({MODEL_SIZE},{MODEL_SIZE})'
    opts = [f'model.data_preprocessor.size={size}',
            f'train_dataloader.dataset.pipeline.2.scale={size}',
            f'train_cfg.max_iters={MAX_ITERS}',
            f'train_cfg.val_interval={MAX_ITERS}',
            f'param_scheduler.0.end={MAX_ITERS}',
            'default_hooks.logger.interval=1',
            f'default_hooks.checkpoint.interval={MAX_ITERS}',
            'randomness.seed=0']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={data_root}',
                 f'{loader}.batch_size=4', f'{loader}.num_workers=0',
                 f'{loader}.persistent_workers=False']
    for loader in ('val_dataloader', 'test_dataloader'):
        opts.append(f'{loader}.dataset.pipeline.1.scale={size}')
    return opts


@pytest.mark.slow  # subprocess run: make test-slow
def test_unet_phantom_loss_decreases_and_volume_metrics(tiny_phantom,
                                                        tmp_path):
    config = osp.join(ROOT, 'configs', 'medseg', 'unet_phantom.py')
    work = tmp_path / 'work'
    opts = _tiny_options(tiny_phantom)
    res = run_tool(['tools/train.py', config, '--work-dir', str(work),
                    '--cfg-options', *opts])
    assert res.returncode == 0, res.stdout[-3000:]
    scalars, = glob.glob(f'{work}/*/vis_data/scalars.json')
    with open(scalars) as f:
        logs = [json.loads(line) for line in f]
    losses = [r['loss'] for r in logs if 'loss' in r]
    assert len(losses) == MAX_ITERS
    assert all('decode.loss_ce' in r and 'decode.loss_dice' in r
               for r in logs if 'loss' in r)
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last < first, losses

    checkpoint = (work / 'last_checkpoint').read_text().strip()
    res = run_tool(['tools/test.py', config, checkpoint, '--work-dir',
                    str(work), '--cfg-options', *opts])
    assert res.returncode == 0, res.stdout[-3000:]
    out = res.stdout
    # the 6 slices were stacked into the one test volume and scored there
    assert 'VolumeSegMetric on 1 volumes (HD95 in spacing units' in out, \
        out[-3000:]
    dice = float(re.findall(r'volume/mDice: ([0-9.]+)', out)[-1])
    hd95 = float(re.findall(r'volume/mHD95: ([0-9.]+)', out)[-1])
    assert 0.0 <= dice <= 1.0 and hd95 >= 0.0
    for organ in ('liver', 'right_kidney', 'left_kidney', 'spleen'):
        assert f'volume/Dice/{organ}:' in out


def _config(path):
    from mmengine.config import Config
    return Config.fromfile(path)


def test_dataset_bases_repeat_densekit_constants():
    from densekit.datasets.synthetic import PHANTOM_METAINFO
    from densekit.datasets.transforms import MEDICAL_META_KEYS
    for name in ('synapse_224x224', 'acdc_224x224', 'phantom'):
        cfg = _config(osp.join(ROOT, 'configs', '_base_', 'datasets',
                               name + '.py'))
        assert tuple(cfg.medical_meta_keys) == MEDICAL_META_KEYS
        for loader in ('train_dataloader', 'val_dataloader'):
            pack = cfg[loader].dataset.pipeline[-1]
            assert pack.type == 'PackSegInputs'
            assert tuple(pack.meta_keys) == MEDICAL_META_KEYS
        assert cfg.val_evaluator.type == 'densekit.VolumeSegMetric'
    cfg = _config(osp.join(ROOT, 'configs', '_base_', 'datasets',
                           'phantom.py'))
    assert tuple(cfg.phantom_metainfo['classes']) == \
        PHANTOM_METAINFO['classes']
    assert [list(c) for c in cfg.phantom_metainfo['palette']] == \
        [list(c) for c in PHANTOM_METAINFO['palette']]


def test_train_pipeline_keeps_labels_valid(tiny_phantom):
    # the phantom's rotations (TransUNet's, less the flips) then the
    # resize: labels are moved, never blended
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope

    from densekit.datasets import SynapseDataset
    init_default_scope('mmseg')
    cfg = _config(osp.join(ROOT, 'configs', 'medseg', 'unet_phantom.py'))
    pipeline = cfg.train_dataloader.dataset.pipeline
    ds = SynapseDataset(str(tiny_phantom), split='train',
                        metainfo=cfg.phantom_metainfo)
    info = ds.get_data_info(3)
    original = np.load(info['img_path'])['label']
    assert len(np.unique(original)) >= 3  # organs meet background
    transform = Compose(pipeline)
    np.random.seed(0)
    random.seed(0)
    seen = set()
    for _ in range(40):
        out = transform(dict(info))
        labels = out['data_samples'].gt_sem_seg.data
        assert tuple(labels.shape) == (1, 128, 128)
        assert out['inputs'].shape == (1, 128, 128)
        seen |= set(np.unique(labels.numpy()).tolist())
        assert set(np.unique(labels.numpy())) <= set(np.unique(original))
    assert seen == set(np.unique(original).tolist())


@pytest.mark.parametrize('path', UNET_CONFIGS,
                         ids=[osp.basename(p) for p in UNET_CONFIGS])
def test_medseg_config_builds_and_runs(path):
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from densekit.registry import MODELS
    cfg = _config(path)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    num_classes = cfg.model.decode_head.num_classes
    unet = getattr(model.backbone, 'unet', model.backbone)  # SCSEUNet
    assert unet.encoder[0][0].convs[0].conv.in_channels == 1  # grey
    x = torch.rand(2, 1, 32, 32)
    model.eval()
    with torch.no_grad():
        logits = model(x, mode='tensor')
    assert logits.shape == (2, num_classes, 32, 32)
    assert torch.isfinite(logits).all()

    model.train()
    samples = []
    for i in range(2):
        label = torch.randint(0, num_classes, (1, 32, 32))
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        sample.set_metainfo(dict(img_shape=(32, 32), ori_shape=(32, 32),
                                 pad_shape=(32, 32)))
        samples.append(sample)
    losses = model(x, samples, mode='loss')
    assert set(losses) >= {'decode.loss_ce', 'decode.loss_dice'}
    assert all(torch.isfinite(v) for k, v in losses.items()
               if k.startswith('decode.loss'))


# every other phantom model (the Swin-UNet family, TransUNet, U-Net + scSE);
# unet_phantom.py goes through the tools above
PHANTOM_CONFIGS = [p for p in MEDSEG_CONFIGS if p.endswith('_phantom.py')
                   and osp.basename(p) != 'unet_phantom.py']
STEPS = 3


@pytest.mark.parametrize('path', PHANTOM_CONFIGS,
                         ids=[osp.basename(p) for p in PHANTOM_CONFIGS])
def test_phantom_model_trains_and_evaluates_volumes(path, tiny_phantom,
                                                    tmp_path):
    """A few iterations of the config on the tiny phantom set, then its
    test loop: the slices are re-stacked into the volume and scored with
    per-organ Dice / HD95 (in-process mmengine Runner: the tools' code
    path without two interpreter start-ups per model)."""
    from mmengine.runner import Runner
    cfg = _config(path)
    size = (TINY_SIZE[1], TINY_SIZE[2])  # the fixture's native 64 x 64
    options = {
        'work_dir': str(tmp_path),
        'model.data_preprocessor.size': size,
        'train_dataloader.dataset.pipeline.2.scale': size,
        'train_cfg.max_iters': STEPS,
        'train_cfg.val_interval': STEPS,
        'param_scheduler.0.end': STEPS,
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': STEPS,
        'log_level': 'WARNING',
    }
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options.update({f'{loader}.dataset.data_root': str(tiny_phantom),
                        f'{loader}.batch_size': 2,
                        f'{loader}.num_workers': 0,
                        f'{loader}.persistent_workers': False})
        if loader != 'train_dataloader':
            options[f'{loader}.dataset.pipeline.1.scale'] = size
    cfg.merge_from_dict(options)
    assert cfg.train_dataloader.dataset.pipeline[2].type == 'Resize'
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == STEPS
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert np.isfinite(loss)
    assert runner.message_hub.get_scalar('train/decode.loss_dice')
    metrics = runner.test()
    assert 0.0 <= metrics['volume/mDice'] <= 1.0
    assert set(metrics) >= {f'volume/Dice/{organ}' for organ in
                            ('liver', 'right_kidney', 'left_kidney',
                             'spleen')}
    assert metrics['volume/mHD95'] >= 0.0 or np.isnan(
        metrics['volume/mHD95'])

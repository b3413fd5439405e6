"""densekit.apis.VolumeInferencer and demo/volume_demo.py on a tiny phantom
set: the stacked volume equals what the evaluation path (SynapseDataset's
test volumes through model.test_step, as VolumeSegMetric sees them)
predicts, and the demo writes the slice grid, the label volume and the
per-volume Dice."""
import copy
import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.runner import save_checkpoint

from tests.conftest import ROOT

CONFIG = osp.join(ROOT, 'configs', 'medseg', 'unet_phantom.py')
SIZE = (5, 48, 40)  # (D, H, W): not square, so transposes would show


@pytest.fixture(scope='module')
def phantom(tmp_path_factory):
    from densekit.datasets.synthetic import generate_phantom_synapse
    out = tmp_path_factory.mktemp('phantom')
    generate_phantom_synapse(str(out), num_train_volumes=1,
                             num_test_volumes=2, size=SIZE, seed=5)
    return out


def _options(root):
    return {f'{k}.dataset.data_root': str(root)
            for k in ('train_dataloader', 'val_dataloader',
                      'test_dataloader')}


@pytest.fixture(scope='module')
def checkpoint(phantom, tmp_path_factory):
    """A randomly initialised unet_phantom model, saved with its classes
    (seeded, and with the BN statistics moved so eval mode is not trivial)."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    torch.manual_seed(0)
    cfg = Config.fromfile(CONFIG)
    model = MODELS.build(cfg.model)
    model.init_weights()
    from densekit.datasets.synthetic import PHANTOM_METAINFO
    path = tmp_path_factory.mktemp('ckpt') / 'unet.pth'
    save_checkpoint(dict(state_dict=model.state_dict(),
                         meta=dict(dataset_meta=dict(PHANTOM_METAINFO))),
                    str(path))
    return path


def test_volume_inferencer_matches_the_evaluation_path(phantom, checkpoint):
    from mmseg.registry import DATASETS

    from densekit.apis import VolumeInferencer
    inferencer = VolumeInferencer(CONFIG, str(checkpoint), device='cpu',
                                  batch_size=2, cfg_options=_options(phantom))
    cfg = inferencer.cfg
    dataset = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    volume = sorted(glob_h5(phantom))[0]
    expected = np.zeros(SIZE, np.int64)
    with torch.no_grad():
        for i in range(len(dataset)):
            sample = dataset[i]
            meta = sample['data_samples'].metainfo
            if meta['img_path'] != volume:
                continue
            out = inferencer.model.test_step(pseudo_collate([sample]))[0]
            expected[meta['slice_index']] = out.pred_sem_seg.data[0].numpy()
    result = inferencer(volume)
    assert result.label_volume.shape == SIZE
    np.testing.assert_array_equal(result.label_volume, expected)
    assert result.spacing == (3.0, 1.5, 1.5)
    assert result.gt_volume is not None and result.gt_volume.shape == SIZE
    assert result.gt_volume.max() > 0  # the phantom has organs here
    voxels = result.class_voxels()
    assert set(voxels) == set(inferencer.classes[1:])
    assert sum(voxels.values()) == int((result.label_volume > 0).sum())
    ml = result.class_volumes_ml()
    for name in voxels:
        assert ml[name] == pytest.approx(voxels[name] * 3.0 * 1.5 * 1.5 / 1e3)


def glob_h5(root):
    import glob
    return glob.glob(osp.join(str(root), 'test_vol_h5', '*.npy.h5'))


def test_volume_inferencer_errors(phantom, checkpoint, tmp_path):
    from densekit.apis import VolumeInferencer
    with pytest.raises(ValueError, match='batch_size'):
        VolumeInferencer(CONFIG, str(checkpoint), batch_size=0)
    with pytest.raises(ValueError, match='LoadMedicalSlice'):
        VolumeInferencer(osp.join(ROOT, 'configs', 'seg',
                                  'upernet_yolov8-n_shapes.py'))
    inferencer = VolumeInferencer(CONFIG, str(checkpoint),
                                  cfg_options=_options(phantom))
    with pytest.raises(FileNotFoundError, match='missing.npy.h5'):
        inferencer(str(tmp_path / 'missing.npy.h5'))
    npz = sorted((phantom / 'train_npz').glob('*.npz'))[0]
    with pytest.raises(ValueError, match='single npz slice'):
        inferencer(str(npz))


def test_draw_volume_grid_layout(phantom, checkpoint):
    from densekit.apis import VolumeInferencer, draw_volume_grid
    from densekit.apis.volume_inferencer import pick_slices
    inferencer = VolumeInferencer(CONFIG, str(checkpoint),
                                  cfg_options=_options(phantom))
    result = inferencer(sorted(glob_h5(phantom))[0])
    result.label_volume[:] = 0
    result.label_volume[1:4, 10:20, 10:20] = 2
    assert pick_slices(result, 2) == [1, 3]
    assert pick_slices(result, 10) == [1, 2, 3]
    grid = draw_volume_grid(result, inferencer.palette, slices=[0, 1, 2],
                            cols=2, tile_size=96)
    tile_h, tile_w = 96, 80  # 48 x 40 scaled to a longer side of 96
    assert grid.shape[1] == 2 * tile_w and grid.shape[0] > 2 * tile_h
    assert (grid[2 * tile_h:] == 0).all(axis=2).any()  # the legend strip
    # slice 1 carries class 2 in its colour (RGB palette -> BGR image)
    colour = np.array(inferencer.palette[2][::-1])
    tile = grid[:tile_h, tile_w:2 * tile_w].astype(int)
    centre = tile[2 * 15, 2 * 15]
    assert np.abs(centre - colour).sum() < np.abs(
        grid[:tile_h, :tile_w][2 * 15, 2 * 15].astype(int) - colour).sum()
    with pytest.raises(ValueError, match='slices'):
        draw_volume_grid(result, slices=[7])


def test_volume_demo_writes_grid_volume_and_dice(phantom, checkpoint,
                                                 tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        'volume_demo', osp.join(ROOT, 'demo', 'volume_demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / 'out'
    args = [str(phantom / 'test_vol_h5'), str(tmp_path / 'nothing*.h5'),
            '--config', CONFIG, '--weights', str(checkpoint), '--out-dir',
            str(out), '--num-slices', '4', '--cfg-options',
            *[f'{k}={v}' for k, v in _options(phantom).items()]]
    status = module.main(args)
    printed = capsys.readouterr()
    assert status == 0, printed
    assert 'no volume matched' in printed.err
    records = json.load(open(out / 'predictions.json'))
    assert [osp.basename(r['volume']) for r in records] == [
        'case5001.npy.h5', 'case5002.npy.h5']
    for rec in records:
        name = osp.basename(rec['volume'])[:-len('.npy.h5')]
        pred = np.load(out / 'pred' / f'{name}.npy')
        assert pred.shape == SIZE and pred.dtype == np.uint8
        assert set(rec['dice']) == {'liver', 'right_kidney', 'left_kidney',
                                    'spleen'}
        assert all(0.0 <= d <= 1.0 for d in rec['dice'].values())
        assert rec['class_voxels'] == {
            n: int((pred == c).sum()) for c, n in
            enumerate(('background', 'liver', 'right_kidney',
                       'left_kidney', 'spleen')) if c > 0}
        vis = cv2.imread(rec['vis'])
        assert vis is not None and vis.shape[1] == 4 * 160  # 4 tiles of 160
    # no input at all
    assert module.main([str(tmp_path / 'none*.h5'), '--config', CONFIG]) == 2

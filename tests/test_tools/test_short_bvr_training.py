"""A shortened RetinaNet-BVR training through tools/train.py on the tiny
shapes set: the keypoint losses appear in the log beside RetinaNet's, and
the total loss falls from its peak (from scratch, RetinaNet's loss first
rises while the focal loss finds its first positives, so the first
iterations are not the reference). The same on a CBNetV2 backbone: both
plug-ins train together."""
import pytest

from tests.conftest import train_and_read_scalars

EPOCHS = 6  # x 4 iterations of 4 images


@pytest.mark.slow  # subprocess run: make test-slow
def test_bvr_retinanet_loss_decreases_with_keypoint_losses(tiny_config,
                                                           tmp_path):
    config = tiny_config(max_epochs=EPOCHS, name='tiny_bvr.py',
                         base='bvr_retinanet_r50_fpn_shapes.py')
    rows = [r for r in train_and_read_scalars(
        config, tmp_path / 'work', '--cfg-options', 'custom_hooks=[]')
        if 'loss' in r]
    assert len(rows) == EPOCHS * 4
    for row in rows:
        assert {'loss_cls', 'loss_bbox', 'loss_kpt_heatmap',
                'loss_kpt_offset'} <= set(row), sorted(row)
    losses = [r['loss'] for r in rows]
    peak = max(range(len(losses)), key=losses.__getitem__)
    last = sum(losses[-4:]) / 4
    print(f'loss peak {losses[peak]:.3f} at iteration {peak + 1}, last 4 '
          f'{last:.3f}')
    assert peak < len(losses) - 4, losses
    assert last < 0.8 * losses[peak], losses
    # the heat-map loss learns too
    heat = [r['loss_kpt_heatmap'] for r in rows]
    assert sum(heat[-4:]) / 4 < 0.8 * sum(heat[:4]) / 4, heat


@pytest.mark.slow  # subprocess run: make test-slow
def test_bvr_retinanet_on_cbnet_trains_with_keypoint_and_assistant_losses(
        tiny_config, tmp_path):
    """Both plug-ins at once (bvr_retinanet_cbv2-r50_fpn_shapes.py): the BVR
    head's losses, keypoints included, on the lead and (``_aux0``) the
    assisting backbone copy, and the loss falls."""
    config = tiny_config(max_epochs=EPOCHS, name='tiny_cb_bvr.py',
                         base='bvr_retinanet_cbv2-r50_fpn_shapes.py')
    rows = [r for r in train_and_read_scalars(
        config, tmp_path / 'work', '--cfg-options', 'custom_hooks=[]')
        if 'loss' in r]
    assert len(rows) == EPOCHS * 4
    names = {'loss_cls', 'loss_bbox', 'loss_kpt_heatmap', 'loss_kpt_offset'}
    for row in rows:
        assert names | {f'{n}_aux0' for n in names} <= set(row), sorted(row)
    # from the first iterations (the composite's loss does not rise first;
    # a single-iteration spike would inflate any peak-based reference)
    losses = [r['loss'] for r in rows]
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    print(f'loss first 4 {first:.3f}, last 4 {last:.3f}')
    assert last < 0.8 * first, losses
    heat = [r['loss_kpt_heatmap'] for r in rows]
    assert sum(heat[-4:]) / 4 < 0.8 * sum(heat[:4]) / 4, heat

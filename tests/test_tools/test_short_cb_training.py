"""A shortened CBNetV2 training through tools/train.py: the composite
Faster R-CNN of configs/det/faster-rcnn_cbv2-r50_fpn_shapes.py on the tiny
shapes set; the loss decreases and the assistant-supervision losses are in
the training log beside the lead's, with their weight applied."""
import pytest

from tests.conftest import train_and_read_scalars

EPOCHS = 6  # x 4 iterations of 4 images


@pytest.mark.slow  # subprocess run: make test-slow
def test_cbnet_faster_rcnn_loss_decreases_with_assistant_losses(
        tiny_config, tmp_path):
    config = tiny_config(max_epochs=EPOCHS, name='tiny_cbv2.py',
                         base='faster-rcnn_cbv2-r50_fpn_shapes.py')
    rows = [r for r in train_and_read_scalars(
        config, tmp_path / 'work', '--cfg-options', 'custom_hooks=[]')
        if 'loss' in r]
    assert len(rows) == EPOCHS * 4
    lead = {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'}
    for row in rows:
        assert lead <= set(row), sorted(row)
        assert {f'{k}_aux0' for k in lead} <= set(row), sorted(row)
        # the total is the lead's losses plus the weighted assisting ones
        # (the logged aux values already carry their 0.5)
        parts = [v for k, v in row.items()
                 if k.startswith('loss_') and 'acc' not in k]
        assert abs(sum(parts) - row['loss']) < 1e-3 * max(1.0, row['loss'])
    losses = [r['loss'] for r in rows]
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    print(f"loss {first:.3f} -> {last:.3f}")
    assert last < 0.8 * first, (first, last)

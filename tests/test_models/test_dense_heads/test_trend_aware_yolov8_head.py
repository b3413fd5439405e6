import pytest
import torch
from mmengine.structures import InstanceData

from densekit.models.dense_heads import TrendAwareYOLOv8Head, YOLOv8Head

IMG = 64
CHANNELS = [8, 16, 32]
BOXES = torch.tensor([[4., 4., 28., 30.], [30., 20., 60., 50.]])


def _heads():
    torch.manual_seed(0)
    plain = YOLOv8Head(num_classes=3, in_channels=CHANNELS)
    plain.init_weights()
    trend = TrendAwareYOLOv8Head(num_classes=3, in_channels=CHANNELS)
    trend.load_state_dict(plain.state_dict())
    return plain, trend


def _feats(batch=2):
    torch.manual_seed(1)
    return tuple(torch.rand(batch, c, IMG // s, IMG // s)
                 for c, s in zip(CHANNELS, [8, 16, 32]))


def _metas(batch=2):
    return [dict(img_shape=(IMG, IMG), ori_shape=(IMG, IMG))] * batch


def _gts(trend_ious, batch=2):
    return [InstanceData(bboxes=BOXES.clone(), labels=torch.tensor([0, 2]),
                         trend_ious=torch.tensor(trend_ious))
            for _ in range(batch)]


def _box_grads(head, gts):
    bbox_preds = [p.detach().requires_grad_() for p in head(_feats())[1]]
    cls_scores = head(_feats())[0]
    losses = head.loss_by_feat(cls_scores, bbox_preds, gts, _metas())
    (losses['loss_bbox'] + losses['loss_dfl']).backward()
    return losses, [p.grad for p in bbox_preds]


def test_official_object_weights():
    _, head = _heads()
    w = head.object_weights(torch.tensor([1.0, 0.8, 0.5, 0.49, 0.0]))
    # nu < 0.5 -> nu = 1.5 (new / fast objects), w = 1 / nu (gamma 1)
    torch.testing.assert_close(
        w, torch.tensor([1.0, 1.25, 2.0, 1 / 1.5, 1 / 1.5]), rtol=1e-6,
        atol=1e-6)


@pytest.mark.parametrize('value', [1.0, 0.7, 0.1])
def test_equal_trend_ious_give_the_plain_loss(value):
    plain, trend = _heads()
    gts = _gts([value, value])
    expected, g_plain = _box_grads(plain, gts)
    losses, g_trend = _box_grads(trend, gts)
    for key in expected:
        torch.testing.assert_close(losses[key], expected[key])
    for a, b in zip(g_plain, g_trend):
        torch.testing.assert_close(a, b)


def test_unequal_trends_keep_the_total_and_shift_the_gradient():
    plain, trend = _heads()
    gts = _gts([0.95, 0.55])  # object 1 moves more: weight 1/0.55 > 1/0.95
    expected, g_plain = _box_grads(plain, gts)
    losses, g_trend = _box_grads(trend, gts)
    # eq. 4 renormalisation: the loss values are unchanged ...
    for key in expected:
        torch.testing.assert_close(losses[key], expected[key])
    # ... but the gradient moves from the slow object's anchors to the
    # fast one's: compare on the stride-8 priors inside each box only
    xs = (torch.arange(8) + 0.5) * 8
    inside = [((xs[None, :] > b[0]) & (xs[None, :] < b[2]) &
               (xs[:, None] > b[1]) & (xs[:, None] < b[3])) for b in BOXES]
    ratio = []
    for grads in (g_plain, g_trend):
        norm = grads[0].norm(dim=1)  # (B, 8, 8)
        ratio.append(norm[:, inside[1]].sum() / norm[:, inside[0]].sum())
    assert ratio[1] > ratio[0] * 1.2, ratio


def test_assigned_gt_index_matches_bruteforce():
    _, head = _heads()
    outs = head(_feats())
    gts = _gts([0.9, 0.3])
    flat_cls = head._flatten(outs[0], 3)
    priors, strides = head._flat_priors([o.shape[-2:] for o in outs[0]],
                                        torch.float32, 'cpu')
    pred = head._decode(head._flatten(outs[1], 64), priors, strides)
    gt_bboxes, gt_labels, gt_valid = head._pad_gts(gts, 'cpu')
    assigned = head.assigner(flat_cls.detach().sigmoid(), pred.detach(),
                             priors, gt_labels, gt_bboxes, gt_valid)
    idx = head._assigned_gt_index(assigned, gt_bboxes, gt_labels, gt_valid)
    fg = assigned['fg_mask']
    assert fg.any()
    torch.testing.assert_close(
        gt_bboxes.gather(1, idx[..., None].expand(-1, -1, 4))[fg],
        assigned['assigned_bboxes'][fg])


def test_empty_ground_truth_gives_zero_box_losses():
    _, head = _heads()
    gt = InstanceData(bboxes=torch.empty(0, 4),
                      labels=torch.empty(0, dtype=torch.long),
                      trend_ious=torch.empty(0))
    losses = head.loss_by_feat(*head(_feats(1)), [gt], _metas(1))
    assert losses['loss_cls'].item() > 0
    assert losses['loss_bbox'].item() == 0
    assert losses['loss_dfl'].item() == 0


def test_missing_trend_ious_raise_a_clear_error():
    _, head = _heads()
    gt = InstanceData(bboxes=BOXES.clone(), labels=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match='PackStreamInputs'):
        head.loss_by_feat(*head(_feats(1)), [gt], _metas(1))
    gt.trend_ious = torch.ones(2, 1)  # one value per box, not a column
    with pytest.raises(ValueError, match='expected \\(2,\\)'):
        head.loss_by_feat(*head(_feats(1)), [gt], _metas(1))
    with pytest.raises(ValueError, match='ignore_value'):
        TrendAwareYOLOv8Head(num_classes=3, in_channels=CHANNELS,
                             ignore_value=0)

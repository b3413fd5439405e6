import torch

from densekit.models.task_modules import BatchTaskAlignedAssigner


def _grid_priors(size=8, stride=1.0):
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size),
                            indexing='ij')
    return torch.stack([xs, ys], -1).reshape(-1, 2).float() * stride + 0.5


def test_only_priors_inside_the_box_and_at_most_topk():
    priors = _grid_priors(8)  # 64 prior centres at x.5, y.5
    gt = torch.tensor([[[1., 1., 5., 5.]]])  # 16 centres inside
    pred_bboxes = gt[:, :, None].expand(1, 1, 64, 4).reshape(1, 64, 4)
    scores = torch.full((1, 64, 3), 0.5)
    assigner = BatchTaskAlignedAssigner(num_classes=3, topk=10)
    out = assigner(scores, pred_bboxes, priors, torch.tensor([[2]]), gt,
                   torch.ones(1, 1))
    fg = out['fg_mask'][0]
    inside = ((priors > 1) & (priors < 5)).all(-1)
    assert fg.sum() == 10  # topk, all candidates inside
    assert not (fg & ~inside).any()
    assert (out['assigned_labels'][0][fg] == 2).all()
    assert (out['assigned_labels'][0][~fg] == 3).all()  # background
    assert torch.allclose(out['assigned_bboxes'][0][fg], gt[0].expand(10, 4))
    # soft targets only in the gt's class; the best prior gets the max IoU
    scores_fg = out['assigned_scores'][0][fg]
    assert (scores_fg[:, :2] == 0).all()
    assert torch.isclose(scores_fg[:, 2].max(), torch.tensor(1.0), atol=1e-5)


def test_prior_claimed_twice_keeps_the_best_overlap():
    priors = torch.tensor([[2.5, 2.5]])
    gts = torch.tensor([[[0., 0., 5., 5.], [2., 2., 3., 3.]]])
    pred = torch.tensor([[[2., 2., 3., 3.]]])  # matches the 2nd box exactly
    out = BatchTaskAlignedAssigner(num_classes=2, topk=1)(
        torch.full((1, 1, 2), 0.5), pred, priors, torch.tensor([[0, 1]]),
        gts, torch.ones(1, 2))
    assert out['fg_mask'].all()
    assert out['assigned_labels'].item() == 1


def test_padding_and_empty_ground_truth():
    priors = _grid_priors(4)
    pred = torch.tensor([0., 0., 2., 2.]).expand(2, 16, 4)
    scores = torch.rand(2, 16, 2)
    assigner = BatchTaskAlignedAssigner(num_classes=2)
    # image 0 has one box, image 1 only padding
    gts = torch.tensor([[[0., 0., 4., 4.]], [[0., 0., 4., 4.]]])
    out = assigner(scores, pred, priors, torch.zeros(2, 1, dtype=torch.long),
                   gts, torch.tensor([[1.], [0.]]))
    assert out['fg_mask'][0].any() and not out['fg_mask'][1].any()
    empty = assigner(scores, pred, priors, torch.zeros(2, 0, dtype=torch.long),
                     torch.zeros(2, 0, 4), torch.zeros(2, 0))
    assert not empty['fg_mask'].any()
    assert (empty['assigned_labels'] == 2).all()
    assert empty['assigned_scores'].abs().sum() == 0

import torch
from mmengine.structures import InstanceData

from densekit.models.dense_heads import YOLOv8Head

IMG = 64


def _head():
    head = YOLOv8Head(num_classes=3, in_channels=[8, 16, 32])
    head.init_weights()
    return head


def _feats(batch=1):
    return tuple(torch.rand(batch, c, IMG // s, IMG // s)
                 for c, s in zip([8, 16, 32], [8, 16, 32]))


def _metas(batch=1):
    return [dict(img_shape=(IMG, IMG), ori_shape=(IMG, IMG),
                 scale_factor=(1.0, 1.0))] * batch


def test_forward_shapes():
    cls_scores, bbox_preds = _head()(_feats(2))
    assert [c.shape for c in cls_scores] == [
        (2, 3, 8, 8), (2, 3, 4, 4), (2, 3, 2, 2)]
    assert [b.shape[1] for b in bbox_preds] == [64] * 3  # 4 sides x 16 bins


def test_empty_ground_truth_gives_zero_box_losses():
    head = _head()
    outs = head(_feats())
    gt = InstanceData(bboxes=torch.empty(0, 4),
                      labels=torch.empty(0, dtype=torch.long))
    losses = head.loss_by_feat(*outs, [gt], _metas())
    assert losses['loss_cls'].item() > 0
    assert losses['loss_bbox'].item() == 0, \
        'there should be no box loss when there are no true boxes'
    assert losses['loss_dfl'].item() == 0


def test_fitting_one_image_recovers_its_box_and_label():
    # Task-aligned targets grow with prediction quality, so the loss itself
    # is not monotone early on; check what the loss is for instead.
    torch.manual_seed(0)
    head = _head()
    feats = _feats()
    gt = InstanceData(bboxes=torch.tensor([[8., 8., 40., 30.]]),
                      labels=torch.tensor([1]))
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
    for _ in range(80):
        losses = head.loss_by_feat(*head(feats), [gt], _metas())
        assert all(v.item() > 0 for v in losses.values())
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    # after fitting, the top prediction is the box with its label
    head.eval()
    with torch.no_grad():
        result = head.predict_by_feat(*head(feats), batch_img_metas=_metas(),
                                      rescale=True)[0]
    assert result.labels[0].item() == 1
    iou = _iou(result.bboxes[0], gt.bboxes[0])
    assert iou > 0.7, (result.bboxes[0], iou)


def test_predict_rescales_to_original_image():
    head = _head().eval()
    metas = [dict(img_shape=(IMG, IMG), ori_shape=(IMG * 2, IMG * 2),
                  scale_factor=(0.5, 0.5))]
    torch.manual_seed(0)
    feats = _feats()
    with torch.no_grad():
        result = head.predict_by_feat(*head(feats), batch_img_metas=metas,
                                      rescale=True)[0]
        unscaled = head.predict_by_feat(*head(feats), batch_img_metas=metas,
                                        rescale=False)[0]
    assert len(result) > 0
    assert result.bboxes.shape[1] == 4 and len(result.scores) == len(result)
    # the same detections, boxes divided by the scale factor (0.5) and
    # clipped to the original image
    torch.testing.assert_close(result.scores, unscaled.scores)
    torch.testing.assert_close(result.bboxes,
                               (unscaled.bboxes * 2).clamp(0, IMG * 2))
    assert result.bboxes.max() > IMG  # a box past the network input


def test_single_label_keeps_each_box_best_class():
    """multi_label=False (ultralytics' predict): one detection per box, of
    its best class; the multi-label default also keeps its runner-up."""
    head = _head().eval()
    cls_scores = [torch.full((1, 3, IMG // s, IMG // s), -20.)
                  for s in (8, 16, 32)]
    cls_scores[0][0, :, 3, 4] = torch.tensor([2.0, 1.0, -20.])  # 2 classes
    cls_scores[1][0, 2, 1, 1] = 3.0  # 1 class
    bbox_preds = [torch.zeros(1, 64, IMG // s, IMG // s) for s in (8, 16, 32)]
    kwargs = dict(batch_img_metas=_metas(), rescale=False)
    with torch.no_grad():
        multi = head.predict_by_feat(cls_scores, bbox_preds, **kwargs)[0]
        single = head.predict_by_feat(
            cls_scores, bbox_preds,
            cfg=dict(head.test_cfg, multi_label=False, score_thr=0.3),
            **kwargs)[0]
    assert sorted(multi.labels.tolist()) == [0, 1, 2]
    assert sorted(single.labels.tolist()) == [0, 2]
    order = single.labels.argsort()
    torch.testing.assert_close(single.scores[order],
                               torch.tensor([2.0, 3.0]).sigmoid())
    box = multi.bboxes[multi.labels == 0][0]
    torch.testing.assert_close(single.bboxes[single.labels == 0][0], box)


def _iou(a, b):
    lt = torch.max(a[:2], b[:2])
    rb = torch.min(a[2:], b[2:])
    inter = (rb - lt).clamp(min=0).prod()
    area = lambda x: (x[2:] - x[:2]).prod()  # noqa: E731
    return (inter / (area(a) + area(b) - inter)).item()


def _logged(monkeypatch):
    import densekit.models.dense_heads.yolov8_head as module
    messages = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    return messages


def test_other_class_count_reinitialises_only_the_class_layers(monkeypatch):
    """load_from a checkpoint of 5 classes into a 3-class head: the last
    conv of each class tower starts again from init_weights (class-prior
    bias), one log line names them, everything else loads."""
    messages = _logged(monkeypatch)
    torch.manual_seed(0)
    source = YOLOv8Head(num_classes=5, in_channels=[16, 32, 64])
    target = YOLOv8Head(num_classes=3, in_channels=[16, 32, 64])
    target.init_weights()
    prior = target.cls_towers[0][2].bias.detach().clone()
    with torch.no_grad():
        target.cls_towers[0][2].bias.add_(1.0)  # as if trained before
    result = target.load_state_dict(source.state_dict(), strict=False)
    class_layers = [f'cls_towers.{i}.2' for i in range(3)]
    assert sorted(result.missing_keys) == sorted(
        f'{layer}.{p}' for layer in class_layers for p in ('weight', 'bias'))
    assert len(messages) == 1
    assert messages[0] == (
        'YOLOv8Head (head): the checkpoint predicts 5 classes, this head 3: '
        're-initialised the class-dependent layers cls_towers.0.2, '
        'cls_towers.1.2, cls_towers.2.2; every other weight loads from the '
        'checkpoint')
    torch.testing.assert_close(target.cls_towers[0][2].bias, prior)
    own, theirs = target.state_dict(), source.state_dict()
    for key in own:
        if not any(key.startswith(layer) for layer in class_layers):
            assert torch.equal(own[key], theirs[key]), key


def test_class_count_that_changes_the_tower_width(monkeypatch):
    """n scale: the class tower is max(P3, min(nc, 100)) wide, so 12 -> 3
    classes on 8 P3 channels re-initialises the whole class tower (running
    statistics reset), not the box branch."""
    messages = _logged(monkeypatch)
    source = YOLOv8Head(num_classes=12, in_channels=[8, 16, 32])
    with torch.no_grad():
        source.cls_towers[1][0].bn.running_mean.fill_(3.0)
    target = YOLOv8Head(num_classes=3, in_channels=[8, 16, 32])
    target.init_weights()
    target.load_state_dict(source.state_dict(), strict=False)
    assert 'cls_towers.1.0, cls_towers.1.1, cls_towers.1.2' in messages[0]
    assert torch.equal(target.cls_towers[1][0].bn.running_mean,
                       torch.zeros(8))
    for key, value in source.reg_towers.state_dict().items():
        assert torch.equal(target.reg_towers.state_dict()[key], value)


def test_same_class_count_loads_as_nn_module(monkeypatch):
    messages = _logged(monkeypatch)
    source, target = _head(), YOLOv8Head(num_classes=3,
                                         in_channels=[8, 16, 32])
    target.load_state_dict(source.state_dict(), strict=True)
    assert messages == []

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from densekit.models.detectors import StreamYOLODetector
from densekit.registry import MODELS

IMG = 64
NUM_CLASSES = 4
BACKBONE = dict(type='densekit.YOLOv8CSPDarknet', deepen_factor=0.33,
                widen_factor=0.125, last_stage_out_channels=1024)
NECK = dict(type='densekit.YOLOv8PAFPN', deepen_factor=0.33)
HEAD = dict(type='densekit.TrendAwareYOLOv8Head', num_classes=NUM_CLASSES)
# keep every candidate so predictions can be compared one to one
TEST_CFG = dict(score_thr=0.0, nms_pre=1000, max_per_img=50,
                nms=dict(type='nms', iou_threshold=0.7))
FUSIONS = {
    'dfp': (dict(type='densekit.DualFlowPerception'), 1),
    'lsfm': (dict(type='densekit.LongShortTemporalFusion',
                  num_past_frames=3), 3),
    'still': (None, 0),
}


def _model(kind='dfp', **kwargs):
    torch.manual_seed(0)
    fusion, _ = FUSIONS[kind]
    cfg = dict(type='densekit.StreamYOLODetector', backbone=BACKBONE,
               neck=NECK, bbox_head=HEAD, temporal_fusion=fusion,
               test_cfg=TEST_CFG)
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _frames(num_frames, batch=1, seed=0):
    """A bright square moving right by 4 px per frame, (B, T, 3, H, W)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, num_frames, 3, IMG, IMG, generator=gen) * 0.1
    for t in range(num_frames):
        x[:, t, :, 20:36, 8 + 4 * t:24 + 4 * t] = 1.0
    return x


def _samples(batch, num_past, future=False, box_x=None, sid=0):
    samples = []
    for _ in range(batch):
        s = DetDataSample(metainfo=dict(
            img_shape=(IMG, IMG), ori_shape=(IMG, IMG),
            pad_shape=(IMG, IMG), batch_input_shape=(IMG, IMG),
            scale_factor=(1.0, 1.0), num_past_frames=num_past,
            has_future_frame=future, sid=sid))
        x = 8 + 4 * (num_past + 1) if box_x is None else box_x
        s.gt_instances = InstanceData(
            bboxes=torch.tensor([[float(x), 20., x + 16., 36.]]),
            labels=torch.tensor([1]), trend_ious=torch.tensor([0.6]))
        samples.append(s)
    return samples


def _count_backbone_calls(model):
    calls = []
    forward = model.backbone.forward

    def counting(x):
        calls.append(x.shape[0])
        return forward(x)

    model.backbone.forward = counting
    return calls


@pytest.mark.parametrize('kind', ['dfp', 'lsfm', 'still'])
def test_loss_on_windows_in_one_backbone_call(kind):
    model = _model(kind)
    num_past = FUSIONS[kind][1]
    calls = _count_backbone_calls(model)
    losses = model.loss(_frames(num_past + 1, batch=2), _samples(2, num_past))
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_dfl'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    assert calls == [2 * (num_past + 1)]  # all B*T frames at once


def test_still_detector_takes_plain_images():
    model = _model('still')
    assert model.num_past_frames == 0 and model.temporal_fusion is None
    frames = _frames(1, batch=2)
    a = model.loss(frames, _samples(2, 0))
    b = model.loss(frames[:, 0], _samples(2, 0))
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_loss_decreases_on_a_fixed_batch():
    # Task-aligned targets grow with prediction quality: the loss first
    # rises while the assigner starts finding positives (at init the tiny
    # predicted boxes overlap nothing), then falls; check the fall.
    model = _model('dfp')
    frames, samples = _frames(2, batch=2), _samples(2, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    totals = []
    for _ in range(40):
        losses = model.loss(frames, samples)
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        totals.append(loss.item())
    peak = max(totals)
    assert totals.index(peak) < 20, totals
    assert losses['loss_bbox'] > 0  # positives are assigned at the end
    assert sum(totals[-3:]) / 3 < 0.4 * peak, totals


@pytest.mark.parametrize('kind', ['dfp', 'lsfm'])
def test_stream_buffer_equals_recomputed_windows(kind):
    model = _model(kind).eval()
    num_past = FUSIONS[kind][1]
    seq = _frames(6)[0]  # (6, 3, H, W)
    calls = _count_backbone_calls(model)
    model.reset_stream()
    streamed = [model.predict_stream(seq[t:t + 1], _samples(1, num_past)[0])
                [0].pred_instances for t in range(len(seq))]
    assert calls == [1] * len(seq)  # one backbone pass per new frame
    del calls[:]
    for t in range(len(seq)):
        # the dataset's window: the earliest available frame repeated
        idx = [max(0, t - num_past + j) for j in range(num_past + 1)]
        full = model.predict(seq[idx][None], _samples(1, num_past))
        pred = full[0].pred_instances
        assert len(pred) > 0
        torch.testing.assert_close(pred.scores, streamed[t].scores,
                                   atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(pred.bboxes, streamed[t].bboxes,
                                   atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(pred.labels, streamed[t].labels)
    assert calls == [num_past + 1] * len(seq)  # recompute: whole window


def test_stream_resets_on_a_new_sequence():
    model = _model('dfp').eval()
    seq = _frames(3)[0]
    model.predict_stream(seq[:1], _samples(1, 1, sid=0)[0])
    model.predict_stream(seq[1:2], _samples(1, 1, sid=0)[0])
    assert len(model._stream_buffer) == 2
    new = model.predict_stream(seq[2:3], _samples(1, 1, sid=1)[0])
    assert len(model._stream_buffer) == 1
    fresh = model.predict(seq[[2, 2]][None], _samples(1, 1))
    torch.testing.assert_close(new[0].pred_instances.scores,
                               fresh[0].pred_instances.scores,
                               atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match='frame size changed'):
        model.predict_stream(torch.rand(1, 3, 32, 32),
                             _samples(1, 1, sid=1)[0])


def test_window_length_and_config_mismatches_raise():
    model = _model('dfp')
    with pytest.raises(ValueError, match='needs 2 input frames'):
        model.loss(_frames(3), _samples(1, 2))
    with pytest.raises(ValueError, match='num_past_frames=2'):
        model.loss(_frames(2), _samples(1, 2))
    with pytest.raises(ValueError, match='model.num_past_frames=2'):
        _model('dfp', num_past_frames=2)
    with pytest.raises(ValueError, match='still detector'):
        _model('still', num_past_frames=1)


def _teacher_cfg():
    return dict(type='densekit.YOLODetector', backbone=BACKBONE, neck=NECK,
                bbox_head=dict(type='densekit.YOLOv8Head',
                               num_classes=NUM_CLASSES))


def test_distillation_losses_and_frozen_hidden_teacher(tmp_path):
    teacher = MODELS.build(_teacher_cfg())
    teacher.init_weights()
    ckpt = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=teacher.state_dict()), ckpt)
    model = _model('dfp', teacher_cfg=_teacher_cfg(),
                   teacher_ckpt=str(ckpt))
    loaded = model.teacher
    for key, value in teacher.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    # the teacher is outside the module tree: not saved, not optimised
    assert not any(k.startswith('_teacher') or 'teacher' in k
                   for k in model.state_dict())
    teacher_params = {id(p) for p in loaded.parameters()}
    assert not teacher_params & {id(p) for p in model.parameters()}
    assert all(not p.requires_grad for p in loaded.parameters())

    model.train()
    assert not loaded.training
    calls = _count_backbone_calls(model)
    frames = _frames(3, batch=2)  # t-1, t, future t+1
    losses = model.loss(frames, _samples(2, 1, future=True))
    assert calls == [4]  # the student never sees the future frame
    assert {'loss_distill_cls', 'loss_distill_bbox'} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses['loss_distill_bbox'] > 0
    sum(losses.values()).backward()
    assert all(p.grad is None for p in loaded.parameters())
    assert model.bbox_head.cls_towers[0][0].conv.weight.grad is not None

    # a student checkpoint loads strictly into a model without a teacher
    plain = _model('dfp')
    plain.load_state_dict(model.state_dict(), strict=True)
    # the future frame is dropped at inference
    model.eval()
    model.predict(frames[:1], _samples(1, 1, future=True))


def test_distillation_needs_future_frame_and_matching_head():
    model = _model('dfp', teacher_cfg=_teacher_cfg())
    with pytest.raises(ValueError, match='load_future_frame=True'):
        model.loss(_frames(2), _samples(1, 1))
    bad = _teacher_cfg()
    bad['bbox_head']['num_classes'] = 3
    with pytest.raises(ValueError, match='num_classes'):
        _model('dfp', teacher_cfg=bad)
    with pytest.raises(ValueError, match='still detector'):
        _model('dfp', teacher_cfg=dict(
            type='densekit.StreamYOLODetector', backbone=BACKBONE,
            neck=NECK, bbox_head=HEAD,
            temporal_fusion=dict(type='densekit.DualFlowPerception')))


def test_distillation_mse_mode_is_zero_against_itself():
    model = _model('still', distill_cfg=dict(bbox_mode='mse'),
                   teacher_cfg=dict(
                       type='densekit.StreamYOLODetector', backbone=BACKBONE,
                       neck=NECK, bbox_head=HEAD, test_cfg=TEST_CFG))
    model.teacher.load_state_dict(model.state_dict())
    model.eval()  # same BN statistics for student and teacher
    frames = _frames(1, batch=2)
    frames = torch.cat([frames, frames], 1)  # future == current
    outs = model.bbox_head(model.extract_feat(frames[:, :1]))
    losses = model._distill_losses(outs, frames[:, 1])
    assert losses['loss_distill_cls'].item() == pytest.approx(0, abs=1e-8)
    assert losses['loss_distill_bbox'].item() == pytest.approx(0, abs=1e-8)


def test_mamba_yolo_backbone_builds_and_runs():
    model = _model(
        'dfp',
        backbone=dict(type='densekit.MambaYOLO', arch='T',
                      widen_factor=0.125, deepen_factor=0.1),
        neck=dict(type='densekit.MambaYOLOPAFPN', deepen_factor=0.1))
    assert isinstance(model, StreamYOLODetector)
    assert model.temporal_fusion.in_channels == [32, 64, 128]
    losses = model.loss(_frames(2), _samples(1, 1))
    assert all(torch.isfinite(v) for v in losses.values())

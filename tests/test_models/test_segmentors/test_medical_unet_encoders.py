"""The cross-task matrix's "medical U-Net encoder" column: every registered
densekit backbone, the same class as in detection and UPerNet, as the
encoder of a Swin-Unet-style medical U-Net (``PatchExpandingUNetHead``
with Swin decoder stages, TransUNet's 0.4 * CE + 0.6 * Dice loss) trained
for a step on phantom-like grey slices repeated to three channels.

The head's last patch expanding returns to the input resolution from the
backbone's first stride, read from ``feature_info`` (4 for most rows, 2
for ResNetViT), and every decoder level takes its width from the
backbone's ``out_channels``: nothing in the head is tied to Swin.
"""
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from densekit.registry import MODELS
from tests.test_models.backbone_cases import BACKBONES, registered_backbones

SIZE = 64
NUM_CLASSES = 5  # background + the phantom's 4 organs


def test_every_backbone_has_a_medical_case():
    assert set(registered_backbones()) == set(BACKBONES), (
        'add the new backbone to tests/test_models/backbone_cases.py')


def medical_unet(name):
    backbone = dict(type=f'densekit.{name}', **BACKBONES[name])
    info = MODELS.build(backbone).feature_info
    strides = [i['stride'] for i in info]
    return dict(
        type='densekit.SegEncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=None,
                               std=None, bgr_to_rgb=False, pad_val=0,
                               seg_pad_val=255, size=(SIZE, SIZE)),
        backbone=backbone,
        decode_head=dict(
            type='densekit.PatchExpandingUNetHead',
            in_index=(0, 1, 2, 3),  # in_channels from the backbone's
            block_cfg=dict(type='densekit.SwinDecoderStage', window_size=4),
            depths=(1, 1, 1),
            num_heads=(1, 1, 1),
            final_scale=strides[0],
            num_classes=NUM_CLASSES,
            loss_decode=[
                dict(type='CrossEntropyLoss', loss_weight=0.4,
                     loss_name='loss_ce'),
                dict(type='densekit.ClassDiceLoss', loss_weight=0.6,
                     loss_name='loss_dice')
            ]),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


def slice_batch(n=2):
    """Grey slices in [0, 1] (TransUNet's data) with an elliptic organ."""
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, SIZE),
                            torch.linspace(-1, 1, SIZE), indexing='ij')
    inputs, samples = [], []
    for i in range(n):
        organ = ((yy - 0.1 * i) / 0.4)**2 + (xx / 0.3)**2 <= 1
        label = organ.long() * (1 + i % (NUM_CLASSES - 1))
        grey = 0.3 + 0.4 * organ.float() + 0.02 * torch.randn(
            SIZE, SIZE, generator=gen)
        inputs.append(grey.expand(3, SIZE, SIZE).clone())
        sample = SegDataSample(metainfo=dict(img_shape=(SIZE, SIZE),
                                             ori_shape=(SIZE, SIZE),
                                             pad_shape=(SIZE, SIZE)))
        sample.gt_sem_seg = PixelData(data=label[None])
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_backbone_trains_as_medical_unet_encoder(name):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(medical_unet(name))
    assert type(model.backbone) is MODELS.get(f'densekit.{name}')
    channels = list(model.backbone.out_channels)
    assert model.decode_head.in_channels == channels
    model.train()
    data = model.data_preprocessor(slice_batch(), training=True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert {'decode.loss_ce', 'decode.loss_dice'} <= set(losses)
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert grads and sum(float(g.abs().sum()) for g in grads
                         if g is not None) > 0
    model.eval()
    with torch.no_grad():
        preds = model.test_step(slice_batch(n=1))
    pred = preds[0].pred_sem_seg.data
    assert pred.shape == (1, SIZE, SIZE)
    assert int(pred.min()) >= 0 and int(pred.max()) < NUM_CLASSES

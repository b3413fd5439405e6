"""ClassDiceLoss: TransUNet's per-class batch Dice, against a direct loop
over classes (the reference formula) and on limiting cases."""
import pytest
import torch

from densekit.models.losses import ClassDiceLoss
from densekit.registry import MODELS


def transunet_dice_loss(logits, target, num_classes, smooth=1e-5):
    # TransUNet utils.DiceLoss, written out class by class
    score = logits.softmax(1)
    total = 0
    for c in range(num_classes):
        s, t = score[:, c], (target == c).float()
        intersect = (s * t).sum()
        total += 1 - (2 * intersect + smooth) / ((s * s).sum() +
                                                  (t * t).sum() + smooth)
    return total / num_classes


def test_matches_transunet_formula():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 8, 8, requires_grad=True)
    target = torch.randint(0, 4, (2, 8, 8))
    loss = ClassDiceLoss()(logits, target)
    torch.testing.assert_close(loss, transunet_dice_loss(logits, target, 4))
    loss.backward()
    assert logits.grad.abs().sum() > 0


def test_limits_ignore_and_registry():
    target = torch.randint(0, 3, (1, 6, 6))
    perfect = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1,
                                                             2) * 50.
    assert float(ClassDiceLoss()(perfect.float(), target)) < 1e-3
    # an ignored pixel changes nothing whatever its logits
    logits = torch.randn(1, 3, 6, 6)
    ignored = target.clone()
    ignored[0, 0, 0] = 255
    other = logits.clone()
    other[0, :, 0, 0] = torch.tensor([9., -9., 0.])
    loss = ClassDiceLoss()
    torch.testing.assert_close(loss(logits, ignored), loss(other, ignored))
    built = MODELS.build(dict(type='densekit.ClassDiceLoss', loss_weight=0.5,
                              loss_name='loss_dice'))
    assert built.loss_name == 'loss_dice'
    torch.testing.assert_close(built(logits, target),
                               0.5 * ClassDiceLoss()(logits, target))
    with pytest.raises(ValueError, match='num_classes'):
        ClassDiceLoss()(logits, torch.full((1, 6, 6), 5))

"""Corner pooling: each directional pool against a loop reference (values
and gradients), a hand-checkable 3x3 case, and the CornerPool block."""
import pytest
import torch

from densekit.models.layers import CornerPool, directional_pool
from densekit.models.layers.corner_pool import _naive_directional_pool


@pytest.mark.parametrize('direction', ['top', 'bottom', 'left', 'right'])
@pytest.mark.parametrize('shape', [(2, 3, 5, 7), (1, 1, 1, 4), (1, 2, 6, 1)])
def test_matches_naive(direction, shape):
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = directional_pool(x, direction), _naive_directional_pool(
        x_ref, direction)
    print(direction, (y - y_ref).abs().max().item())
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_hand_checked():
    x = torch.tensor([[1., 5., 2.], [4., 0., 3.], [2., 6., 1.]])[None, None]
    expected = {
        'top': [[4, 6, 3], [4, 6, 3], [2, 6, 1]],
        'bottom': [[1, 5, 2], [4, 5, 3], [4, 6, 3]],
        'left': [[5, 5, 2], [4, 3, 3], [6, 6, 1]],
        'right': [[1, 5, 5], [4, 4, 4], [2, 6, 6]],
    }
    for d, e in expected.items():
        assert directional_pool(x, d)[0, 0].tolist() == e, d


def test_bad_direction():
    with pytest.raises(ValueError, match='direction must be one of'):
        directional_pool(torch.zeros(1, 1, 2, 2), 'up')
    with pytest.raises(ValueError, match='corner must be one of'):
        CornerPool(4, corner='top_right')


@pytest.mark.parametrize('corner', ['top_left', 'bottom_right'])
def test_corner_pool_block(corner):
    torch.manual_seed(0)
    block = CornerPool(8, corner=corner, corner_channels=4,
                       norm_cfg=dict(type='GN', num_groups=4))
    assert block.directions == {'top_left': ('top', 'left'),
                                'bottom_right': ('bottom', 'right')}[corner]
    x = torch.randn(2, 8, 6, 5, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.sum().backward()
    assert x.grad.abs().sum() > 0

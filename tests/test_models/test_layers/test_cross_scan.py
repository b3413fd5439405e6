import pytest
import torch

from densekit.models.layers.cross_scan import cross_merge, cross_scan


def _loop_scan(x):
    """Four routes written out pixel by pixel (the module docstring table)."""
    batch, channels, height, width = x.shape
    routes = [[], [], [], []]
    for h in range(height):
        for w in range(width):
            routes[0].append(x[:, :, h, w])
    for w in range(width):
        for h in range(height):
            routes[1].append(x[:, :, h, w])
    routes[2] = routes[0][::-1]
    routes[3] = routes[1][::-1]
    return torch.stack([torch.stack(r, dim=-1) for r in routes], dim=1)


def test_scan_matches_hand_written_routes_on_2x3():
    x = torch.arange(6.).view(1, 1, 2, 3)  # [[0, 1, 2], [3, 4, 5]]
    xs = cross_scan(x)
    assert xs.shape == (1, 4, 1, 6)
    assert xs[0, :, 0].tolist() == [[0, 1, 2, 3, 4, 5],
                                    [0, 3, 1, 4, 2, 5],
                                    [5, 4, 3, 2, 1, 0],
                                    [5, 2, 4, 1, 3, 0]]
    assert torch.equal(xs, _loop_scan(x))


@pytest.mark.parametrize('shape', [(2, 3, 2, 3), (1, 4, 5, 3), (2, 2, 4, 4)])
def test_scan_matches_loop(shape):
    x = torch.randn(shape)
    assert torch.equal(cross_scan(x), _loop_scan(x))


def test_merge_maps_each_route_back_to_row_major():
    x = torch.arange(6.).view(1, 1, 2, 3)
    xs = cross_scan(x)
    for k in range(4):
        only_k = torch.zeros_like(xs)
        only_k[:, k] = xs[:, k]
        assert torch.equal(cross_merge(only_k, 2, 3), x.flatten(2)), k
    # every route folded back and summed
    assert torch.equal(cross_merge(xs, 2, 3), 4 * x.flatten(2))


def test_merge_is_the_adjoint_of_scan():
    # <scan(x), y> == <x, merge(y)>: merge is scan's transpose, which is the
    # backward pass the official autograd.Functions hand-write
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    ys = torch.randn(2, 4, 3, 20, dtype=torch.float64)
    lhs = (cross_scan(x) * ys).sum()
    rhs = (x.flatten(2) * cross_merge(ys, 4, 5)).sum()
    torch.testing.assert_close(lhs, rhs)
    lhs.backward()
    torch.testing.assert_close(x.grad.flatten(2), cross_merge(ys, 4, 5))


def test_merge_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r'4 x 5'):
        cross_merge(torch.zeros(1, 4, 2, 21), 4, 5)

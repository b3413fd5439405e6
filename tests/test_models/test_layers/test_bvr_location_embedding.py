"""BVR location embedding: sine layout and symmetry, table path against the
exact path, translation invariance, shapes; the attention decoder."""
import pytest
import torch

from densekit.models.layers import BVRAttentionDecoder, BVRLocationEmbedding
from densekit.models.layers.bvr_location_embedding import sine_embedding


def test_sine_embedding_symmetry():
    d = torch.tensor([[3., -2.], [0.5, 7.]])
    e, e_neg = sine_embedding(d, 16), sine_embedding(-d, 16)
    assert e.shape == (2, 16)
    q = 4  # [sin dx, cos dx, sin dy, cos dy], 4 wide each
    sin = torch.cat([e[:, :q], e[:, 2 * q:3 * q]], 1)
    cos = torch.cat([e[:, q:2 * q], e[:, 3 * q:]], 1)
    sin_n = torch.cat([e_neg[:, :q], e_neg[:, 2 * q:3 * q]], 1)
    cos_n = torch.cat([e_neg[:, q:2 * q], e_neg[:, 3 * q:]], 1)
    torch.testing.assert_close(sin_n, -sin)  # odd
    torch.testing.assert_close(cos_n, cos)  # even
    zero = sine_embedding(torch.zeros(1, 2), 16)[0]
    assert zero.tolist() == ([0.] * q + [1.] * q) * 2
    # first frequency has wavelength 1: sin(dx) itself
    torch.testing.assert_close(e[:, 0], d[:, 0].sin())
    with pytest.raises(ValueError, match='multiple of 4'):
        sine_embedding(d, 10)


def _embed(log_scale=True):
    torch.manual_seed(0)
    emb = BVRLocationEmbedding(4, embed_dims=32, base_size=40,
                               position_scale=8, log_scale=log_scale)
    torch.nn.init.normal_(emb.proj.weight)  # larger than the init
    return emb


def test_table_matches_exact_at_integer_offsets():
    emb = _embed(log_scale=False)
    q = torch.randint(0, 20, (2, 7, 2)).float() * 8
    k = torch.randint(0, 20, (2, 5, 2)).float() * 8 + 4 * 8
    out, ref = emb(q, k), emb.forward_exact(q, k)
    assert out.shape == (2, 4, 7, 5)
    print('integer offsets max diff', (out - ref).abs().max().item())
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    # beyond the table: clamped to the border like the exact path's clamp
    far = emb(q[:, :1], q[:, :1] + 1e4)
    torch.testing.assert_close(far, emb.forward_exact(q[:, :1],
                                                      q[:, :1] + 1e4),
                               rtol=1e-4, atol=1e-4)


def test_distinct_coordinate_path_equals_pairwise_path():
    """Grid queries (few distinct x / y) go through the per-coordinate
    interpolation; queries that need a gradient through the pair-by-pair
    one: same values and the same gradients for keys and weights."""
    emb = _embed()
    xs = torch.tensor([4., 12., 20., 28.])
    grid = torch.cartesian_prod(xs, xs)  # 16 queries, 4 distinct x and y
    q = torch.cat([grid, torch.tensor([[8., 100.]])])[None].repeat(2, 1, 1)
    k = (torch.rand(2, 5, 2) * 120).requires_grad_()
    fast = emb(q, k)
    fast.square().sum().backward()
    grads = k.grad.clone(), emb.proj.weight.grad.clone()
    k.grad = None
    emb.zero_grad()
    slow = emb(q.clone().requires_grad_(), k)
    slow.square().sum().backward()
    torch.testing.assert_close(fast, slow, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grads[0], k.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[1], emb.proj.weight.grad, rtol=1e-5,
                               atol=1e-5)


def test_fractional_offsets_interpolate():
    emb = _embed(log_scale=False)
    q = torch.rand(1, 6, 2) * 100
    k = torch.rand(1, 4, 2) * 100
    out, ref = emb(q, k), emb.forward_exact(q, k)
    # linear interpolation of a wavelength-1 sine: small, bounded error
    err = (out - ref).abs().max().item()
    print('fractional offsets max diff', err)
    assert err < 0.5 * ref.abs().max().item()


def test_translation_invariance_and_log_scale():
    emb = _embed()
    q = torch.rand(2, 9, 2) * 64
    k = torch.rand(2, 3, 2) * 64
    shift = torch.tensor([16., -24.])  # whole cells of the table
    torch.testing.assert_close(emb(q, k), emb(q + shift, k + shift))
    out = emb(q, k)
    assert torch.isfinite(out).all()
    assert out.min() >= torch.tensor(1e-6).log() - 1e-4  # log(clamp(eps))
    # query == key: offset 0 for every head
    same = emb(q, q)
    diag = same.diagonal(dim1=2, dim2=3)  # N h Q
    torch.testing.assert_close(diag, diag[..., :1].expand_as(diag))


@pytest.mark.parametrize('with_appearance', [True, False])
def test_decoder(with_appearance):
    torch.manual_seed(0)
    dec = BVRAttentionDecoder(
        16, num_heads=4, num_key_types=2, with_appearance=with_appearance,
        location_embedding=dict(type='densekit.BVRLocationEmbedding',
                                embed_dims=32, base_size=40, log_scale=False))
    q = torch.randn(2, 11, 16, requires_grad=True)
    qp = torch.rand(2, 11, 2) * 64
    keys = [torch.randn(2, 5, 16, requires_grad=True) for _ in range(2)]
    kp = [torch.rand(2, 5, 2, requires_grad=True) * 64 for _ in range(2)]
    out = dec(q, qp, keys, kp)
    assert out.shape == q.shape and (out >= 0).all()
    out.sum().backward()
    assert keys[0].grad.abs().sum() > 0 and keys[1].grad.abs().sum() > 0
    assert dec.location_embedding.proj.weight.grad.abs().sum() > 0
    # queries are independent of each other: permuting them permutes out
    perm = torch.randperm(11)
    out_p = dec(q[:, perm], qp[:, perm], keys, kp)
    torch.testing.assert_close(out_p, out[:, perm])
    with pytest.raises(ValueError, match='expected 2 key sets'):
        dec(q, qp, keys[:1], kp[:1])


def test_decoder_widths():
    """Wide queries, narrower keys and attention: shapes, the parameter
    layout, and a matching reference computation of one key type."""
    torch.manual_seed(0)
    dec = BVRAttentionDecoder(32, num_heads=2, key_dims=12,
                              attention_dims=8, location_embedding=None)
    q, qp = torch.randn(2, 7, 32), torch.rand(2, 7, 2) * 64
    k, kp = torch.randn(2, 5, 12), torch.rand(2, 5, 2) * 64
    out = dec(q, qp, [k], [kp])
    assert out.shape == q.shape
    assert dec.query_projs[0].weight.shape == (8, 32)
    assert dec.key_value_projs[0].weight.shape == (16, 12)
    assert dec.out_projs[0].weight.shape == (32, 8)
    # reference: per head softmax(q k^T / sqrt(d)) v, heads concatenated
    qh = dec.query_projs[0](q).view(2, 7, 2, 4).transpose(1, 2)
    kv = dec.key_value_projs[0](k)
    kh = kv[..., :8].view(2, 5, 2, 4).transpose(1, 2)
    vh = kv[..., 8:].view(2, 5, 2, 4).transpose(1, 2)
    att = (qh @ kh.transpose(-1, -2) / 2.0).softmax(-1) @ vh
    ref = torch.relu(q + dec.out_projs[0](att.transpose(1, 2).reshape(
        2, 7, 8)))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match='attention_dims'):
        BVRAttentionDecoder(32, num_heads=3, attention_dims=8)

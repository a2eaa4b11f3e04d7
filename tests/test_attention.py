"""Attention analysis (rollout, gradient-weighted, distance) and positional-embedding tools."""

import pytest
import torch

from vitlab import ViT, vit_micro_mnist
from vitlab.analysis.attention import (
    attention_maps,
    attention_rollout,
    cls_attention,
    fuse_heads,
    gradient_rollout,
    mean_attention_distance,
    patch_distances,
    token_map,
    upsample_map,
)
from vitlab.analysis.positions import (
    neighbour_similarity,
    patch_position_embeddings,
    pca_2d,
    position_similarity,
    shuffle_patches,
)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return ViT(vit_micro_mnist()).eval()  # 7x7 patches: 16 patches, T = 17, 2 layers, 2 heads


def test_attention_maps_shapes_and_rows(model):
    x = torch.randn(3, 1, 28, 28)
    r = attention_maps(model, x)
    assert r.attn.shape == (3, 2, 2, 17, 17)
    assert torch.allclose(r.attn.sum(-1), torch.ones(3, 2, 2, 17), atol=1e-5)
    assert torch.allclose(r.logits, model(x), atol=1e-5)
    assert r.grads is None


def _target_logit_with_attention_nudged(model, x, layer, delta, target):
    """The target logit when `delta` is added to layer `layer`'s attention weights after the softmax.

    Test code may reach into the model: it re-implements that layer's attention (as `Attention.forward` does on its
    explicit path) with the nudge, so the finite difference below is independent of `attention_maps`.
    """
    attn = model.blocks[layer].attn

    def nudged(h, return_attn=False):
        B, T, D = h.shape
        q, k, v = attn.qkv(h).reshape(B, T, 3, attn.heads, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        w = ((q @ k.transpose(-2, -1)) * attn.scale).softmax(-1) + delta  # (B, h, T, T)
        return attn.proj((w @ v).transpose(1, 2).reshape(B, T, D)), w

    attn.forward = nudged
    try:
        with torch.no_grad():
            return model(x)[:, target]  # (B,)
    finally:
        del attn.forward


def test_gradients_match_finite_differences_of_target_logit(model):
    model = model.double()
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    r = attention_maps(model, x, with_grads=True, target=3)
    assert r.grads.shape == r.attn.shape and r.target.tolist() == [3, 3]
    g = torch.Generator().manual_seed(0)
    eps = 1e-5
    for layer in range(r.attn.shape[1]):
        delta = torch.randn(r.attn[:, layer].shape, generator=g, dtype=torch.float64)  # (B, h, T, T)
        up = _target_logit_with_attention_nudged(model, x, layer, eps * delta, 3)
        down = _target_logit_with_attention_nudged(model, x, layer, -eps * delta, 3)
        numeric = (up - down) / (2 * eps)  # (B,) directional derivative
        analytic = (r.grads[:, layer] * delta).sum(dim=(1, 2, 3))  # (B,)
        assert torch.allclose(analytic, numeric, rtol=1e-6, atol=1e-8), (layer, analytic, numeric)
        assert analytic.abs().min() > 1e-4
    # In the last layer only the CLS query's row reaches the head: every other row has zero gradient.
    assert r.grads[:, -1, :, 1:].abs().max() == 0 and r.grads[:, -1, :, 0].abs().max() > 0
    assert all(p.grad is None for p in model.parameters())  # no gradients left on the model
    r2 = attention_maps(model, x, with_grads=True)
    assert r2.target.tolist() == r2.logits.argmax(1).tolist()


def test_rollout_rows_are_distributions_and_one_layer_case(model):
    x = torch.randn(2, 1, 28, 28)
    attn = attention_maps(model, x).attn
    R = attention_rollout(attn)
    assert R.shape == (2, 17, 17)
    assert torch.allclose(R.sum(-1), torch.ones(2, 17), atol=1e-5)
    # With one layer, rollout is 0.5 * mean-head attention + 0.5 * identity.
    R1 = attention_rollout(attn, upto=1)
    expected = 0.5 * attn[:, 0].mean(1) + 0.5 * torch.eye(17)
    assert torch.allclose(R1, expected, atol=1e-6)
    for fusion in ("max", "min", 1):
        assert torch.allclose(attention_rollout(attn, fusion).sum(-1), torch.ones(2, 17), atol=1e-5)
    Rd = attention_rollout(attn, discard_ratio=0.9)
    assert torch.allclose(Rd.sum(-1), torch.ones(2, 17), atol=1e-5) and not torch.allclose(Rd, R)
    with pytest.raises(ValueError, match="discard_ratio"):
        attention_rollout(attn, discard_ratio=1.0)
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout(attn, "median")
    with pytest.raises(ValueError, match="head 5 does not exist"):
        fuse_heads(attn[:, 0], 5)
    with pytest.raises(ValueError, match="upto"):
        attention_rollout(attn, upto=3)


def test_gradient_rollout(model):
    x = torch.randn(2, 1, 28, 28)
    r = attention_maps(model, x, with_grads=True)
    G = gradient_rollout(r.attn, r.grads)
    assert G.shape == (2, 17, 17) and (G >= 0).all()
    # Identity plus non-negative relevance: never below the identity.
    assert (G - torch.eye(17) >= -1e-7).all()
    with pytest.raises(ValueError, match="gradients"):
        gradient_rollout(r.attn, None)


def test_token_map_and_upsample():
    rows = torch.arange(17.0)  # CLS then 16 patches
    m = token_map(rows, 4)
    assert m.shape == (4, 4) and m[0, 0] == 1 and m[3, 3] == 16
    assert torch.allclose(token_map(rows, 4, normalize=True).sum(), torch.tensor(1.0))
    up = upsample_map(m, 28)
    assert up.shape == (28, 28) and up[0, 0] == 1 and up[27, 27] == 16 and up[6, 6] == 1 and up[7, 7] == 6
    with pytest.raises(ValueError, match="patch tokens"):
        token_map(rows, 3)


def test_mean_attention_distance_extremes():
    g, P = 4, 7
    N = g * g
    T = N + 1
    # Each patch attends only to itself: distance 0. Uniformly over patches: the mean pairwise distance.
    local = torch.eye(T).expand(1, 1, 1, T, T)
    uniform = torch.full((1, 1, 1, T, T), 1.0 / T)
    assert mean_attention_distance(local, g, P).item() == pytest.approx(0.0)
    expected = patch_distances(g, P).mean().item()
    assert mean_attention_distance(uniform, g, P).item() == pytest.approx(expected, rel=1e-5)
    assert patch_distances(g, P)[0, 1] == pytest.approx(7.0) and patch_distances(g, P)[0, 5] == pytest.approx(7 * 2**0.5)


def test_cls_attention_shape(model):
    attn = attention_maps(model, torch.randn(2, 1, 28, 28)).attn
    assert cls_attention(attn, 4).shape == (2, 2, 2, 4, 4)


def test_position_similarity_of_sincos_is_local():
    model = ViT(vit_micro_mnist(pos_embed="sincos"))
    pos = patch_position_embeddings(model)
    assert pos.shape == (16, 32)
    sim = position_similarity(pos)
    assert sim.shape == (4, 4, 4, 4)
    assert torch.allclose(sim[1, 2, 1, 2], torch.tensor(1.0), atol=1e-5)
    s = neighbour_similarity(sim)
    assert s["neighbours"] > s["elsewhere"]
    xy, ratio = pca_2d(pos)
    assert xy.shape == (16, 2) and 0 < ratio.sum() <= 1.0001
    assert patch_position_embeddings(ViT(vit_micro_mnist(pos_embed="none"))) is None
    with pytest.raises(ValueError, match="square"):
        position_similarity(torch.randn(15, 8))


def test_centred_position_similarity_ignores_what_every_position_shares():
    torch.manual_seed(0)
    pos = torch.randn(16, 8)
    shifted = pos + 10 * torch.randn(8)  # one large vector added to every position: raw cosines all near 1
    torch.testing.assert_close(position_similarity(shifted, centre=True), position_similarity(pos, centre=True))
    assert position_similarity(shifted).reshape(16, 16).min() > 0.5
    centred = pos - pos.mean(0)
    torch.testing.assert_close(position_similarity(pos, centre=True), position_similarity(centred))


def test_shuffle_patches_keeps_the_patches_and_moves_them():
    x = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28)
    y = shuffle_patches(x, 7, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.equal(x, y)
    from vitlab.models import patchify

    px, py = patchify(x, 7), patchify(y, 7)
    for b in range(2):  # the same set of patches, in another order
        assert sorted(map(tuple, px[b].tolist())) == sorted(map(tuple, py[b].tolist()))
    # A model without positional embeddings and mean pooling cannot tell the difference.
    torch.manual_seed(0)
    m = ViT(vit_micro_mnist(pos_embed="none", pool="mean")).eval()
    with torch.no_grad():
        assert torch.allclose(m(x), m(y), atol=1e-4)

"""Set models over sequences of digit embeddings (vitlab.models.sets) and the sequence tasks (vitlab.methods.sequences):
invariances, the exact sum head, bad inputs, and the sampled data."""

import pytest
import torch

from vitlab.methods.sequences import (
    FeatureTable,
    SeqModel,
    SeqTrainConfig,
    anchor_sequences,
    fit_sequences,
    sum_accuracy,
    sum_sequences,
)
from vitlab.models.sets import (
    AnchorSetModel,
    SetConfig,
    SumSetModel,
    allow_length,
    sum_distribution,
)

E = 12
SUM_KINDS = [("deepsets", "sum", "digits"), ("deepsets", "sum", "regress"), ("deepsets", "mean", "class"),
             ("transformer", "cls", "class"), ("transformer", "sum", "digits"), ("transformer", "sum", "regress")]


def batch(B=5, L=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, E, generator=g)
    lens = torch.tensor([1, 3, 10, 7, 2][:B])
    return x, torch.arange(L)[None] < lens[:, None]


def sum_model(kind, pool, head):
    torch.manual_seed(0)
    return SumSetModel(SetConfig(embed_dim=E, dim=16, heads=2, kind=kind, pool=pool, head=head)).eval()


def anchor_model(kind):
    torch.manual_seed(0)
    return AnchorSetModel(SetConfig(embed_dim=E, dim=16, heads=2, kind=kind)).eval()


def out_of(model, x, mask, anchor=None):
    with torch.no_grad():
        return model(anchor, x, mask)[0] if anchor is not None else model(x, mask).out


@pytest.mark.parametrize("kind,pool,head", SUM_KINDS)
def test_sum_models_are_permutation_invariant(kind, pool, head):
    m = sum_model(kind, pool, head)
    x, mask = batch(B=1, L=7)
    mask[:] = True
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out_of(m, x[:, perm], mask), out_of(m, x, mask), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["cross", "self"])
def test_anchor_models_are_permutation_invariant(kind):
    m = anchor_model(kind)
    x, mask = batch(B=1, L=7)
    mask[:] = True
    a = torch.randn(1, E)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out_of(m, x[:, perm], mask, a), out_of(m, x, mask, a), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind,pool,head", SUM_KINDS + [("fc", "sum", "regress")])
def test_padding_under_the_mask_changes_nothing(kind, pool, head):
    m = sum_model(kind, pool, head)
    x, mask = batch(B=3, L=6)
    mask = torch.arange(6)[None] < torch.tensor([[1], [3], [6]])
    x2 = torch.cat([x, 50 * torch.randn(3, 4, E)], 1)  # 4 more slots of garbage, masked out
    mask2 = torch.cat([mask, torch.zeros(3, 4, dtype=torch.bool)], 1)
    x3 = x.clone()
    x3[~mask] = 1e3  # garbage in the existing padding too
    o = out_of(m, x, mask)
    assert (out_of(m, x2, mask2) - o).abs().max() < 1e-5
    assert (out_of(m, x3, mask) - o).abs().max() < 1e-5


@pytest.mark.parametrize("kind", ["fc", "cross", "self"])
def test_anchor_padding_changes_nothing(kind):
    m = anchor_model(kind)
    x, mask = batch(B=3, L=6)
    mask = torch.arange(6)[None] < torch.tensor([[1], [3], [6]])
    a = torch.randn(3, E)
    x2 = torch.cat([x, 50 * torch.randn(3, 4, E)], 1)
    mask2 = torch.cat([mask, torch.zeros(3, 4, dtype=torch.bool)], 1)
    assert (out_of(m, x2, mask2, a) - out_of(m, x, mask, a)).abs().max() < 1e-5


@pytest.mark.parametrize("kind,pool,head", SUM_KINDS)
def test_a_mixed_batch_answers_as_each_sequence_alone(kind, pool, head):
    m = sum_model(kind, pool, head)
    x, mask = batch()
    together = out_of(m, x, mask)
    for i in range(len(x)):
        n = int(mask[i].sum())
        alone = out_of(m, x[i:i + 1, :n], mask[i:i + 1, :n])[0]
        assert (together[i] - alone).abs().max() < 1e-4


def test_anchor_mixed_batch_answers_as_each_alone():
    m = anchor_model("cross")
    x, mask = batch()
    a = torch.randn(len(x), E)
    together = out_of(m, x, mask, a)
    for i in range(len(x)):
        n = int(mask[i].sum())
        assert abs(float(together[i] - out_of(m, x[i:i + 1, :n], mask[i:i + 1, :n], a[i:i + 1])[0])) < 1e-5


def test_sum_distribution_is_the_exact_convolution():
    p = torch.softmax(torch.randn(1, 3, 10), -1)
    mask = torch.tensor([[True, True, False]])
    got = sum_distribution(p.log(), mask).exp()[0]  # (28,)
    want = torch.zeros(28)
    for a in range(10):
        for b in range(10):
            want[a + b] += p[0, 0, a] * p[0, 1, b]
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("make,message", [
    (lambda x, m: (x, torch.zeros_like(m)), "has length 0"),
    (lambda x, m: (torch.randn(2, 11, E), torch.ones(2, 11, dtype=torch.bool)), "over the maximum of 10"),
    (lambda x, m: (x, m[:, :5]), "does not match"),
    (lambda x, m: (x, m.float()), "must be a bool tensor"),
    (lambda x, m: (x[0], m), "items must be (B, L, E)"),
])
def test_bad_inputs_get_one_line_errors(make, message):
    m = sum_model("deepsets", "sum", "digits")
    x, mask = batch()
    with pytest.raises(ValueError) as e:
        m(*make(x, mask))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_configs_and_extrapolation():
    with pytest.raises(ValueError, match="no 'digits' head"):
        SumSetModel(SetConfig(kind="fc", head="digits"))
    with pytest.raises(ValueError, match="fixed maximum length"):
        allow_length(sum_model("deepsets", "sum", "class"), 20)
    m = allow_length(sum_model("deepsets", "sum", "digits"), 20)
    assert m(torch.randn(1, 20, E), torch.ones(1, 20, dtype=torch.bool)).out.shape == (1, 181)
    assert m(torch.randn(1, 20, E), torch.ones(1, 20, dtype=torch.bool)).out.exp().sum().item() == pytest.approx(1, abs=1e-4)


def test_sequences_are_random_seeded_and_masked(mnist):
    a = sum_sequences(mnist.test, 400, seed=0)
    b = sum_sequences(mnist.test, 400, seed=0)
    assert torch.equal(a.items, b.items)
    assert set(a.lengths.tolist()) == set(range(1, 11))
    real = a.items[a.mask]
    assert (real >= 0).all() and torch.equal(a.mask, a.items >= 0)
    for row in a.items:  # distinct images within a sequence, not consecutive windows
        r = row[row >= 0]
        assert len(r.unique()) == len(r)
    assert (torch.diff(a.items[:, :2], dim=1).abs() != 1).float().mean() > 0.9
    labels = mnist.test.labels
    assert torch.equal(a.sums, torch.stack([labels[r[r >= 0]].sum() for r in a.items]))


def test_anchor_sequences_are_balanced_and_correct(mnist):
    s = anchor_sequences(mnist.test, 200, seed=0)
    assert float(s.target.mean()) == 0.5
    labels = mnist.test.labels
    for row, a, t in zip(s.items, s.anchor, s.target):
        r = row[row >= 0]
        assert int(a) not in r.tolist()
        assert bool((labels[r] == labels[a]).any()) == bool(t)


def test_a_set_model_learns_sums_from_one_hot_digits(mnist):
    # perfect per-digit embeddings (one-hot labels): the digits head must learn exact sums quickly
    feats = torch.nn.functional.one_hot(mnist.test.labels, 10).float()
    train = sum_sequences(mnist.test, 2000, max_len=5, seed=0)
    torch.manual_seed(0)
    model = SeqModel(SumSetModel(SetConfig(embed_dim=10, dim=16, max_len=5)), FeatureTable(feats))
    fit_sequences(model, train, SeqTrainConfig(epochs=3, batch_size=64, lr=1e-2))
    assert sum_accuracy(model, sum_sequences(mnist.test, 300, max_len=5, seed=1))["exact"] > 0.95

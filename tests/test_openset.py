"""Open-set scores, metrics and splits."""

import math

import numpy as np
import pytest
import torch

from vitlab.data import DATASETS, ImageSet
from vitlab.methods.openset import (
    auroc,
    calibration,
    fpr_at_tpr,
    known_score,
    known_unknown_split,
    open_set_splits,
    threshold_at_tpr,
)


def test_scores():
    logits = torch.tensor([[4.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    msp = known_score(logits, "msp")
    assert msp[0] > msp[1] and torch.isclose(msp[1], torch.tensor(1 / 3))
    assert known_score(logits, "max_logit").tolist() == [4.0, 1.0]
    e = known_score(logits, "energy")
    assert torch.allclose(e, torch.logsumexp(logits, -1))
    with pytest.raises(ValueError, match="score must be one of"):
        known_score(logits, "entropy")


def test_auroc_and_fpr():
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auroc([0.1, 0.2], [0.9, 0.8]) == 0.0
    assert auroc([0.5, 0.5], [0.5, 0.5]) == 0.5
    known = np.linspace(0, 1, 101)  # 0.00 .. 1.00
    thr = threshold_at_tpr(known, 0.95)
    assert (known >= thr).mean() >= 0.95 and thr == pytest.approx(0.05)
    assert fpr_at_tpr(known, np.array([0.0, 0.04, 0.06, 0.9])) == 0.5
    with pytest.raises(ValueError):
        auroc([], [0.1])


def test_calibration_perfect_and_overconfident():
    # 10 predictions at confidence 0.9 of which 9 are right: perfectly calibrated.
    probs = torch.tensor([[0.9, 0.1]] * 10)
    labels = torch.tensor([0] * 9 + [1])
    c = calibration(probs, labels, bins=10)
    assert c.ece == pytest.approx(0.0, abs=1e-6) and c.bin_counts.sum() == 10
    # All wrong at confidence 0.9: ECE 0.9.
    assert calibration(probs, torch.ones(10, dtype=torch.long), bins=10).ece == pytest.approx(0.9)
    assert np.isnan(c.bin_accuracy[0])  # empty bins are nan, not zero


def test_known_unknown_split():
    data = ImageSet(torch.zeros(10, 28, 28, dtype=torch.uint8), torch.arange(10), DATASETS["mnist"], "t")
    k, rest = known_unknown_split(data, [7, 2])
    assert k.labels.tolist() == [1, 0]  # 2 -> 1, 7 -> 0 (the order given), in dataset order
    assert sorted(rest.labels.tolist()) == [0, 1, 3, 4, 5, 6, 8, 9]
    _, unk = known_unknown_split(data, [7, 2], unknown_label=True)
    assert set(unk.labels.tolist()) == {2}
    with pytest.raises(ValueError, match="distinct"):
        known_unknown_split(data, [1, 1])
    with pytest.raises(ValueError, match="0..9"):
        known_unknown_split(data, [10])


def test_open_set_splits_are_seeded_and_distinct():
    s = open_set_splits(6, 10, 5, seed=0)
    assert s == open_set_splits(6, 10, 5, seed=0) and len({tuple(x) for x in s}) == 5
    assert all(len(x) == 6 and x == sorted(x) for x in s)


class _PixelModel(torch.nn.Module):
    """Class c is 'pixel (0, c) is lit'; with explicit=True a third logit of 2.0 says 'unknown'."""

    def __init__(self, explicit):
        super().__init__()
        self.explicit = explicit
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        lit = (x[:, 0, 0, :2] - x[:, 0, 0, 2:3]) * 2  # (B, 2): lit pixels stand above the background
        if self.explicit:
            lit = torch.cat([lit, torch.full_like(lit[:, :1], 2.0)], dim=1)
        return lit


def _sets():
    from vitlab.methods.openset import noise_images

    imgs = torch.zeros(20, 28, 28, dtype=torch.uint8)
    labels = torch.arange(20) % 2
    imgs[torch.arange(20), 0, labels] = 255
    known = ImageSet(imgs, labels, DATASETS["mnist"], "known")
    blank = ImageSet(torch.zeros(10, 28, 28, dtype=torch.uint8), torch.zeros(10, dtype=torch.long), DATASETS["mnist"], "blank")
    return known, {"blank": blank, "noise": noise_images(10, known)}


def test_evaluate_open_set_explicit_and_threshold():
    from vitlab.methods.openset import evaluate_open_set

    known, unknowns = _sets()
    r = evaluate_open_set(_PixelModel(True), known, unknowns, method="explicit")
    assert r.known_acc == 1.0 and r.unknown_recall["blank"] == 1.0 and r.auroc["blank"] == 1.0
    assert r.confusion.tolist() == [[10, 0, 0], [0, 10, 0], [0, 0, 10]]
    t = evaluate_open_set(_PixelModel(False), known, unknowns, method="threshold", score="msp", known_val=known)
    assert t.method == "threshold:msp" and t.known_acc == 1.0 and t.unknown_recall["blank"] == 1.0
    assert t.auroc["blank"] == 1.0 and t.fpr95["blank"] == 0.0 and t.threshold > 0.5
    with pytest.raises(ValueError, match="validation"):
        evaluate_open_set(_PixelModel(False), known, unknowns, method="threshold")
    with pytest.raises(ValueError, match="method"):
        evaluate_open_set(_PixelModel(False), known, unknowns, method="vote")


# --------------------------------------------------------------------------- nearest-neighbour score, outlier exposure


def test_nearest_neighbour_score():
    from vitlab.methods.openset import NearestNeighbourScore

    bank = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 3.0]])
    knn = NearestNeighbourScore(k=1).fit(bank)
    s = knn(np.array([[5.0, 0.0], [1.0, 1.0], [-1.0, 0.0]]))
    assert s == pytest.approx([1.0, np.sqrt(0.5), 0.0], abs=1e-6)  # cosine to the nearest known feature
    s2 = NearestNeighbourScore(k=2).fit(bank)(np.array([[0.0, 1.0]]))
    assert s2 == pytest.approx([1.0])  # the two (0, y) features are both at cosine 1
    assert NearestNeighbourScore(k=3).fit(bank)(np.array([[0.0, 1.0]])) == pytest.approx([0.0])
    with pytest.raises(ValueError, match="D=3"):
        knn(np.ones((1, 3)))
    with pytest.raises(RuntimeError, match="fit"):
        NearestNeighbourScore()(bank)
    with pytest.raises(ValueError, match="at least k=5"):
        NearestNeighbourScore(k=5).fit(bank)


def test_splice_digits_joins_two_classes():
    from vitlab.methods.openset import splice_digits

    x = torch.stack([torch.full((1, 28, 28), float(c)) for c in range(4)])  # image c is all c
    y = torch.arange(4)
    g = torch.Generator().manual_seed(0)
    out = splice_digits(x, y, 200, generator=g)
    assert out.shape[1:] == (1, 28, 28) and 100 < len(out) <= 200  # same-class pairs (1 in 4) are dropped
    for img in out:
        vals = img.unique()
        assert len(vals) == 2  # exactly two source images in every outlier
        top_or_left = img[0, 0, 0]
        assert (img[0, :10] == top_or_left).all() or (img[0, :, :10] == top_or_left).all()  # cut at row/col >= 10
    y_same = torch.zeros(4, dtype=torch.long)
    assert len(splice_digits(x, y_same, 50, generator=g)) == 0


def test_outlier_exposure_objective():
    from vitlab import ViT, vit_micro_mnist
    from vitlab.methods.openset import OutlierExposure, splice_digits

    torch.manual_seed(0)
    model = ViT(vit_micro_mnist(num_classes=4))
    x, y = torch.randn(16, 1, 28, 28), torch.arange(16) % 4
    obj = OutlierExposure(weight=0.0, fraction=0.5)
    loss, logits = obj(model.train(), x, y)
    assert logits.shape == (16, 4)  # the known images' logits only
    torch.manual_seed(1)
    l_oe, _ = OutlierExposure(weight=0.7, fraction=0.5)(model, x, y)
    torch.manual_seed(1)
    l_ce, _ = OutlierExposure(weight=0.0, fraction=0.5)(model, x, y)
    # The extra term, by hand: the same spliced outliers (same draws), their cross-entropy to the uniform target.
    torch.manual_seed(1)
    outliers = splice_digits(x, y, 8)
    assert 0 < len(outliers) <= 8
    with torch.no_grad():
        both = model(torch.cat([x, outliers]))  # one pass, as the objective runs it
        ce = torch.nn.functional.cross_entropy(both[:16], y)
        to_uniform = -both[16:].log_softmax(1).mean(1).mean()
    assert l_ce.item() == pytest.approx(ce.item(), rel=1e-5)
    assert l_oe.item() == pytest.approx(ce.item() + 0.7 * to_uniform.item(), rel=1e-5)
    assert to_uniform.item() >= math.log(4) - 1e-6  # cross-entropy to uniform is at least the uniform's entropy
    l_oe.backward()
    v, _ = obj(model.eval(), x, y)  # eval: plain cross-entropy, no outliers
    assert v.item() == pytest.approx(torch.nn.functional.cross_entropy(model(x), y).item(), rel=1e-5)
    with pytest.raises(ValueError):
        OutlierExposure(fraction=0.0)

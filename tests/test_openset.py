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


# --------------------------------------------------------------------------- scores side by side, the protocol


def test_open_set_scores_logits_knn_and_classes():
    from vitlab import ViT, vit_micro_mnist
    from vitlab.analysis.features import extract_features
    from vitlab.methods.openset import NearestNeighbourScore, open_set_scores
    from vitlab.training import predict_logits

    known, unknowns = _sets()
    r = open_set_scores(_PixelModel(False), known, unknowns["blank"], ("msp", "max_logit"))
    assert r["msp"]["auroc"] == 1.0 and r["msp"]["fpr95"] == 0.0 and r["msp"]["known"].shape == (20,)
    one = open_set_scores(_PixelModel(False), known, unknowns["blank"], ("max_logit",), classes=[1])
    assert np.allclose(one["max_logit"]["known"], predict_logits(_PixelModel(False), known)[:, 1].numpy())
    torch.manual_seed(0)
    vit = ViT(vit_micro_mnist(num_classes=2)).eval()
    r = open_set_scores(vit, known, unknowns["noise"], ("knn", "knn_patches"), bank=known, knn_k=2)
    for s, layer in (("knn", "pre_logits"), ("knn_patches", "patches")):  # the same numbers as by hand
        knn = NearestNeighbourScore(k=2).fit(extract_features(vit, known, layer=layer))
        assert np.allclose(r[s]["unknown"], knn(extract_features(vit, unknowns["noise"], layer=layer)), atol=1e-5)
        assert 0 <= r[s]["auroc"] <= 1
    with pytest.raises(ValueError, match="bank"):
        open_set_scores(vit, known, unknowns["noise"], ("knn",))
    with pytest.raises(ValueError, match="scores must be among"):
        open_set_scores(vit, known, unknowns["noise"], ("entropy",))


def test_outlier_exposure_draws_from_a_pool():
    from vitlab import ViT, vit_micro_mnist
    from vitlab.methods.openset import OutlierExposure

    known, _ = _sets()
    pool = ImageSet(torch.full((7, 28, 28), 255, dtype=torch.uint8), torch.zeros(7, dtype=torch.long),
                    known.info, "white")
    obj = OutlierExposure(fraction=0.5, outliers=pool)
    x, y = known.tensors(torch.arange(8))
    drawn = obj.draw(x, y)
    assert drawn.shape == (4, 1, 28, 28) and torch.allclose(drawn, pool.tensors(torch.arange(4))[0])
    assert obj.to_dict()["outliers"] == "white" and obj.to_dict()["outlier_images"] == 7
    assert set(OutlierExposure().to_dict()) == {"name", "weight", "fraction", "label_smoothing"}  # kept runs load
    model = ViT(vit_micro_mnist(num_classes=2)).train()
    loss, logits = obj(model, x, y)
    assert logits.shape == (8, 2) and loss.item() > 0
    with pytest.raises(ValueError, match="empty"):
        OutlierExposure(outliers=pool.subset(torch.arange(0)))


def test_letter_images_are_seeded_non_digits():
    from vitlab.experiments.openset_protocol import letter_images

    known, _ = _sets()
    a = letter_images(40, known, seed=3)
    assert a.images.shape == (40, 28, 28) and a.images.dtype == torch.uint8 and a.name == "letters"
    assert a.info == known.info and (a.images.flatten(1).amax(1) > 128).all()  # every image has ink
    assert torch.equal(a.images, letter_images(40, known, seed=3).images)
    assert not torch.equal(a.images, letter_images(40, known, seed=4).images)


def test_candidates_name_their_runs_and_configs():
    from vitlab.experiments.openset_protocol import CANDIDATES, Candidate, pick_winner, summarise

    assert CANDIDATES["default"].runs_name(6) == "openset_vit_ce_ls0.1_e53"  # the names kept runs have
    assert CANDIDATES["oe-splice"].runs_name(6) == "openset_vit_oe_ls0.1_e53"
    assert CANDIDATES["cnn"].runs_name(6) == "openset_cnn_ce_ls0.1_e6"
    assert CANDIDATES["no-ls-long"].runs_name(6) == "openset_vit_ce_ls0_e80"
    assert CANDIDATES["oe-letters"].runs_name(6) == "openset_vit_oe-letters_ls0.1_e53"
    assert CANDIDATES["conv-stem"].runs_name(6) == "openset_vit_ce_ls0.1_e53_stem8"
    assert CANDIDATES["conv-stem"].model_config(6).conv_stem == 8 and CANDIDATES["cnn"].model_config(6).num_classes == 6
    assert CANDIDATES["default"].train_config(6, quick=True).epochs == 1
    assert "knn_patches" in CANDIDATES["default"].scores and "knn_pooled" in CANDIDATES["cnn"].scores
    with pytest.raises(ValueError, match="ViT options"):
        Candidate("x", "", model="cnn", outliers="splice")
    rows = [{"msp": {"auroc": 0.9, "fpr95": 0.2}, "knn": {"auroc": 0.95, "fpr95": 0.1}},
            {"msp": {"auroc": 0.8, "fpr95": 0.4}, "knn": {"auroc": 0.97, "fpr95": 0.1}}]
    s = summarise(rows, ("msp", "knn"))
    assert s["msp"][0] == pytest.approx(0.85) and s["msp"][1] == pytest.approx(0.05) and s["knn"][2] == pytest.approx(0.1)
    table = {"default": s, "oe-splice": {"msp": (0.99, 0.0, 0.0)}, "cnn": {"knn_pooled": (0.995, 0.0, 0.0)}}
    assert pick_winner(table, "vit") == ("oe-splice", "msp") and pick_winner(table, "cnn") == ("cnn", "knn_pooled")


def _splits(n=500):
    from types import SimpleNamespace

    g = torch.Generator().manual_seed(0)

    def part(name):
        imgs = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
        return ImageSet(imgs, torch.arange(n) % 10, DATASETS["mnist"], name)

    return SimpleNamespace(train=part("train"), val=part("val"), test=part("test"), info=DATASETS["mnist"])


def test_split_sets_and_candidate_runs(tmp_path):
    from vitlab.experiments.openset_protocol import CANDIDATES, candidate_run, letter_images, split_sets

    data = _splits()
    sets = split_sets(data, [0, 1, 2, 3, 5, 8], "val")
    assert set(sets.train.labels.tolist()) == set(range(6)) and set(sets.eval_unknown.labels.tolist()) == {4, 6, 7, 9}
    assert len(sets.eval_known) + len(sets.eval_unknown) == len(data.val)  # the validation split, both sides
    test = split_sets(data, [0, 1, 2, 3, 5, 8], "test")
    assert torch.equal(test.eval_unknown.images, data.test.images[torch.isin(data.test.labels, torch.tensor([4, 6, 7, 9]))])
    c = CANDIDATES["oe-letters"]
    with pytest.raises(ValueError, match="outlier pool"):
        candidate_run(c, sets, 0, 6, runs=tmp_path, quick=True)
    pool = letter_images(30, data.train)
    run = candidate_run(c, sets, 0, 6, runs=tmp_path, quick=True, pool=pool)
    assert run.trained_now and run.path == tmp_path / "split0_012358" and run.history.last("val_acc") is not None
    again = candidate_run(c, sets, 0, 6, runs=tmp_path, quick=True, pool=pool)
    assert not again.trained_now  # kept: a second call only evaluates


def test_clean_backbone_never_sees_the_unseen_digits(tmp_path, monkeypatch):
    from vitlab.experiments import trained
    from vitlab.data.splits import known_unknown_sets
    from vitlab.experiments.finetune import clean_backbone_spec

    monkeypatch.setenv("VITLAB_RUNS", str(tmp_path))
    monkeypatch.setenv("CI", "1")  # FAST: the quick version of the run, in runs/fast
    data = _splits()
    osd = known_unknown_sets(data, [3, 8], [0, 1, 2, 5])
    assert osd.seen == [0, 1, 2, 3, 5, 8] and osd.unknown == [4, 6, 7, 9]
    run = trained(clean_backbone_spec([3, 8], [0, 1, 2, 5]), data)
    assert run.path == tmp_path / "fast" / "07_vit_without_4679" and run.model.cfg.num_classes == 6
    ckpt = torch.load(run.path / "checkpoint.pt", weights_only=True)
    assert ckpt["label_map"] == [0, 1, 2, 3, -1, 4, -1, -1, 5, -1]  # 4, 6, 7, 9 left out of training
    assert ckpt["extra"]["spec_key"] == clean_backbone_spec([3, 8], [0, 1, 2, 5]).shrunk().key
    six = known_unknown_sets(data, osd.seen)  # the standard protocol's split: the seen digits known
    assert set(six.train.labels.tolist()) == set(range(6)) and set(six.eval_unknown.labels.tolist()) == {4, 6, 7, 9}
    with pytest.raises(ValueError, match="model"):
        clean_backbone_spec([3, 8], [0, 1, 2, 5], model="mlp")


def test_clean_backbone_can_follow_an_openset_candidate(tmp_path, monkeypatch):
    from vitlab.experiments import trained
    from vitlab.experiments.finetune import clean_backbone_spec

    monkeypatch.setenv("VITLAB_RUNS", str(tmp_path))
    monkeypatch.setenv("CI", "1")
    data = _splits()
    run = trained(clean_backbone_spec([3, 8], [0, 1, 2, 5], candidate="no-ls-long"), data)
    assert run.path == tmp_path / "fast" / "07_vit_without_4679_no-ls-long"
    smoothing = lambda r: torch.load(r.checkpoint, weights_only=True)["train_config"]["label_smoothing"]
    assert smoothing(run) == 0.0  # the candidate's recipe, not the default's 0.1
    plain = trained(clean_backbone_spec([3, 8], [0, 1, 2, 5]), data)
    assert smoothing(plain) == 0.1 and plain.path != run.path
    with pytest.raises(ValueError, match="unknown candidate 'nope'"):
        clean_backbone_spec([3, 8], [0, 1, 2, 5], candidate="nope")
    with pytest.raises(ValueError, match="not a plain vit backbone"):
        clean_backbone_spec([3, 8], [0, 1, 2, 5], candidate="oe-splice")

"""The notebooks' repeated runs and their helpers: seed spreads (course.seeds: one run name per seed, mean ± std),
the seed reaching what it should draw in 09 and 10, the clipping and spike summaries of a run (course.gradients) and
the positional-embedding ablation's runs (course.positions)."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from vitlab.course import distillation as distill
from vitlab.course import gradients, positions
from vitlab.course import mae as course_mae
from vitlab.course.seeds import SEEDS, mean_std, per_seed, pm, seed_runs
from vitlab.models import MAE, MAEConfig
from vitlab.training import History, TrainConfig


def test_mean_std_uses_the_sample_deviation_and_formats_per_seed():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([0.5]) == (0.5, 0.0)
    assert pm([0.98, 0.99, 1.0], scale=100) == "99.00 ± 1.00"
    assert per_seed([0.9876, 0.5], scale=100, digits=1) == "98.8 / 50.0"
    assert pm([96.07]) == "96.07"  # one value is itself, not '± 0.00'
    assert pm([]) == pm([1.0, math.nan]) == "—"  # a printed table never shows nan
    assert pm([0.123, 0.125], digits=3) == "0.124 ± 0.001"


def test_seed_runs_names_each_seed_and_changes_only_the_seed(mnist, tmp_path):
    from vitlab.models import vit_micro_mnist

    cfg = TrainConfig(epochs=1, batch_size=50, augment=None, seed=7)
    runs = seed_runs("x", vit_micro_mnist(), mnist.train.take(100), None, cfg, seeds=(0, 1), runs_dir=tmp_path,
                     tensorboard=False, progress=False, verbose=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_s0", "x_s1"]
    w0, w1 = (runs[s].model.head.weight for s in (0, 1))
    assert not np.allclose(w0.detach(), w1.detach())  # another seed: another initialisation
    again = seed_runs("x", vit_micro_mnist(), mnist.train.take(100), None, cfg, seeds=(1,), runs_dir=tmp_path,
                      verbose=False)
    assert not again[1].trained_now and SEEDS == (0, 1, 2)


def _history(norms, lrs, epochs):
    h = History()
    for i, (g, lr, e) in enumerate(zip(norms, lrs, epochs)):
        for k, v in (("step", i), ("epoch", e), ("grad_norm", g), ("lr", lr), ("loss", 1.0)):
            h.steps[k].append(v)
    return h


def test_clipped_share_and_spikes_per_run():
    norms = [2.0] * 10 + [0.5] * 30 + [5.0] + [0.5] * 8 + [4.0]  # one spike at step 40 (lr high), one at 49 (low)
    lrs = [1.0] * 45 + [0.1] * 5
    h = _history(norms, lrs, [0] * 25 + [1] * 25)
    np.testing.assert_allclose(gradients.clipped_share(h, clip=1.0), [10 / 25, 2 / 25])
    np.testing.assert_allclose(gradients.per_epoch(h, "grad_norm", np.max), [2.0, 5.0])
    assert gradients.grad_spikes(h) == [40, 49]
    s = gradients.spike_summary(h, clip=1.0)
    assert s["spikes"] == 2 and s["spikes_high_lr"] == 1 and s["spikes_low_lr"] == 1
    assert s["max"] == 5.0 and s["median"] == 0.5 and s["over_clip"] == pytest.approx(12 / 50)


def test_high_lr_variants_differ_only_in_warmup_and_clipping():
    v = gradients.high_lr_variants()
    base = v["warm-up + clipping"]
    assert base.lr == gradients.HIGH_LR and base.warmup_epochs > 0 and base.grad_clip > 0
    assert v["no warm-up"] == dataclasses.replace(base, warmup_epochs=0.0)
    assert v["no clipping"] == dataclasses.replace(base, grad_clip=0.0)
    assert v["neither"] == dataclasses.replace(base, warmup_epochs=0.0, grad_clip=0.0)
    assert [gradients.run_name(k) for k in v] == ["04_warmup_clipping", "04_no_warmup", "04_no_clipping", "04_neither"]


def test_ablation_kinds_are_the_position_embeddings_a_vit_takes():
    from vitlab.models import ViTConfig

    for kind in positions.KINDS:
        ViTConfig(pos_embed=kind)
    from vitlab.training import RECIPES

    assert positions.ABLATION_EPOCHS < RECIPES["default"].train.epochs  # a shortened budget, the same for all


def test_ablation_scores_a_model_without_positions_the_same_shuffled(mnist):
    from types import SimpleNamespace

    import torch

    from vitlab.models import ViT, vit_micro_mnist

    h = History()
    h.epochs["val_acc"], h.epochs["seconds"] = [0.5, 0.6], [1.0, 2.0]
    torch.manual_seed(0)
    runs = {k: {0: SimpleNamespace(model=ViT(vit_micro_mnist(pos_embed=k)).eval(), history=h)} for k in ("learned", "none")}
    data = SimpleNamespace(test=mnist.test.take(200))
    scores = positions.ablation_scores(runs, data)
    for k in runs:
        assert scores[k][0]["val"] == 0.6 and scores[k][0]["seconds"] == 3.0 and 0 <= scores[k][0]["test"] <= 1
    assert scores["none"][0]["shuffled"] == scores["none"][0]["test"]  # a bag of patches: the order cannot matter


def _capture(monkeypatch, module):
    calls = []

    def fake(name, model_config, train_set, val_set, train_config, **kw):
        calls.append({"name": name, "train": train_set, "config": train_config, **kw})

    monkeypatch.setattr(module, "train_or_load", fake)
    return calls


def test_finetune_runs_are_named_and_drawn_per_seed(monkeypatch, mnist):
    calls = _capture(monkeypatch, course_mae)
    torch.manual_seed(0)
    mae = MAE(MAEConfig())
    state = torch.get_rng_state()
    for seed in SEEDS:
        for pre in (True, False):
            course_mae.mae_finetune_run(mnist, 100, pretrained=pre, mae=mae, seed=seed)
    assert torch.equal(torch.get_rng_state(), state)  # the seeded head does not move the caller's generator
    assert [c["name"] for c in calls] == ["09_ft100_mae", "09_ft100_scratch", "09_ft100_mae_s1", "09_ft100_scratch_s1",
                                          "09_ft100_mae_s2", "09_ft100_scratch_s2"]  # seed 0 keeps the old names
    assert [c["config"].seed for c in calls] == [0, 0, 1, 1, 2, 2]
    subsets = [c["train"] for c in calls[::2]]
    assert all(torch.equal(torch.bincount(s.labels, minlength=10), torch.full((10,), 10)) for s in subsets)
    assert not torch.equal(subsets[0].images, subsets[1].images)  # each seed its own labelled images
    assert torch.equal(calls[0]["train"].images, calls[1]["train"].images)  # both arms the same ones
    heads = [c["init"].head.weight for c in calls[::2]]
    assert not torch.equal(heads[0], heads[1])  # each seed its own fresh head ...
    course_mae.mae_finetune_run(mnist, 100, pretrained=True, mae=mae, seed=1)
    assert torch.equal(calls[-1]["init"].head.weight, heads[1])  # ... the same every time


@pytest.mark.parametrize("kind, teacher, transfer, temperature, name", [
    ("alone", "vit", False, 4.0, "10_student_alone_s2"),
    ("soft", "vit", False, 4.0, "10_student_soft_vit_s2"),
    ("soft", "vit", False, 1.0, "10_student_soft_vit_T1_s2"),
    ("token", "cnn", False, 4.0, "10_student_token_cnn_s2"),
    ("hard", "vit", True, 4.0, "10_student_hard_vit_transfer_s2"),
    ("alone", "vit", True, 4.0, "10_student_alone_long_s2"),
])
def test_student_runs_are_named_per_seed(monkeypatch, mnist, kind, teacher, transfer, temperature, name):
    calls = _capture(monkeypatch, distill)
    teacher_model = torch.nn.Linear(784, 10)
    distill.student_run(mnist, kind, teacher, fast=True, teacher_model=teacher_model, transfer=transfer, seed=2,
                        temperature=temperature)
    (call,) = calls
    assert call["name"] == name and call["config"].seed == 2
    objective = call["objective"]
    if kind == "alone":
        assert objective is None
    else:
        assert objective.teacher is teacher_model and objective.config.temperature == temperature


def test_the_student_is_a_seventh_of_the_vit_teacher():
    from vitlab import count_parameters
    from vitlab.models import DeiT, ViT, vit_mini_mnist

    student, teacher = count_parameters(ViT(distill.student_config())), count_parameters(ViT(vit_mini_mnist()))
    assert (student, teacher) == (19_658, 139_018)
    assert count_parameters(DeiT(distill.student_config(token=True))) == student + 394  # token, position, head

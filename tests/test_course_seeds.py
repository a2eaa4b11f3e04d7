"""The notebooks' repeated runs: one run name per seed, the seed reaching what it should draw, and mean ± std."""

import math

import pytest
import torch

from vitlab.course import distillation as distill
from vitlab.course import mae as course_mae
from vitlab.course.common import SEEDS, mean_std
from vitlab.models import MAE, MAEConfig


def test_mean_std_uses_the_sample_std_and_never_prints_nan():
    assert mean_std([1.0, 2.0, 3.0]) == "2.00 ± 1.00"
    assert mean_std([96.07]) == "96.07"
    assert mean_std([]) == mean_std([1.0, math.nan]) == "—"
    assert mean_std([0.123, 0.125], digits=3) == "0.124 ± 0.001"
    assert len(SEEDS) == 3


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

"""The series' runs as data (vitlab.experiments): specs and their keys, FAST applied once, the runner and the run
store's refusal of another spec; the notebooks' seed spreads and their helpers (mean ± std, the clipping and spike
summaries of a run, the positional-embedding ablation's scores) and the runs' names."""

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vitlab.experiments import distillation as distill
from vitlab.experiments import gradients, positions, runner
from vitlab.experiments import mae as exp_mae
from vitlab.experiments.catalog import all_runs, notebook_runs
from vitlab.experiments.common import SEEDS, VIT_DEFAULT, mean_std, per_seed, pm
from vitlab.models import MAE, MAEConfig, vit_micro_mnist
from vitlab.training import History, RunMismatch, TrainConfig
from vitlab.training.spec import DataSpec, Fast, Part, RunSpec


def test_mean_std_uses_the_sample_deviation_and_formats_per_seed():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([0.5]) == (0.5, 0.0)
    assert pm([0.98, 0.99, 1.0], scale=100) == "99.00 ± 1.00"
    assert per_seed([0.9876, 0.5], scale=100, digits=1) == "98.8 / 50.0"
    assert pm([96.07]) == "96.07"  # one value is itself, not '± 0.00'
    assert pm([]) == pm([1.0, math.nan]) == "—"  # a printed table never shows nan
    assert pm([0.123, 0.125], digits=3) == "0.124 ± 0.001"


def _tiny(name="x", **kw) -> RunSpec:
    data = DataSpec(train=(Part.of("take", n=200),), val=(Part.of("take", n=100),))
    return RunSpec(name, vit_micro_mnist(), TrainConfig(epochs=2, batch_size=50, augment=None), data,
                   fast=Fast(images=100, epochs=1), **kw)


def test_a_key_is_the_settings_not_the_name_and_the_same_in_another_process():
    a = _tiny()
    assert a.key == _tiny("another name").key == dataclasses.replace(a, fast=None).key
    assert a.key != a.seeded(1).key and a.seeded(1).name == "x_s1" and a.seeded(1).train.seed == 1
    assert a.key != a.derive(train=dataclasses.replace(a.train, lr=1e-3)).key
    assert a.key == a.derive(train=dataclasses.replace(a.train, device="cpu", eval_batch_size=7)).key  # bookkeeping
    assert a.key != a.derive(data=a.data.then(train=(Part.of("take", n=50),))).key
    code = "import test_experiments as t; print(t._tiny().key)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).parent, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert other.stdout.strip() == a.key


def test_a_spec_records_only_what_differs_from_the_defaults_and_nested_runs_by_key():
    d = VIT_DEFAULT.to_dict()
    assert d["model_type"] == "vit" and d["train"] == {"epochs": 53} and d["data"] == {}
    ft = exp_mae.mae_finetune_spec(100, seed=1)
    assert ft.to_dict()["init"] == {"run": {"run": exp_mae.MAE_PRETRAIN.key}, "take": "encoder", "seed": 1}


def test_fast_shrinks_once():
    s = VIT_DEFAULT.shrunk()
    assert s.train.epochs == 10 and s.data.train == (Part.of("take", n=4000),) and s.fast is None
    assert s.shrunk() == s and s.name == VIT_DEFAULT.name and s.key != VIT_DEFAULT.key
    ft = exp_mae.mae_finetune_spec(100).shrunk()
    assert ft.init.run == exp_mae.MAE_PRETRAIN.shrunk() and ft.train.warmup_epochs == 0.5 and ft.train.epochs == 2
    student = distill.student_spec("soft").shrunk()  # the run named inside a part shrinks with it
    assert student.objective.kwargs["teacher"] == VIT_DEFAULT.shrunk() and student.train.epochs == 2
    assert RunSpec("plain", vit_micro_mnist(), TrainConfig(epochs=3)).shrunk().train.epochs == 3  # no plan: as it is


def test_the_runner_applies_fast_from_the_environment(monkeypatch, tmp_path, mnist):
    monkeypatch.setenv("VITLAB_RUNS", str(tmp_path))
    monkeypatch.setenv("CI", "1")
    quick = runner.trained(_tiny(), mnist)
    assert quick.path == tmp_path / "fast" / "x" and len(quick.history.epochs["epoch"]) == 1
    assert len(quick.history.steps["step"]) == 100 // 50
    monkeypatch.delenv("CI")
    full = runner.trained(_tiny(), mnist)
    assert full.path == tmp_path / "x" and len(full.history.epochs["epoch"]) == 2 and full.trained_now
    assert not runner.trained(_tiny(), mnist).trained_now
    with pytest.raises(RunMismatch, match="stop_after: checkpoint None, now 1"):  # another spec under the same name
        runner.trained(_tiny(stop_after=1), mnist)


def test_a_spec_names_parts_the_runner_knows(mnist):
    with pytest.raises(ValueError, match="no data step is called 'shuffle'"):
        runner.select(mnist, DataSpec(train=(Part.of("shuffle"),)))
    with pytest.raises(ValueError, match="the run trains on 'fashion-mnist'"):
        runner.select(mnist, DataSpec(dataset="fashion-mnist"))
    train, val = runner.select(mnist, DataSpec(train=(Part.of("balanced", n=50, seed=3),), val=None))
    assert val is None and torch.equal(torch.bincount(train.labels, minlength=10), torch.full((10,), 5))


def test_every_run_of_the_series_has_one_name_and_one_spec():
    runs = all_runs()  # raises when a name would mean two specs
    assert len(runs) > 100 and "vit_default" in runs
    assert all(s.shrunk().fast is None for s in runs.values())
    assert set(notebook_runs()) >= {"03_train", "09_mae", "13_synthetic_data"}
    assert len({s.key for s in runs.values()}) == len(runs)  # and one spec has one name


def test_finetune_runs_are_named_and_draw_their_head_per_seed(monkeypatch, mnist):
    names = [exp_mae.mae_finetune_spec(100, pre, s).name for s in SEEDS for pre in (True, False)]
    assert names == ["09_ft100_mae", "09_ft100_scratch", "09_ft100_mae_s1", "09_ft100_scratch_s1",
                     "09_ft100_mae_s2", "09_ft100_scratch_s2"]  # seed 0 keeps the old names
    torch.manual_seed(0)
    mae = MAE(MAEConfig())
    monkeypatch.setattr(runner, "trained", lambda spec, data: SimpleNamespace(model=mae))
    state = torch.get_rng_state()
    heads = [runner.build_init(exp_mae.mae_finetune_spec(100, True, s).init, mnist).head.weight for s in (0, 1, 1)]
    assert torch.equal(torch.get_rng_state(), state)  # the seeded head does not move the caller's generator
    assert not torch.equal(heads[0], heads[1]) and torch.equal(heads[1], heads[2])
    train, _ = runner.select(mnist, exp_mae.mae_finetune_spec(100, True, 1).data)
    scratch, _ = runner.select(mnist, exp_mae.mae_finetune_spec(100, False, 1).data)
    assert torch.equal(train.images, scratch.images)  # both arms the same labelled images


@pytest.mark.parametrize("kind, teacher, transfer, temperature, name", [
    ("alone", "vit", False, 4.0, "10_student_alone_s2"),
    ("soft", "vit", False, 4.0, "10_student_soft_vit_s2"),
    ("soft", "vit", False, 1.0, "10_student_soft_vit_T1_s2"),
    ("token", "cnn", False, 4.0, "10_student_token_cnn_s2"),
    ("hard", "vit", True, 4.0, "10_student_hard_vit_transfer_s2"),
    ("alone", "vit", True, 4.0, "10_student_alone_long_s2"),
])
def test_student_runs_are_named_per_seed(kind, teacher, transfer, temperature, name):
    spec = distill.student_spec(kind, teacher, transfer=transfer, seed=2, temperature=temperature)
    assert spec.name == name and spec.train.seed == 2
    if kind == "alone":
        assert spec.objective is None
    else:
        args = spec.objective.kwargs
        assert args["teacher"] == distill.TEACHERS[teacher] and args["temperature"] == temperature


def test_the_transfer_set_keeps_the_students_labels_in_front(mnist):
    from vitlab.data import UNLABELLED

    spec = distill.student_spec("soft", transfer=True)
    train, _ = runner.select(mnist, spec.data)
    first = mnist.train.take(distill.STUDENT_IMAGES)
    assert len(train) == len(mnist.train) and torch.equal(train.images[: len(first)], first.images)
    assert (train.labels[len(first):] == UNLABELLED).all() and (train.labels[: len(first)] != UNLABELLED).all()


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

    for kind in positions.POSITION_KINDS:
        ViTConfig(pos_embed=kind)
    from vitlab.training import RECIPES

    assert positions.ABLATION_EPOCHS < RECIPES["default"].train.epochs  # a shortened budget, the same for all


def test_ablation_scores_a_model_without_positions_the_same_shuffled(mnist):
    from vitlab.models import ViT

    h = History()
    h.epochs["val_acc"], h.epochs["seconds"] = [0.5, 0.6], [1.0, 2.0]
    torch.manual_seed(0)
    runs = {k: {0: SimpleNamespace(model=ViT(vit_micro_mnist(pos_embed=k)).eval(), history=h)} for k in ("learned", "none")}
    data = SimpleNamespace(test=mnist.test.take(200))
    scores = positions.ablation_scores(runs, data)
    for k in runs:
        assert scores[k][0]["val"] == 0.6 and scores[k][0]["seconds"] == 3.0 and 0 <= scores[k][0]["test"] <= 1
    assert scores["none"][0]["shuffled"] == scores["none"][0]["test"]  # a bag of patches: the order cannot matter


def test_the_student_is_a_seventh_of_the_vit_teacher():
    from vitlab import count_parameters
    from vitlab.models import DeiT, ViT, vit_mini_mnist

    student, teacher = count_parameters(ViT(distill.student_config())), count_parameters(ViT(vit_mini_mnist()))
    assert (student, teacher) == (19_658, 139_018)
    assert count_parameters(DeiT(distill.student_config(token=True))) == student + 394  # token, position, head

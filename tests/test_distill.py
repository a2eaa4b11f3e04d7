import math

import pytest
import torch
import torch.nn.functional as F

from vitlab import (
    CheckpointError,
    CNNConfig,
    SmallCNN,
    TrainConfig,
    ViT,
    load_model,
    save_checkpoint,
    train_or_load,
    vit_micro_mnist,
)
from vitlab.training import QUIET, RunSpec
from vitlab.analysis.latency import measure_latency
from vitlab.methods.distillation import (
    DistillConfig,
    HardDistillation,
    SoftDistillation,
    TokenDistillation,
    distillation_objective,
    gap_recovered,
    hard_distillation_loss,
    soft_distillation_loss,
)
from vitlab.models import DeiT, DeiTConfig, deit_config


def _models(seed=0, classes=10):
    torch.manual_seed(seed)
    student = ViT(vit_micro_mnist(num_classes=classes))
    teacher = ViT(vit_micro_mnist(dim=48, heads=2, dropout=0.5))  # dropout: train mode would change its outputs
    return student, teacher


def test_soft_loss_matches_hand_computed_formula():
    torch.manual_seed(0)
    s, t = torch.randn(5, 10) * 3, torch.randn(5, 10) * 3
    T = 4.0
    ps, pt = (s / T).softmax(1), (t / T).softmax(1)
    kl = (pt * (pt.log() - ps.log())).sum(1).mean()  # KL(teacher || student) per example, averaged
    assert soft_distillation_loss(s, t, T).item() == pytest.approx((T * T * kl).item(), rel=1e-5)
    # identical distributions: no loss; T = 1 is plain KL without scaling
    assert soft_distillation_loss(t, t, T).item() == pytest.approx(0.0, abs=1e-6)
    kl1 = (t.softmax(1) * (t.log_softmax(1) - s.log_softmax(1))).sum(1).mean()
    assert soft_distillation_loss(s, t, 1.0).item() == pytest.approx(kl1.item(), rel=1e-5)


def test_soft_objective_mixes_ce_and_kl_with_alpha():
    student, teacher = _models()
    x, y = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    obj = SoftDistillation(teacher, alpha=0.3, temperature=2.0, label_smoothing=0.0)
    loss, logits = obj(student, x, y)
    with torch.no_grad():
        t = teacher(x)
    want = 0.7 * F.cross_entropy(logits, y) + 0.3 * 4.0 * F.kl_div((logits / 2).log_softmax(1), (t / 2).softmax(1), reduction="batchmean")
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("cls", [SoftDistillation, HardDistillation])
def test_alpha_zero_is_plain_cross_entropy(cls):
    student, teacher = _models()
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    loss, logits = cls(teacher, alpha=0.0, label_smoothing=0.1)(student, x, y)
    assert loss.item() == pytest.approx(F.cross_entropy(student(x), y, label_smoothing=0.1).item(), rel=1e-6)


def test_hard_distillation_uses_teacher_argmax_not_labels():
    torch.manual_seed(0)
    s, t = torch.randn(7, 10), torch.randn(7, 10)
    assert hard_distillation_loss(s, t).item() == pytest.approx(F.cross_entropy(s, t.argmax(1)).item())
    student, teacher = _models()
    x = torch.randn(7, 1, 28, 28)
    with torch.no_grad():
        tp = teacher.eval()(x).argmax(1)
    wrong = (tp + 1) % 10  # labels that never agree with the teacher
    obj = HardDistillation(teacher, alpha=1.0)
    loss, logits = obj(student, x, wrong)  # alpha = 1: labels must not matter at all
    assert loss.item() == pytest.approx(F.cross_entropy(logits, tp).item(), rel=1e-6)
    assert loss.item() == pytest.approx(obj(student, x, tp)[0].item(), rel=1e-6)


@pytest.mark.parametrize("kind", ["soft", "hard", "token"])
def test_teacher_gets_no_gradient_and_stays_in_eval_mode(kind):
    student, teacher = _models()
    if kind == "token":
        student = DeiT(deit_config(student.cfg))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    teacher.train()  # even a teacher handed over in train mode is switched to eval
    obj = distillation_objective(teacher, DistillConfig(kind=kind))
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    t1 = obj.teacher_logits(x)
    teacher.train()  # someone switches it back: the objective still uses eval mode (dropout 0.5 off)
    loss, _ = obj(student, x, y)
    loss.backward()
    assert not teacher.training
    assert torch.equal(obj.teacher_logits(x), t1)
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())


def test_distilled_vit_eval_output_is_mean_of_heads_and_shapes():
    torch.manual_seed(0)
    m = DeiT(DeiTConfig(**vit_micro_mnist().to_dict())).eval()
    assert m.num_prefix_tokens == 2
    x = torch.randn(3, 1, 28, 28)
    tokens = m.forward_features(x)
    assert tokens.shape == (3, 2 + m.cfg.num_patches, m.cfg.dim)
    c, d = m.forward_heads(tokens)
    assert c.shape == d.shape == (3, 10)
    assert not torch.allclose(c, d)  # two different heads reading two different tokens
    assert torch.allclose(m(x), (c + d) / 2, atol=1e-6)
    assert m.forward_head(tokens, pre_logits=True).shape == (3, m.cfg.dim)
    # its own token and head, beyond a plain ViT of the same config
    extra = sum(p.numel() for p in m.parameters()) - sum(p.numel() for p in ViT(vit_micro_mnist()).parameters())
    assert extra == 2 * m.cfg.dim + m.cfg.dim * 10 + 10  # dist token + its position + head
    assert {"dist_token", "dist_pos_embed"} <= m.no_weight_decay()
    with pytest.raises(ValueError, match="pool must be 'cls'"):
        DeiTConfig(**vit_micro_mnist(pool="mean").to_dict())


def test_distilled_vit_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    m = DeiT(deit_config(vit_micro_mnist())).eval()
    save_checkpoint(tmp_path / "d.pt", m)
    back, ckpt = load_model(tmp_path / "d.pt")
    assert ckpt["model_type"] == "deit" and type(back) is DeiT
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(back(x), m(x))
    ViT(vit_micro_mnist())  # a plain ViT checkpoint is not loaded into a DeiT
    from vitlab.training import read_checkpoint
    from vitlab.training.checkpoints import load_weights

    with pytest.raises(CheckpointError):
        load_weights(ViT(vit_micro_mnist()), read_checkpoint(tmp_path / "d.pt"))


def test_clear_errors_for_bad_settings():
    student, teacher = _models()
    with pytest.raises(ValueError, match="alpha .* in \\[0, 1\\]"):
        DistillConfig(alpha=1.5)
    with pytest.raises(ValueError, match="alpha"):
        SoftDistillation(teacher, alpha=-0.1)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        SoftDistillation(teacher, temperature=0.0)
    with pytest.raises(ValueError, match="kind"):
        DistillConfig(kind="warm")
    with pytest.raises(TypeError, match="teacher must be a torch.nn.Module"):
        SoftDistillation("teacher.pt")
    x, y = torch.randn(2, 1, 28, 28), torch.randint(0, 3, (2,))
    three = ViT(vit_micro_mnist(num_classes=3))
    for obj in (SoftDistillation(teacher), HardDistillation(teacher)):
        with pytest.raises(ValueError, match="teacher predicts 10 classes but the student 3"):
            obj(three, x, y)
        with pytest.raises(ValueError, match="teacher predicts 10 classes but the student 3"):
            obj.check_student(three)
    with pytest.raises(TypeError, match="distillation head"):
        TokenDistillation(teacher)(student, x, y)


def test_to_dict_records_hyper_parameters_not_weights():
    _, teacher = _models()
    d = SoftDistillation(teacher, alpha=0.7, temperature=3.0).to_dict()
    assert d["name"] == "SoftDistillation" and d["alpha"] == 0.7 and d["temperature"] == 3.0
    assert d["teacher"]["type"] == "ViT" and d["teacher"]["num_classes"] == 10
    assert not any(isinstance(v, torch.Tensor) for v in d.values())


def test_tiny_distillation_run_lowers_the_loss_and_reloads(mnist, tmp_path):
    torch.manual_seed(0)
    teacher = SmallCNN(CNNConfig(width=8, hidden=16))  # BatchNorm: eval mode matters
    tc = TrainConfig(epochs=2, batch_size=64, max_steps_per_epoch=12, lr=3e-3, warmup_epochs=0.2, augment=None, seed=0)
    cfg = deit_config(vit_micro_mnist())
    obj = TokenDistillation(teacher, alpha=0.5)
    kw = dict(runs_dir=tmp_path, show=QUIET)
    run = train_or_load(RunSpec("tok", cfg, tc), mnist.train.take(1000), mnist.val.take(200), objective=obj, **kw)
    losses = run.history.steps["loss"]
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4
    assert type(run.model) is DeiT and not teacher.training
    again = train_or_load(RunSpec("tok", cfg, tc), mnist.train.take(1000), mnist.val.take(200), objective=obj, **kw)
    assert not again.trained_now
    with pytest.raises(CheckpointError, match="objective"):  # another alpha is another run
        train_or_load(RunSpec("tok", cfg, tc), mnist.train.take(1000), mnist.val.take(200),
                      objective=TokenDistillation(teacher, alpha=0.9), **kw)


def test_gap_recovered_and_latency():
    assert gap_recovered(146, 74, 67) == pytest.approx(72 / 79)  # Hinton et al. 2015's MNIST numbers
    assert math.isnan(gap_recovered(60, 50, 67))


class _Sleeper(torch.nn.Module):
    """A model whose forward pass takes a known time: 20 ms per call, whatever the batch."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.calls = 0

    def forward(self, x):
        import time

        self.calls += 1
        time.sleep(0.02)
        return x.flatten(1) * self.w


def test_latency_measures_the_forward_pass():
    model = _Sleeper().train()
    r = measure_latency(model, repeats=7, warmup=2, batch_size=4)
    assert model.calls == 9 and model.training  # warm-up calls are not timed; the mode is restored
    assert 20 <= r["latency_ms"] < 60  # the median call: 20 ms of sleep plus a little
    assert r["images_per_s"] == pytest.approx(4 * 1000 / r["latency_ms"]) and 4000 / 60 < r["images_per_s"] <= 200
    assert 0 <= r["iqr_ms"] < 20


def test_teacher_cache_returns_the_same_logits_without_running_the_teacher_again():
    from vitlab.methods.distillation import clear_teacher_cache

    _, teacher = _models()
    calls = []
    teacher.register_forward_hook(lambda *a: calls.append(1))
    a, b = SoftDistillation(teacher, cache_teacher=True), HardDistillation(teacher, cache_teacher=True)
    x = torch.randn(5, 1, 28, 28)
    first = a.teacher_logits(x)
    assert torch.equal(b.teacher_logits(x.clone()), first) and len(calls) == 1  # shared across objectives
    assert not torch.equal(b.teacher_logits(x + 1), first) and len(calls) == 2  # another batch, another entry
    clear_teacher_cache()
    a.teacher_logits(x)
    assert len(calls) == 3
    SoftDistillation(teacher).teacher_logits(x)  # no cache by default
    assert len(calls) == 4


# --------------------------------------------------------------------------- a transfer set with unlabelled images


def test_label_terms_skip_unlabelled_images_teacher_term_covers_all():
    from vitlab.data import UNLABELLED

    student, teacher = _models()
    x = torch.randn(6, 1, 28, 28)
    y = torch.tensor([3, UNLABELLED, 1, UNLABELLED, UNLABELLED, 7])
    obj = SoftDistillation(teacher, alpha=0.4, temperature=2.0, label_smoothing=0.1)
    loss, logits = obj(student, x, y)
    with torch.no_grad():
        t = teacher(x)
    lab = y != UNLABELLED
    # the labels' cross-entropy of the three labelled images, summed and divided by all six, so that each image
    # weighs the same in the batch mean (averaged over the three alone, they would outweigh the teacher's answers)
    ce = F.cross_entropy(logits[lab], y[lab], label_smoothing=0.1, reduction="sum") / 6
    want = 0.6 * ce + 0.4 * soft_distillation_loss(logits, t, 2.0)  # the teacher term over all six
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    # per image: a labelled one gets 0.6 CE + 0.4 KL, an unlabelled one 0.4 KL; the loss is their mean
    kl = F.kl_div(F.log_softmax(logits / 2, 1), F.softmax(t / 2, 1), reduction="none").sum(1) * 4  # (6,)
    ce_i = torch.zeros(6)
    ce_i[lab] = F.cross_entropy(logits[lab], y[lab], label_smoothing=0.1, reduction="none")
    assert loss.item() == pytest.approx((0.6 * ce_i + 0.4 * kl).mean().item(), rel=1e-5)
    # a fully labelled batch: the plain mean cross-entropy, as before
    y_all = torch.tensor([3, 0, 1, 2, 5, 7])
    loss_all, logits = obj(student, x, y_all)
    want = 0.6 * F.cross_entropy(logits, y_all, label_smoothing=0.1) + 0.4 * soft_distillation_loss(logits, t, 2.0)
    assert loss_all.item() == pytest.approx(want.item(), rel=1e-5)
    # a batch with no label at all: the label term is 0 (not nan) and the teacher still teaches
    y_none = torch.full((6,), UNLABELLED)
    loss, logits = obj(student, x, y_none)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx((0.4 * soft_distillation_loss(logits, t, 2.0)).item(), rel=1e-5)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in student.parameters() if p.grad is not None)


def test_labelled_cross_entropy_divides_by_the_labelled_images_or_the_batch():
    from vitlab.data import UNLABELLED
    from vitlab.training import labelled_cross_entropy

    logits = torch.randn(4, 3)
    y = torch.tensor([2, UNLABELLED, 0, UNLABELLED])
    total = F.cross_entropy(logits[[0, 2]], y[[0, 2]], reduction="sum")
    assert labelled_cross_entropy(logits, y).item() == pytest.approx(total.item() / 2, rel=1e-6)
    assert labelled_cross_entropy(logits, y, over="batch").item() == pytest.approx(total.item() / 4, rel=1e-6)
    assert labelled_cross_entropy(logits, torch.full((4,), UNLABELLED), over="batch").item() == 0.0
    with pytest.raises(ValueError, match="over must be"):
        labelled_cross_entropy(logits, y, over="images")


def test_hide_labels_keeps_the_chosen_labels(mnist):
    from vitlab.data import UNLABELLED

    part = mnist.train.take(500)
    keep = part.take_indices(50, seed=3)
    assert torch.equal(part.subset(keep).labels, part.take(50, seed=3).labels)  # take_indices is what take keeps
    hidden = part.hide_labels(keep=keep)
    assert hidden.num_labelled() == 50 and len(hidden) == 500
    assert torch.equal(hidden.labels[keep], part.labels[keep])
    assert (hidden.labels == UNLABELLED).sum() == 450
    assert hidden.class_counts().sum() == 50  # unlabelled images are not counted
    assert part.hide_labels().num_labelled() == 0


def test_distilling_on_a_transfer_set_trains(mnist, tmp_path):
    """A student learns from a teacher on images of which only a few carry labels: the losses stay finite."""
    student, teacher = _models()
    transfer = mnist.train.take(512).hide_labels(keep=torch.arange(64))
    cfg = TrainConfig(epochs=1, batch_size=64, augment=None, warmup_epochs=0.0)
    run = train_or_load(RunSpec("t", vit_micro_mnist(), cfg), transfer, mnist.val.take(200), runs_dir=tmp_path,
                        objective=SoftDistillation(teacher, alpha=0.5, temperature=1.0), show=QUIET)
    assert len(run.history.steps["loss"]) == 8
    assert all(math.isfinite(v) for v in run.history.steps["loss"])


def test_transfer_set_labels_exactly_the_students_images(full_mnist):
    mnist = full_mnist
    from vitlab.experiments.distillation import STUDENT_IMAGES, student_spec
    from vitlab.experiments.runner import select

    ts, _ = select(mnist, student_spec("soft", transfer=True).data)
    labelled = min(STUDENT_IMAGES, len(mnist.train))
    assert len(ts) == len(mnist.train) and ts.num_labelled() == labelled
    students = mnist.train.take(STUDENT_IMAGES)
    assert torch.equal(ts.labels[:labelled], students.labels) and torch.equal(ts.images[:labelled], students.images)
    assert (ts.labels[labelled:] == -100).all()
    assert torch.equal(ts.images.flatten(1).sum(1).sort().values, mnist.train.images.flatten(1).sum(1).sort().values)
    # the trainer's epoch-0 shuffle (seed 0, as take's) must not pick out the labelled images
    first = torch.randperm(len(ts), generator=torch.Generator().manual_seed(0))[:256]
    assert (ts.labels[first] != -100).sum() < 64

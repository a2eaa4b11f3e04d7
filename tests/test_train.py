import math

import pytest
import torch
import torch.nn.functional as F

from vitlab import CheckpointError, TrainConfig, Trainer, ViT, evaluate, train_or_load, vit_micro_mnist, vit_tiny_mnist
from vitlab.training import QUIET, RunSpec
from vitlab.training import Objective, set_seed
from vitlab.training.trainer import layer_of, lr_at


def test_lr_schedule_shapes():
    total, warm, peak = 100, 10, 1e-3
    lrs = [lr_at(s, total, warm, peak, "cosine", 1e-5) for s in range(total)]
    assert lrs[9] == pytest.approx(peak)  # end of warm-up
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10]))  # rising during warm-up
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # falling after
    assert lrs[-1] == pytest.approx(1e-5, abs=2e-6)
    one = [lr_at(s, total, warm, peak, "onecycle", 1e-6) for s in range(total)]
    assert one[0] == pytest.approx(peak / 25) and max(one) == pytest.approx(peak, rel=1e-2)
    assert lr_at(50, total, warm, peak, "constant", 0) == peak


def test_layer_grouping():
    assert layer_of("blocks.3.attn.qkv.weight") == "blocks.3"
    assert layer_of("patch_embed.proj.weight") == "patch_embed"
    assert layer_of("cls_token") == "cls_token"
    assert layer_of("stage1.0.weight") == "stage1.0"  # a CNN stage's conv layers, one by one


def _trainer(data, tmp_path, epochs=2, **kw):
    set_seed(0)
    cfg = TrainConfig(epochs=epochs, batch_size=64, max_steps_per_epoch=6, seed=0, grad_snapshot_every=4, **kw)
    return Trainer(ViT(vit_micro_mnist(dropout=0.1)), data.train, data.val.take(200), cfg,
                   checkpoint_path=tmp_path / "ckpt.pt", progress=False, verbose=False)


def test_resumed_run_matches_uninterrupted(mnist, tmp_path):
    a = _trainer(mnist, tmp_path / "a")
    a.fit()
    b = _trainer(mnist, tmp_path / "b")
    b.add_callback("on_epoch_end", lambda tr: setattr(tr, "stop", True))  # "killed" after epoch 1
    b.fit()
    assert b.epoch == 1
    c = _trainer(mnist, tmp_path / "b")  # a new process would start exactly like this
    c.model.apply(lambda m: [torch.nn.init.normal_(p) for p in m.parameters(recurse=False)])  # garbage init
    c.fit(resume=True)
    assert c.epoch == 2 and c.step == a.step == 12
    for (k, wa), (_, wc) in zip(a.model.state_dict().items(), c.model.state_dict().items()):
        assert torch.equal(wa, wc), k
    assert a.history.steps["loss"] == c.history.steps["loss"]


def test_history_records_what_plots_need(mnist, tmp_path):
    t = _trainer(mnist, tmp_path)
    h = t.fit()
    assert h.num_steps == 12
    for k in ("loss", "acc", "lr", "grad_norm", "epoch"):
        assert len(h.steps[k]) == 12
    assert {"patch_embed", "cls_token", "pos_embed", "blocks.0", "blocks.1", "norm", "head"} <= set(h.layer_grad_norms)
    assert all(len(v) == 12 for v in h.layer_grad_norms.values())
    # global norm is the root-sum-square of the layer norms
    s = 5
    total = math.sqrt(sum(v[s] ** 2 for v in h.layer_grad_norms.values()))
    assert h.steps["grad_norm"][s] == pytest.approx(total, rel=1e-4)
    assert [g["step"] for g in h.grad_snapshots] == [0, 4, 8]
    assert "blocks.0.attn.qkv.weight" in h.grad_snapshots[0]["params"]
    assert len(h.epochs["val_acc"]) == 2 and 0 <= h.epochs["val_acc"][-1] <= 1


def test_grad_clip_limits_update(mnist, tmp_path):
    t = _trainer(mnist, tmp_path, epochs=1, grad_clip=1e-3)
    seen = []
    t.add_callback("on_step_end", lambda tr: seen.append(
        math.sqrt(sum(float(p.grad.norm()) ** 2 for p in tr.model.parameters()))))
    t.fit()
    assert max(seen) <= 1e-3 * 1.01


def test_resume_with_other_recipe_is_refused(mnist, tmp_path):
    _trainer(mnist, tmp_path, epochs=1).fit()
    with pytest.raises(CheckpointError, match=r"cannot resume run .*different setup \(lr: checkpoint 0.002, now 0.01\)"):
        _trainer(mnist, tmp_path, epochs=1, lr=1e-2).fit(resume=True)


def test_callbacks_and_unknown_event(mnist, tmp_path):
    t = _trainer(mnist, tmp_path, epochs=1)
    events = []
    for ev in Trainer.EVENTS:
        t.add_callback(ev, lambda tr, ev=ev: events.append(ev))
    t.fit()
    assert events.count("on_step_end") == 6 and events.count("on_epoch_end") == 1 and events[-1] == "on_train_end"
    with pytest.raises(ValueError, match="unknown event"):
        t.add_callback("on_batch", print)


def test_short_run_clears_90_percent(full_mnist, tmp_path):
    mnist = full_mnist
    """A small ViT (7x7 patches, D=64, 4 blocks) on 6,000 real MNIST images: held-out accuracy must pass 90%."""
    train = mnist.train.take(6000, seed=0)
    cfg = TrainConfig(epochs=10, batch_size=128, lr=2e-3, warmup_epochs=1, seed=0, augment=None)
    model_cfg = vit_tiny_mnist(dim=64, depth=4)
    run = train_or_load(RunSpec("short", model_cfg, cfg), train, None, runs_dir=tmp_path, show=QUIET)
    result = evaluate(run.model, mnist.val.take(2000, seed=1))
    assert result.accuracy > 0.90, result.summary()
    assert result.confusion.sum() == 2000 and result.confusion.trace() == 2000 - result.errors
    assert "precision" in result.report
    conf = result.probs[result.misclassified].max(1).values
    assert torch.all(conf[:-1] >= conf[1:])  # most confident mistakes first
    # asking again loads instead of training
    again = train_or_load(RunSpec("short", model_cfg, cfg), train, None, runs_dir=tmp_path, show=QUIET)
    assert not again.trained_now
    assert torch.equal(again.model.head.weight, run.model.head.weight)
    with pytest.raises(CheckpointError, match="it was trained with a different setup"):
        train_or_load(RunSpec("short", vit_tiny_mnist(dim=32), cfg), train, None, runs_dir=tmp_path, show=QUIET)


def test_bad_train_config():
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="epochs must be a finite integer >= 1, got 0"):
        TrainConfig(epochs=0)


def test_history_spikes():
    from vitlab.training import History

    h = History()
    loss = [1.0] * 30
    loss[25] = 2.0
    h.steps["step"] = list(range(30))
    h.steps["loss"] = loss
    assert h.spikes("loss", window=20, factor=1.5) == [25]
    assert h.spikes("loss", window=20, factor=2.5) == []


def test_train_or_load_fine_tunes_from_init_and_freezes(tmp_path, mnist):
    import dataclasses

    import pytest
    import torch

    from vitlab import CheckpointError, ViT, train_or_load, vit_micro_mnist
    from vitlab.training import TrainConfig

    torch.manual_seed(0)
    base = ViT(vit_micro_mnist())
    cfg3 = dataclasses.replace(vit_micro_mnist(), num_classes=3)
    tc = TrainConfig(epochs=1, batch_size=64, max_steps_per_epoch=3, augment=None)
    from vitlab.data import ImageSet

    t = mnist.train.take(256)
    train = ImageSet(t.images, t.labels % 3, t.info, t.name)
    probe = RunSpec("probe", cfg3, tc, train_only=["head"])
    run = train_or_load(probe, train, None, runs_dir=tmp_path, init=base, show=QUIET)
    after = run.model.state_dict()
    for k, v in base.state_dict().items():
        if k.startswith("head."):
            assert after[k].shape != v.shape  # a new 3-way head
        else:
            assert torch.equal(after[k], v), k  # frozen backbone, copied from init
    again = train_or_load(probe, train, None, runs_dir=tmp_path, init=base, show=QUIET)
    assert not again.trained_now
    trainable = lambda r: {n for n, p in r.model.named_parameters() if p.requires_grad}
    assert trainable(again) == trainable(run) == {"head.weight", "head.bias"}  # a loaded probe is still a probe
    with pytest.raises(CheckpointError, match="train_only"):
        train_or_load(RunSpec("probe", cfg3, tc), train, None, runs_dir=tmp_path, init=base, show=QUIET)
    with pytest.raises(ValueError, match="names no parameters"):
        train_or_load(RunSpec("probe2", cfg3, tc, train_only=["heads"]), train, None, runs_dir=tmp_path, show=QUIET)


class _Reconstruct:
    """An objective without labels or logits: make the model's 10 outputs match the mean of the image."""

    def __call__(self, model, x, y):
        out = model(x)  # (B, 10)
        return ((out - x.mean(dim=(1, 2, 3))[:, None]) ** 2).mean(), None

    def to_dict(self):
        return {"name": "Reconstruct"}


def test_custom_objective_trains_and_is_recorded(mnist, tmp_path):
    from vitlab.training import CrossEntropy, Objective

    cfg = TrainConfig(epochs=2, batch_size=64, max_steps_per_epoch=8, augment=None, label_smoothing=0.0)
    t = mnist.train.take(512)
    spec = RunSpec("obj", vit_micro_mnist(), cfg)
    run = train_or_load(spec, t, mnist.val.take(200), runs_dir=tmp_path, objective=_Reconstruct(), show=QUIET)
    h = run.history
    assert all(math.isnan(a) for a in h.epochs["train_acc"] + h.epochs["val_acc"] + h.steps["acc"])
    assert h.steps["loss"][-1] < h.steps["loss"][0] and not math.isnan(h.epochs["val_loss"][-1])
    # the objective is part of the run's identity: the same run under cross-entropy is refused
    with pytest.raises(CheckpointError, match="objective"):
        train_or_load(spec, t, None, runs_dir=tmp_path, objective=CrossEntropy(), show=QUIET)
    assert not train_or_load(spec, t, None, runs_dir=tmp_path, objective=_Reconstruct(), show=QUIET).trained_now
    # the explicit default objective trains exactly what the implicit one does
    set_seed(0)
    a = Trainer(ViT(vit_micro_mnist()), t, None, cfg, progress=False, verbose=False)
    set_seed(0)
    b = Trainer(ViT(vit_micro_mnist()), t, None, cfg, progress=False, verbose=False, objective=CrossEntropy(0.0))
    a.fit(), b.fit()
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    assert issubclass(CrossEntropy, Objective)


def test_training_accuracy_counts_labelled_images_only(mnist, tmp_path):
    """With unlabelled images in the training set, the trainer's accuracy is over the labelled ones: an objective
    whose logits always name the right label scores exactly 1.0 (counting unlabelled images would give <= 1/8)."""
    from vitlab.data import UNLABELLED

    class Oracle(Objective):
        def __call__(self, model, x, y):
            logits = model(x)
            right = F.one_hot(y.clamp(min=0), logits.shape[1]).float() * 100  # (B, K) names y wherever y is a label
            return logits.square().mean(), right

    transfer = mnist.train.take(512).hide_labels(keep=torch.arange(0, 512, 8))  # 64 labelled of 512
    assert transfer.num_labelled() == 64 and (transfer.labels == UNLABELLED).sum() == 448
    tr = Trainer(ViT(vit_micro_mnist()), transfer, None, TrainConfig(epochs=1, batch_size=64, augment=None),
                 progress=False, verbose=False, objective=Oracle())
    h = tr.fit()
    assert h.epochs["train_acc"] == [1.0]
    assert all(a == 1.0 or math.isnan(a) for a in h.steps["acc"])  # nan only for a batch with no label at all


def test_validation_leaves_the_global_generator_and_the_mode_alone(mnist):
    """Validation seeds its own draws (MAE masks) without reseeding the generator training draws from."""
    from vitlab.training.objectives import CrossEntropy

    class Drawing(CrossEntropy):  # a custom objective that draws, as MAE's masking does
        def __call__(self, model, x, y):
            torch.rand(3)
            return super().__call__(model, x, y)

    torch.manual_seed(0)
    model = ViT(vit_micro_mnist())
    tr = Trainer(model, mnist.train.take(256), mnist.val.take(300), TrainConfig(epochs=1, batch_size=128, augment=None),
                 progress=False, verbose=False, objective=Drawing())
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    model.train()
    first = tr._validate()
    assert torch.equal(torch.rand(4), expected) and model.training
    assert tr._validate() == first  # the same draws every time
    loss, acc = first
    assert 0 <= acc <= 1 and loss > 0


def test_shuffled_accuracy_keeps_the_models_mode(mnist):
    from vitlab.analysis.positions import shuffled_accuracy

    torch.manual_seed(0)
    model = ViT(vit_micro_mnist()).train()
    a = shuffled_accuracy(model, mnist.test.take(200), patch_size=7, seed=1)
    assert model.training and 0 <= a <= 1
    assert shuffled_accuracy(model, mnist.test.take(200), patch_size=7, seed=1) == a


def test_weight_average_is_what_validation_and_the_checkpoint_use(mnist, tmp_path):
    t = _trainer(mnist, tmp_path, epochs=1, ema_decay=0.9)
    live = []
    t.add_callback("on_epoch_end", lambda tr: live.append({k: v.clone() for k, v in tr.model.state_dict().items()}))
    t.fit()
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    # The saved model is the average, not the last weights; the last weights are kept for resuming.
    assert all(torch.equal(ckpt["train_weights"][k], v) for k, v in live[0].items())
    assert not torch.equal(ckpt["model"]["head.weight"], live[0]["head.weight"])
    # What fit() leaves in the model is what the checkpoint holds, and it scores what validation said.
    assert all(torch.equal(ckpt["model"][k], v) for k, v in t.model.state_dict().items())
    acc = evaluate(t.model, mnist.val.take(200)).accuracy
    assert acc == pytest.approx(t.history.last("val_acc"))


def test_resumed_run_with_weight_average_matches_uninterrupted(mnist, tmp_path):
    a = _trainer(mnist, tmp_path / "a", ema_decay=0.9)
    a.fit()
    b = _trainer(mnist, tmp_path / "b", ema_decay=0.9)
    b.add_callback("on_epoch_end", lambda tr: setattr(tr, "stop", True))
    b.fit()
    c = _trainer(mnist, tmp_path / "b", ema_decay=0.9)
    c.fit(resume=True)
    for (k, p), q in zip(a.model.state_dict().items(), c.model.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6), k
    assert a.history.epochs["val_acc"] == pytest.approx(c.history.epochs["val_acc"])
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)


def test_runs_written_before_a_config_field_existed_still_load(mnist, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=64, max_steps_per_epoch=2, seed=0)
    model_cfg = vit_micro_mnist()
    path = tmp_path / "old" / "checkpoint.pt"
    first = Trainer(ViT(model_cfg), mnist.train, None, cfg, checkpoint_path=path, progress=False, verbose=False)
    first.add_callback("on_epoch_end", lambda tr: setattr(tr, "stop", True))  # stopped after epoch 1
    first.fit()
    ckpt = torch.load(path, weights_only=True)
    del ckpt["train_config"]["ema_decay"], ckpt["model_config"]["patch_overlap"]  # as an older vitlab wrote it
    torch.save(ckpt, path)
    resumed = train_or_load(RunSpec("old", model_cfg, cfg), mnist.train, None, runs_dir=tmp_path, show=QUIET)
    assert resumed.trained_now and resumed.history.num_steps == 4  # went on from epoch 1: 2 steps before, 2 after
    again = train_or_load(RunSpec("old", model_cfg, cfg), mnist.train, None, runs_dir=tmp_path, show=QUIET)
    assert not again.trained_now and torch.equal(again.model.head.weight, resumed.model.head.weight)


@pytest.mark.parametrize("env, shown", [(None, True), ("1", False), ("true", False), ("0", True)])
def test_progress_bars_follow_tqdm_disable_even_in_notebooks(mnist, monkeypatch, env, shown):
    # tqdm's notebook bars ignore TQDM_DISABLE; the trainer reads it itself, so the series pass keeps bars out of
    # committed notebooks while a learner's session still shows them.
    import tqdm.auto

    kwargs = []

    class Recorder(tqdm.auto.tqdm):
        def __init__(self, *a, **kw):
            kwargs.append(kw)
            super().__init__(*a, **{**kw, "disable": True})

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    if env is None:
        monkeypatch.delenv("TQDM_DISABLE", raising=False)
    else:
        monkeypatch.setenv("TQDM_DISABLE", env)
    cfg = TrainConfig(epochs=1, batch_size=50, max_steps_per_epoch=2, augment=None)
    Trainer(ViT(vit_micro_mnist()), mnist.train.take(100), None, cfg, progress=True, verbose=False).fit()
    assert kwargs and all(("disable" not in kw) == shown for kw in kwargs)


def test_callback_objects_are_called_and_quiet_shows_nothing(mnist, tmp_path, capsys):
    from vitlab.training.callbacks import QUIET, Checkpoint, Show, run_callbacks

    class Counter:  # a user's callback: any of the event methods, each given the trainer
        def __init__(self):
            self.steps, self.epochs = [], []

        def on_step_end(self, trainer):
            self.steps.append(trainer.step)

        def on_epoch_end(self, trainer):
            self.epochs.append((trainer.epoch, trainer.history.last("train_loss")))

    cfg = TrainConfig(epochs=2, batch_size=32, max_steps_per_epoch=3, augment=None)
    counter = Counter()
    quiet = tmp_path / "quiet"
    t = Trainer(ViT(vit_micro_mnist()), mnist.train.take(128), mnist.val.take(64), cfg,
                callbacks=run_callbacks(quiet, QUIET, {"run_name": "quiet"}) + [counter])
    t.fit()
    assert counter.steps == [1, 2, 3, 4, 5, 6] and [e for e, _ in counter.epochs] == [1, 2]
    assert counter.epochs[-1][1] == t.history.epochs["train_loss"][-1]
    assert capsys.readouterr().out == ""
    assert (quiet / "checkpoint.pt").exists() and not (quiet / "tb").exists()
    assert t.checkpoint_path == quiet / "checkpoint.pt" and t.extra == {"run_name": "quiet"}
    assert torch.load(quiet / "checkpoint.pt", weights_only=True)["extra"] == {"run_name": "quiet"}
    # everything shown: a line per epoch and TensorBoard events
    shown = tmp_path / "shown"
    Trainer(ViT(vit_micro_mnist()), mnist.train.take(128), None, cfg,
            callbacks=run_callbacks(shown, Show(progress=False), {})).fit()
    assert capsys.readouterr().out.count("train loss") == 2 and any((shown / "tb").iterdir())
    with pytest.raises(ValueError, match="not both"):
        Trainer(ViT(vit_micro_mnist()), mnist.train.take(128), None, cfg, callbacks=[Checkpoint(quiet / "c.pt")],
                checkpoint_path=quiet / "d.pt")


def test_any_batch_source_trains_and_resumes(mnist, tmp_path):
    """A source that is not an ImageSet: only __len__ and batches(); the checkpoint leaves out the dataset."""
    source = mnist.train.take(128)

    class Batches:
        def __len__(self):
            return len(source)

        def batches(self, batch_size, shuffle=True, generator=None, augment=None, drop_last=True):
            yield from source.batches(batch_size, shuffle, generator, augment, drop_last)

    cfg = TrainConfig(epochs=2, batch_size=32, max_steps_per_epoch=2, augment=None)
    path = tmp_path / "c.pt"
    set_seed(0)
    a = Trainer(ViT(vit_micro_mnist()), Batches(), None, cfg, checkpoint_path=path, verbose=False, progress=False)
    a.add_callback("on_epoch_end", lambda tr: setattr(tr, "stop", True))
    a.fit()
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["dataset"] is None and ckpt["data"] is None and a.data_identity is None
    b = Trainer(ViT(vit_micro_mnist()), Batches(), None, cfg, checkpoint_path=path, verbose=False, progress=False)
    b.fit(resume=True)
    set_seed(0)
    c = Trainer(ViT(vit_micro_mnist()), source, None, cfg, verbose=False, progress=False)  # the same batches
    c.fit()
    assert b.step == c.step == 4 and b.history.steps["loss"] == c.history.steps["loss"]
    assert all(torch.equal(p, q) for p, q in zip(b.model.state_dict().values(), c.model.state_dict().values()))

"""Notebook 12: the I-JEPA pre-training runs (block and scattered masking), the collapse demonstration, and few-label
fine-tuning from the JEPA encoder. Shared with benchmarks/self_supervised.py, which trains the same runs the notebook loads."""

from __future__ import annotations

import dataclasses

from ..methods.jepa import JEPAObjective, encoder_from_jepa, jepa_callbacks
from ..models import MAEConfig
from ..models.jepa import JEPAConfig
from ..training.checkpoints import CheckpointError, config_mismatch, load_model, read_checkpoint
from ..training.config import TrainConfig
from ..training.history import History
from ..training.runs import Run, train_or_load
from .common import FAST_EPOCHS, FAST_TRAIN_IMAGES, notebook_runs_dir
from .mae import labelled_subset, mae_finetune_config

# Full mode. Notebook 09's MAE pre-trains 30 epochs; a JEPA step costs about twice an MAE step on this CPU (the target
# encoder reads all 17 tokens and the predictor runs once per target group; benchmarks/self_supervised.py measures the ratio in
# one process), so the same wall-clock budget buys about half the epochs.
JEPA_PRETRAIN_EPOCHS = 15
BLOCK_STOPPED_AT = 3  # full mode: block masking fell behind scattered on validation and was stopped after 3 epochs
COLLAPSE_IMAGES, COLLAPSE_EPOCHS = 10_000, 4  # the collapse demo: short, on a subset
MONITOR_REFERENCE, MONITOR_PROBE = 5000, 2000  # collapse monitor: k-NN of validation images among training images


def jepa_pretrain_config(fast: bool = False, epochs: "int | None" = None) -> TrainConfig:
    """JEPA pre-training recipe: notebook 09's MAE recipe (AdamW lr 1.5e-3, weight decay 0.05, 2 warm-up epochs then
    cosine, batch 256) WITHOUT augmentation, as I-JEPA: the targets come from the same image, not from a second view."""
    return TrainConfig(epochs=epochs or (FAST_EPOCHS if fast else JEPA_PRETRAIN_EPOCHS), batch_size=256, lr=1.5e-3,
                       weight_decay=0.05, warmup_epochs=1.0 if fast else 2.0, schedule="cosine", label_smoothing=0.0,
                       grad_clip=1.0, augment=None)


def monitor_sets(data, fast: bool = False):
    """(reference, probe) images of the collapse monitor: training images to search, validation images to classify."""
    return data.train.take(1000 if fast else MONITOR_REFERENCE), data.val.take(500 if fast else MONITOR_PROBE)


def jepa_pretrain_run(data, masking: str = "block", fast: bool = False, epochs: "int | None" = None,
                      stop_after: "int | None" = None, **kw):
    """Notebook 12's I-JEPA (default JEPAConfig with `masking`), pre-trained on the training images WITHOUT labels,
    with the EMA update and the collapse monitor. Run ``12_jepa_<masking>`` (``..._e<epochs>`` for another length).
    FAST: 4,000 images, 2 epochs, 1,000 validation images.

    `stop_after`: end training after that many epochs of the schedule (a masking judged worse on validation gives its
    budget back); such a run is read from its checkpoint as it stopped, never resumed."""
    cfg = JEPAConfig(masking=masking)
    tc = jepa_pretrain_config(fast, epochs)
    train_set = data.train.take(FAST_TRAIN_IMAGES) if fast else data.train
    name = f"12_jepa_{masking}" + ("" if epochs is None else f"_e{epochs}")
    runs_dir = notebook_runs_dir(fast)
    callbacks = jepa_callbacks(*monitor_sets(data, fast), ema=cfg.ema_momentum)
    if stop_after is not None and stop_after < tc.epochs:
        path = runs_dir / name / "checkpoint.pt"
        if path.exists() and read_checkpoint(path)["epoch"] >= stop_after:
            model, ckpt = load_model(path)
            diff = config_mismatch(ckpt["model_config"], cfg.to_dict(), "jepa")
            if diff:
                raise CheckpointError(f"{path}: run {name!r} exists with a different model ({diff})")
            return Run(model, History.from_dict(ckpt["history"]), path.parent, trained_now=False)

        def stop(trainer):
            trainer.stop = trainer.stop or trainer.epoch >= stop_after

        callbacks["on_epoch_end"].append(stop)
    for k, v in (("tensorboard", False), ("progress", False)):
        kw.setdefault(k, v)
    val_set = data.val.take(1000) if fast else data.val
    return train_or_load(name, cfg, train_set, val_set, tc, runs_dir=runs_dir, objective=JEPAObjective(),
                         callbacks=callbacks, **kw)


def collapse_run(data, teacher: str, fast: bool = False, **kw):
    """The collapse demonstration: `teacher` "none" (targets from the context encoder itself, gradient flowing: no
    EMA, no stop-gradient) or "ema" (the real thing), on 10,000 images for 4 epochs (FAST: 2,000, 2), block masking.
    Run ``12_collapse_<teacher>``."""
    cfg = JEPAConfig(teacher=teacher)
    tc = dataclasses.replace(jepa_pretrain_config(fast), epochs=FAST_EPOCHS if fast else COLLAPSE_EPOCHS,
                             warmup_epochs=0.5)
    train_set = data.train.take(2000 if fast else COLLAPSE_IMAGES)
    for k, v in (("tensorboard", False), ("progress", False)):
        kw.setdefault(k, v)
    val_set = data.val.take(1000) if fast else data.val
    return train_or_load(f"12_collapse_{teacher}", cfg, train_set, val_set, tc, runs_dir=notebook_runs_dir(fast),
                         objective=JEPAObjective(), callbacks=jepa_callbacks(*monitor_sets(data, fast)), **kw)


def jepa_finetune_run(data, n_labels: int, jepa, masking: str, fast: bool = False, **kw):
    """Fine-tune the whole ViT on `n_labels` labelled training images from the JEPA's context encoder, with notebook
    09's few-label recipe and images (its from-scratch and MAE runs are the comparison).
    Run ``12_ft<n>_jepa_<masking>``."""
    for k, v in (("tensorboard", False), ("progress", False), ("verbose", False)):
        kw.setdefault(k, v)
    # JEPAConfig().encoder is notebook 09's ViT: the from-scratch and MAE runs fine-tune the same architecture
    return train_or_load(f"12_ft{n_labels}_jepa_{masking}", JEPAConfig().encoder, labelled_subset(data.train, n_labels),
                         None, mae_finetune_config(n_labels, fast), runs_dir=notebook_runs_dir(fast),
                         init=encoder_from_jepa(jepa, num_classes=10), **kw)


def pretrain_step_seconds(data, rounds: int = 3, steps: int = 20) -> dict:
    """Seconds per pre-training step of notebook 09's MAE and of the JEPA (block and scattered masking), measured in
    THIS process on the same batches with the real Trainer loop (EMA update included), the three taking turns
    `rounds` times; the median of each. The ratio is what sets the JEPA's epochs at the MAE's wall-clock budget."""
    import statistics

    from ..methods.jepa import EMAUpdate
    from ..methods.mae import MAEObjective
    from ..models import MAE
    from ..models.jepa import JEPA
    from ..training.trainer import Trainer
    from .mae import mae_pretrain_config

    def one(kind: str) -> float:
        if kind == "mae":
            model, objective, tc = MAE(MAEConfig()), MAEObjective(), mae_pretrain_config()
        else:
            model, objective, tc = JEPA(JEPAConfig(masking=kind)), JEPAObjective(), jepa_pretrain_config()
        tc = dataclasses.replace(tc, epochs=1, max_steps_per_epoch=steps)
        tr = Trainer(model, data.train.take(tc.batch_size * steps), None, tc, progress=False, verbose=False,
                     objective=objective)
        if kind != "mae":
            tr.add_callback("on_step_end", EMAUpdate())
        return tr.fit().epochs["seconds"][0] / steps

    times = {k: [] for k in ("mae", "block", "scattered")}
    for _ in range(rounds):
        for k in times:
            times[k].append(one(k))
    return {k: statistics.median(v) for k, v in times.items()}


PROBE_LAYERS = ("mean", "cls+mean", "patches")  # pooled patch tokens, CLS beside them, every patch token flattened


def frozen_eval(encoder, train_set, eval_set, layers=PROBE_LAYERS, probe_epochs: int = 100) -> dict:
    """{layer: {"knn": 5-NN accuracy, "linear": linear-probe accuracy}} of a frozen encoder's features of `eval_set`,
    both fitted on the features of `train_set` (labels read here only)."""
    from ..analysis.embedding import knn_accuracy
    from ..analysis.features import extract_features
    from ..analysis.probes import linear_probe

    ftr = extract_features(encoder, train_set, layer=tuple(layers))  # one pass: {layer: (N, F)}
    fte = extract_features(encoder, eval_set, layer=tuple(layers))
    ytr, yte = train_set.labels.numpy(), eval_set.labels.numpy()
    return {k: {"knn": knn_accuracy(ftr[k], ytr, fte[k], yte, k=5),
                "linear": linear_probe(ftr[k], ytr, fte[k], yte, epochs=probe_epochs)["test_acc"]} for k in layers}


def cached_frozen_eval(run, which: str, data, split: str, fast: bool = False) -> dict:
    """`frozen_eval` of a pre-training run's encoder (`which`: "context"/"target" for a JEPA, "encoder" for the MAE)
    on the "val" or "test" split, kept in ``<runs>/12_frozen_eval.json`` under the run, its checkpoint's time and the
    split, so that the benchmark and the notebook compute it once. FAST: 2,000 training and 1,000 evaluated images,
    10 probe epochs."""
    import json

    from ..methods.jepa import encoder_from_jepa
    from ..methods.mae import encoder_from_mae

    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    path = notebook_runs_dir(fast) / "12_frozen_eval.json"
    key = f"{run.path.name}|{which}|{split}|{run.checkpoint.stat().st_mtime_ns}"
    cache = json.loads(path.read_text()) if path.exists() else {}
    if key not in cache:
        enc = encoder_from_mae(run.model) if which == "encoder" else encoder_from_jepa(run.model, which=which)
        train_set = data.train.take(2000) if fast else data.train
        eval_set = getattr(data, split)
        eval_set = eval_set.take(1000) if fast else eval_set
        cache = json.loads(path.read_text()) if path.exists() else {}  # re-read: another process may have written
        cache[key] = frozen_eval(enc, train_set, eval_set, probe_epochs=10 if fast else 100)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cache, indent=1))
    return cache[key]

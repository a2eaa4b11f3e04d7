"""Notebook 12: the I-JEPA pre-training runs (block and scattered masking), the collapse demonstration, and few-label
fine-tuning from the JEPA encoder. Shared with benchmarks/self_supervised.py, which trains the same runs the notebook
loads.

Runs: ``12_jepa_<masking>`` (``..._e<epochs>`` for another length), ``12_collapse_<teacher>``,
``12_ft<n>_jepa_<masking>``."""

from __future__ import annotations

import dataclasses
import json
from typing import Optional

from ..models.jepa import JEPAConfig
from ..training.config import TrainConfig
from ..training.spec import DataSpec, Fast, Init, Part, RunSpec
from .mae import FINETUNE_FAST, few_labels, mae_finetune_config, mae_pretrain_config

# A JEPA step costs more than an MAE step (the target encoder reads all 17 tokens and the predictor runs once per
# target group), so notebook 09's wall-clock budget buys fewer epochs: benchmarks/self_supervised.py measures the
# ratio in one process, and the README gives it.
JEPA_PRETRAIN_EPOCHS = 15
BLOCK_STOPPED_AT = 3  # block masking fell behind scattered on validation and was stopped after 3 epochs
COLLAPSE_IMAGES, COLLAPSE_EPOCHS = 10_000, 4  # the collapse demo: short, on a subset
MONITOR_REFERENCE, MONITOR_PROBE = 5000, 2000  # collapse monitor: k-NN of validation images among training images


def jepa_pretrain_config(epochs: Optional[int] = None) -> TrainConfig:
    """JEPA pre-training recipe: notebook 09's MAE recipe (AdamW lr 1.5e-3, weight decay 0.05, 2 warm-up epochs then
    cosine, batch 256) WITHOUT augmentation, as I-JEPA: the targets come from the same image, not from a second view."""
    return TrainConfig(epochs=epochs or JEPA_PRETRAIN_EPOCHS, batch_size=256, lr=1.5e-3, weight_decay=0.05,
                       warmup_epochs=2.0, schedule="cosine", label_smoothing=0.0, grad_clip=1.0, augment=None)


def _monitor(ema: tuple, reference: int = MONITOR_REFERENCE, probe: int = MONITOR_PROBE) -> Part:
    return Part.of("jepa", ema=tuple(ema), reference=reference, probe=probe)


def jepa_pretrain_spec(masking: str = "block", epochs: Optional[int] = None,
                       stop_after: Optional[int] = None) -> RunSpec:
    """Notebook 12's I-JEPA (default JEPAConfig with `masking`), pre-trained on the training images WITHOUT labels,
    with the EMA update and the collapse monitor. FAST: 4,000 images, 2 epochs, 1,000 validation images.

    `stop_after`: end training after that many epochs of the schedule (a masking judged worse on validation gives its
    budget back); such a run is read from its checkpoint as it stopped, never resumed."""
    cfg = JEPAConfig(masking=masking)
    name = f"12_jepa_{masking}" + ("" if epochs is None else f"_e{epochs}")
    return RunSpec(name, cfg, jepa_pretrain_config(epochs), objective=Part.of("jepa"),
                   callbacks=(_monitor(cfg.ema_momentum),), stop_after=stop_after,
                   fast=Fast(images=4000, epochs=2, val_images=1000, train=(("warmup_epochs", 1.0),),
                             callbacks=(_monitor(cfg.ema_momentum, 1000, 500),)))


JEPA_PRETRAIN = {"block": jepa_pretrain_spec("block", stop_after=BLOCK_STOPPED_AT), "scattered": jepa_pretrain_spec("scattered")}


def collapse_spec(teacher: str) -> RunSpec:
    """The collapse demonstration: `teacher` "none" (targets from the context encoder itself, gradient flowing: no
    EMA, no stop-gradient) or "ema" (the real thing), on 10,000 images for 4 epochs, block masking."""
    default = JEPAConfig().ema_momentum
    return RunSpec(f"12_collapse_{teacher}", JEPAConfig(teacher=teacher),
                   dataclasses.replace(jepa_pretrain_config(), epochs=COLLAPSE_EPOCHS, warmup_epochs=0.5),
                   DataSpec(train=(Part.of("take", n=COLLAPSE_IMAGES),)), objective=Part.of("jepa"),
                   callbacks=(_monitor(default),),
                   fast=Fast(images=2000, epochs=2, val_images=1000, callbacks=(_monitor(default, 1000, 500),)))


def jepa_finetune_spec(n_labels: int, masking: str) -> RunSpec:
    """Fine-tune the whole ViT on `n_labels` labelled training images from the JEPA's context encoder, with notebook
    09's few-label recipe and images (its from-scratch and MAE runs are the comparison)."""
    # JEPAConfig().encoder is notebook 09's ViT: the from-scratch and MAE runs fine-tune the same architecture
    return RunSpec(f"12_ft{n_labels}_jepa_{masking}", JEPAConfig().encoder, mae_finetune_config(n_labels),
                   few_labels(n_labels), init=Init(JEPA_PRETRAIN[masking], take="encoder"), fast=FINETUNE_FAST)


def pretrain_step_seconds(data, rounds: int = 3, steps: int = 20) -> dict:
    """Seconds per pre-training step of notebook 09's MAE and of the JEPA (block and scattered masking), measured in
    THIS process on the same batches with the real Trainer loop (EMA update included), the three taking turns
    `rounds` times; the median of each. The ratio is what sets the JEPA's epochs at the MAE's wall-clock budget."""
    import statistics

    from ..methods.jepa import EMAUpdate, JEPAObjective
    from ..methods.mae import MAEObjective
    from ..models import MAE, MAEConfig
    from ..models.jepa import JEPA
    from ..training.callbacks import QUIET
    from ..training.trainer import Trainer

    def one(kind: str) -> float:
        if kind == "mae":
            model, objective, tc = MAE(MAEConfig()), MAEObjective(), mae_pretrain_config()
        else:
            model, objective, tc = JEPA(JEPAConfig(masking=kind)), JEPAObjective(), jepa_pretrain_config()
        tc = dataclasses.replace(tc, epochs=1, max_steps_per_epoch=steps)
        tr = Trainer(model, data.train.take(tc.batch_size * steps), None, tc, objective=objective, show=QUIET)
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


def cached_frozen_eval(run, which: str, train_set, eval_set, split: str, probe_epochs: int = 100) -> dict:
    """`frozen_eval` of a pre-training run's encoder (`which`: "context"/"target" for a JEPA, "encoder" for the MAE),
    fitted on `train_set` and scored on `eval_set` (of the "val" or "test" split), kept in
    ``12_frozen_eval.json`` beside the runs under the run, its checkpoint's time, the split and the sizes, so that the
    benchmark and the notebook compute it once. A small JSON file of numbers, not a checkpoint: nothing in it is
    trained."""
    from ..methods.pretrained import encoder_of
    from ..methods.jepa import encoder_from_jepa
    from .runner import runs_dir

    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    path = runs_dir() / "12_frozen_eval.json"
    key = (f"{run.path.name}|{which}|{split}|{run.checkpoint.stat().st_mtime_ns}"
           f"|{len(train_set)}|{len(eval_set)}|{probe_epochs}")
    cache = json.loads(path.read_text()) if path.exists() else {}
    if key not in cache:
        enc = encoder_of(run.model) if which == "encoder" else encoder_from_jepa(run.model, which=which)
        result = frozen_eval(enc, train_set, eval_set, probe_epochs=probe_epochs)
        cache = json.loads(path.read_text()) if path.exists() else {}  # re-read: another process may have written
        cache[key] = result
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cache, indent=1))
    return cache[key]

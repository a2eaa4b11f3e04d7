"""Named training recipes: a model preset plus a TrainConfig, measured on this project's CPU.

`default` is what `vitlab train` runs with no flags and what notebook 03 trains;
`long` is the slower recipe for the best accuracy. Measured figures are in the README
(benchmarks/accuracy.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .data import Augment
from .model import ViTConfig, vit_small_mnist, vit_tiny_mnist
from .train import TrainConfig


@dataclass(frozen=True)
class Recipe:
    name: str  # what `--recipe` takes
    model: ViTConfig  # the model to train
    train: TrainConfig  # how to train it
    about: str = ""  # one line for --help and the README


RECIPES = {
    "default": Recipe(
        "default",
        vit_tiny_mnist(),
        TrainConfig(epochs=18, batch_size=256, lr=2e-3, weight_decay=0.05, warmup_epochs=1.0, schedule="cosine",
                    label_smoothing=0.1, grad_clip=1.0,
                    augment=Augment(rotation=5.0, scale=0.05, translate=1.0)),
        "vit_tiny_mnist (7x7 patches, 17 tokens), 18 epochs, light augmentation: the 6-minute CPU recipe",
    ),
    "long": Recipe(
        "long",
        vit_small_mnist(),
        TrainConfig(epochs=40, batch_size=256, lr=2e-3, weight_decay=0.05, warmup_epochs=2.0, schedule="cosine",
                    label_smoothing=0.1, grad_clip=1.0, augment=Augment(elastic_alpha=1.0)),
        "vit_small_mnist (4x4 patches, 50 tokens), 40 epochs, stronger augmentation with elastic distortion",
    ),
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(RECIPES)}") from None


# --------------------------------------------------------------------------- the notebooks' shared runs

FAST_TRAIN_IMAGES = 4000  # FAST mode (CI): train on this many images ...
FAST_EPOCHS = 2  # ... for this many epochs


def notebook_runs_dir(fast: bool):
    """Where the notebooks keep their runs: ``runs/``, or ``runs/fast/`` for FAST (CI) runs, so a quick
    check never replaces or reuses the real models."""
    from .runs import default_runs_dir

    return default_runs_dir() / "fast" if fast else default_runs_dir()


def shrink_for_fast(train_set, train_config: TrainConfig, fast: bool, epochs: int = FAST_EPOCHS):
    """The same code path on fewer images and epochs when `fast`; unchanged otherwise."""
    import dataclasses

    if not fast:
        return train_set, train_config
    return train_set.take(FAST_TRAIN_IMAGES), dataclasses.replace(train_config, epochs=min(epochs, train_config.epochs))


def default_vit_run(data, fast: bool = False, **kwargs):
    """Notebook 03's ViT: the default recipe, run name ``vit_tiny_mnist``. Trained the first time it is asked
    for (by notebook 03 or any later one), loaded afterwards."""
    from .runs import train_or_load

    r = RECIPES["default"]
    train_set, cfg = shrink_for_fast(data.train, r.train, fast)
    return train_or_load("vit_tiny_mnist", r.model, train_set, data.val, cfg, runs_dir=notebook_runs_dir(fast), **kwargs)


CNN_BASELINE_EPOCHS = 6  # notebook 03's CNN baseline trains this many epochs with the default recipe (FAST: 2)


def cnn_baseline_run(data, fast: bool = False, **kwargs):
    """Notebook 03's CNN baseline (run ``cnn_baseline``): the default recipe's training, CNN_BASELINE_EPOCHS epochs
    (2 in FAST)."""
    import dataclasses

    from .cnn import CNNConfig
    from .runs import train_or_load

    r = RECIPES["default"]
    train_set, cfg = shrink_for_fast(data.train, r.train, fast)
    cfg = dataclasses.replace(cfg, epochs=2 if fast else CNN_BASELINE_EPOCHS)
    return train_or_load("cnn_baseline", CNNConfig(), train_set, data.val, cfg, runs_dir=notebook_runs_dir(fast), **kwargs)


def open_set_run(data, osd, approach: str, kind: str, fast: bool = False, backbone=None, tag: str = "", **kwargs):
    """Notebook 07's fine-tuning runs, reused by notebook 08. Starts from notebook 03's ViT (or `backbone`).

    approach "a": 3 outputs, trained on known + `osd.unknown_train` digits (explicit unknown class);
    approach "b": 2 outputs, trained on the known digits only (unknowns are rejected by a score threshold).
    kind "probe": only the new head learns; "finetune": every weight learns, at a quarter of the recipe's rate.
    The model is the backbone's architecture with a K+1 or K-way head. Run name
    ``07_<known digits>_<approach>_<kind>``, plus ``_<tag>`` for another backbone (e.g. tag="imagenet").
    """
    import dataclasses

    from .pretrained import load_backbone
    from .runs import train_or_load

    if approach not in ("a", "b") or kind not in ("probe", "finetune"):
        raise ValueError(f"approach must be 'a' or 'b' and kind 'probe' or 'finetune', got {approach!r}, {kind!r}")
    if backbone is None:
        backbone = load_backbone(default_vit_run(data, fast, verbose=False).checkpoint)
    base = RECIPES["default"]
    cfg = dataclasses.replace(base.train, epochs=1 if fast else 3, lr=5e-4, warmup_epochs=0.3)
    if kind == "probe":
        cfg = dataclasses.replace(cfg, lr=5e-3, weight_decay=0.0)
    K = len(osd.known)
    train_set, val_set = (osd.with_unknown("train"), osd.with_unknown("val")) if approach == "a" else (osd.train, osd.val)
    mcfg = dataclasses.replace(backbone.cfg, num_classes=K + 1 if approach == "a" else K)
    kwargs.setdefault("tensorboard", False)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("verbose", False)
    name = f"07_{''.join(map(str, osd.known))}_{approach}_{kind}" + (f"_{tag}" if tag else "")
    return train_or_load(name, mcfg, train_set, val_set, cfg,
                         runs_dir=notebook_runs_dir(fast), init=backbone, train_only=["head"] if kind == "probe" else None,
                         **kwargs)


# --------------------------------------------------------------------------- MAE pre-training (notebook 09)
# Appended for notebook 09 (vitlab/mae.py): the masked-autoencoder pre-training run and the few-label runs.

MAE_PRETRAIN_EPOCHS = 30  # full mode; about 7 minutes on the project's 2-core CPU (the encoder sees 5 of 17 tokens)


def mae_pretrain_config(fast: bool = False, epochs: "int | None" = None) -> TrainConfig:
    """MAE pre-training recipe: AdamW, cosine after a 2-epoch warm-up, the default recipe's light augmentation."""
    return TrainConfig(epochs=epochs or (FAST_EPOCHS if fast else MAE_PRETRAIN_EPOCHS), batch_size=256, lr=1.5e-3,
                       weight_decay=0.05, warmup_epochs=1.0 if fast else 2.0, schedule="cosine", label_smoothing=0.0,
                       grad_clip=1.0, augment=Augment(rotation=5.0, scale=0.05, translate=1.0))


def mae_pretrain_run(data, fast: bool = False, mask_ratio: float = 0.75, epochs: "int | None" = None, **kw):
    """Notebook 09's MAE (vitlab.mae, default MAEConfig) pre-trained on the training images WITHOUT labels.

    Run ``09_mae`` (``09_mae_r<percent>`` for another mask ratio, ``..._e<epochs>`` for another length); trained
    the first time, loaded afterwards. FAST: 4,000 images, 2 epochs.
    """
    from .mae import MAEConfig, MAEObjective
    from .runs import train_or_load

    cfg = MAEConfig(mask_ratio=mask_ratio)
    tc = mae_pretrain_config(fast, epochs)
    train_set = data.train.take(FAST_TRAIN_IMAGES) if fast else data.train
    name = "09_mae" + ("" if mask_ratio == 0.75 else f"_r{round(100 * mask_ratio)}") + ("" if epochs is None else f"_e{epochs}")
    for k, v in (("tensorboard", False), ("progress", False)):
        kw.setdefault(k, v)
    return train_or_load(name, cfg, train_set, data.val, tc, runs_dir=notebook_runs_dir(fast), objective=MAEObjective(), **kw)


def labelled_subset(train_set, n: int, seed: int = 0):
    """A class-balanced, seeded subset of `n` labelled images (n // classes per class)."""
    import torch

    classes = len(train_set.info.classes)
    if n % classes:
        raise ValueError(f"n must be a multiple of the {classes} classes, got {n}")
    g = torch.Generator().manual_seed(seed)
    idx = [torch.nonzero(train_set.labels == c).flatten() for c in range(classes)]
    idx = torch.cat([i[torch.randperm(len(i), generator=g)[: n // classes]] for i in idx])
    return train_set.subset(idx.sort().values)


def mae_finetune_config(n_labels: int, fast: bool = False) -> TrainConfig:
    """Few-label recipe (the same for pre-trained and from-scratch models): about 400-500 steps with augmentation."""
    batch = min(100, n_labels // 2)
    steps_per_epoch = n_labels // batch
    epochs = max(1, round((500 if n_labels >= 1000 else 400) / steps_per_epoch))
    return TrainConfig(epochs=2 if fast else epochs, batch_size=batch, lr=1e-3, weight_decay=0.05,
                       warmup_epochs=max(0.1 * epochs, 1.0) if not fast else 0.5, schedule="cosine",
                       label_smoothing=0.1, grad_clip=1.0, augment=Augment(rotation=10.0, scale=0.1, translate=2.0))


def mae_finetune_run(data, n_labels: int, pretrained: bool = True, fast: bool = False, mae=None, **kw):
    """Fine-tune the whole ViT on `n_labels` labelled training images: from the MAE encoder (`pretrained`) or from
    scratch (same model, recipe and images). Run ``09_ft<n>_mae`` / ``09_ft<n>_scratch``."""
    from .mae import MAEConfig, encoder_from_mae
    from .runs import train_or_load

    init = None
    if pretrained:
        mae = mae if mae is not None else mae_pretrain_run(data, fast, verbose=False).model
        init = encoder_from_mae(mae, num_classes=10)
    cfg = MAEConfig().encoder
    for k, v in (("tensorboard", False), ("progress", False), ("verbose", False)):
        kw.setdefault(k, v)
    return train_or_load(f"09_ft{n_labels}_{'mae' if pretrained else 'scratch'}", cfg, labelled_subset(data.train, n_labels),
                         None, mae_finetune_config(n_labels, fast), runs_dir=notebook_runs_dir(fast), init=init, **kw)


# --------------------------------------------------------------------------- notebook 10: knowledge distillation
# (section added for notebook 10; everything it needs is imported inside the functions)

STUDENT_IMAGES = 5000  # the students learn from this many labelled training images (the teachers saw all 55,000)
STUDENT_EPOCHS = 60  # passes over them, the same for every student (FAST: FAST_EPOCHS on fewer images)
STUDENT_TEACHERS = ("vit", "cnn")  # notebook 03's ViT (run vit_tiny_mnist) and CNN (run cnn_baseline)
STUDENT_KINDS = ("alone", "soft", "hard", "token")  # no teacher, Hinton's soft targets, DeiT's hard labels, DeiT's token
# With a transfer set (all 55,000 training images, labels kept on the students' 5,000 only) every student takes the
# same number of optimizer steps: TRANSFER_EPOCHS x TRANSFER_STEPS_PER_EPOCH = 2,280, as many as 120 epochs of the
# 5,000 labelled images in batches of 256.
TRANSFER_EPOCHS = 12
TRANSFER_STEPS_PER_EPOCH = 190


def student_config(token: bool = False):
    """Notebook 10's student: vit_tiny_mnist at D=64 with 2 blocks (72,074 parameters, 18% of the teacher's
    407,690); with `token`, its DistilledViT twin (72,852: one more token, its position and a second head)."""
    from .distill import distilled_config

    cfg = vit_tiny_mnist(dim=64, depth=2, heads=4)
    return distilled_config(cfg) if token else cfg


def student_distill_config(kind: str):
    """The distillation settings of notebook 10: alpha = 1/2 everywhere (the labels and the teacher weigh the
    same, as in DeiT), T = 4 for the soft loss, the distillation token learns the teacher's hard labels."""
    from .distill import DistillConfig

    return DistillConfig(kind=kind, alpha=0.5, temperature=4.0, token_loss="hard",
                         label_smoothing=RECIPES["default"].train.label_smoothing)


def distill_teacher(data, teacher: str = "vit", fast: bool = False):
    """The trained teacher model: notebook 03's ViT ("vit") or its CNN baseline ("cnn"), loaded (trained if missing)."""
    if teacher == "vit":
        return default_vit_run(data, fast, verbose=False).model
    if teacher == "cnn":
        return cnn_baseline_run(data, fast, verbose=False).model
    raise ValueError(f"teacher must be one of {STUDENT_TEACHERS}, got {teacher!r}")


def transfer_set(data):
    """All the training images: first the students' STUDENT_IMAGES labelled ones (`data.train.take(STUDENT_IMAGES)`,
    in its order), then every other one without its label; the teacher labels those (55,000 images, 5,000 labels).

    The labelled images move to the front on purpose: at their original places they would be exactly the first
    5,000 of the trainer's epoch-0 shuffle, which is drawn from the same seed as `take`.
    """
    keep = data.train.take_indices(STUDENT_IMAGES)
    rest = torch.ones(len(data.train), dtype=torch.bool)
    rest[keep] = False
    order = torch.cat([keep, torch.nonzero(rest).flatten()])
    return data.train.subset(order).hide_labels(keep=torch.arange(len(keep)))


def student_run(data, kind: str, teacher: str = "vit", fast: bool = False, teacher_model=None, transfer: bool = False,
                **kwargs):
    """Notebook 10's students, all with the default recipe's training at the same budget: STUDENT_EPOCHS passes over
    the same STUDENT_IMAGES labelled images (a seeded subset of the training set).

    kind "alone": cross-entropy only (run ``10_student_alone``); "soft", "hard", "token": distilled from
    `teacher` (run ``10_student_<kind>_<teacher>``), with `student_distill_config(kind)`. `teacher_model`
    skips loading the teacher again when the caller already holds it. The teacher's outputs are cached, so
    the students after the first one with a given teacher do not pay for its forward passes again.

    `transfer`: the longer budget of TRANSFER_EPOCHS x TRANSFER_STEPS_PER_EPOCH steps, on `transfer_set(data)` for a
    distilled student (the teacher's term covers every image, the labels' term the labelled ones: run
    ``10_student_<kind>_<teacher>_transfer``), on the labelled images alone for kind "alone", since without a teacher
    an unlabelled image teaches nothing (run ``10_student_alone_long``).
    """
    import dataclasses

    from .distill import make_objective
    from .runs import train_or_load

    if kind not in STUDENT_KINDS:
        raise ValueError(f"kind must be one of {STUDENT_KINDS}, got {kind!r}")
    recipe = dataclasses.replace(RECIPES["default"].train, epochs=STUDENT_EPOCHS)
    labelled = data.train.take(STUDENT_IMAGES)
    suffix = ""
    if transfer:
        steps = TRANSFER_EPOCHS * TRANSFER_STEPS_PER_EPOCH
        if kind == "alone":  # the same number of steps as epochs over the labelled images
            recipe = dataclasses.replace(recipe, epochs=steps // (len(labelled) // recipe.batch_size))
            suffix = "_long"
        else:
            labelled = transfer_set(data)
            recipe = dataclasses.replace(recipe, epochs=TRANSFER_EPOCHS, max_steps_per_epoch=TRANSFER_STEPS_PER_EPOCH)
            suffix = "_transfer"
    train_set, cfg = shrink_for_fast(labelled, recipe, fast)
    objective, name = None, "10_student_alone" + suffix
    if kind != "alone":
        if teacher_model is None:
            teacher_model = distill_teacher(data, teacher, fast)
        objective = make_objective(teacher_model, student_distill_config(kind), cache_teacher=True)
        name = f"10_student_{kind}_{teacher}" + suffix
    kwargs.setdefault("tensorboard", False)
    kwargs.setdefault("progress", False)
    return train_or_load(name, student_config(token=kind == "token"), train_set, data.val, cfg,
                         runs_dir=notebook_runs_dir(fast), objective=objective, **kwargs)

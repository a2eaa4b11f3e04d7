"""Notebook 10: the students, their teachers (notebook 03's models) and the transfer set.

Runs (in ``runs/``, or ``runs/fast/`` in FAST mode), one per seed of STUDENT_SEEDS:

- ``10_student_alone_s<seed>``: the student on its STUDENT_IMAGES labelled images, cross-entropy only;
- ``10_student_<kind>_<teacher>_s<seed>``: the same, distilled (kind soft, hard or token; teacher vit or cnn);
- ``10_student_alone_long_s<seed>``, ``10_student_<kind>_<teacher>_transfer_s<seed>``: the longer budget, alone on
  the labelled images or distilled over the transfer set;
- ``..._T<t>_s<seed>``: a soft student at a temperature other than TEMPERATURE (notebook 10's exercise).
"""

from __future__ import annotations

import dataclasses

import torch

from ..methods.distillation import DistillConfig, distillation_objective
from ..models import deit_config, vit_mini_mnist
from ..training.recipes import RECIPES
from ..training.runs import train_or_load
from .common import cnn_baseline_run, default_vit_run, notebook_runs_dir, shrink_for_fast
from .seeds import SEEDS

STUDENT_IMAGES = 5000  # the students learn from this many labelled training images (the teachers saw all 55,000)
STUDENT_EPOCHS = 60  # passes over them, the same for every student (FAST: FAST_EPOCHS on fewer images)
STUDENT_TEACHERS = ("vit", "cnn")  # notebook 03's ViT (run vit_default) and CNN (run cnn_baseline)
STUDENT_KINDS = ("alone", "soft", "hard", "token")  # no teacher, Hinton's soft targets, DeiT's hard labels, DeiT's token
STUDENT_SEEDS = SEEDS  # every student is trained once per seed: initialisation, order and augmentation
# Fixed before any run, not tuned: alpha = 1/2 as DeiT; T = 4, a moderate temperature of the kind Hinton et al.
# report working best when the student is small.
ALPHA, TEMPERATURE = 0.5, 4.0
# With a transfer set (all 55,000 training images, labels kept on the students' 5,000 only) every student takes the
# same number of optimizer steps: TRANSFER_EPOCHS x TRANSFER_STEPS_PER_EPOCH = 2,280, as many as 120 epochs of the
# 5,000 labelled images in batches of 256.
TRANSFER_EPOCHS = 12
TRANSFER_STEPS_PER_EPOCH = 190


def student_config(token: bool = False):
    """Notebook 10's student: notebook 03's model (vit_mini_mnist) at half its width and half its depth: 7x7
    patches, D=32, 2 blocks of 2 heads of 16 (19,658 parameters, 14% of the ViT teacher's 139,018); with `token`,
    its DeiT twin (one more token, its position and a second head)."""
    cfg = vit_mini_mnist(dim=32, depth=2, heads=2)
    return deit_config(cfg) if token else cfg


def student_distill_config(kind: str, temperature: float = TEMPERATURE):
    """The distillation settings of notebook 10: alpha = ALPHA everywhere (the labels and the teacher weigh the
    same, as in DeiT), `temperature` for the soft loss, the distillation token learns the teacher's hard labels."""
    return DistillConfig(kind=kind, alpha=ALPHA, temperature=temperature, token_loss="hard",
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
                seed: int = 0, temperature: float = TEMPERATURE, **kwargs):
    """Notebook 10's students, all with the default recipe's training at the same budget: STUDENT_EPOCHS passes over
    the same STUDENT_IMAGES labelled images (a seeded subset of the training set), `seed` drawing the initialisation,
    the order and the augmentation.

    kind "alone": cross-entropy only (run ``10_student_alone_s<seed>``); "soft", "hard", "token": distilled from
    `teacher` (run ``10_student_<kind>_<teacher>_s<seed>``), with `student_distill_config(kind, temperature)` (a
    soft student at another temperature than TEMPERATURE adds ``_T<temperature>`` to the name). `teacher_model`
    skips loading the teacher again when the caller already holds it. The teacher's outputs are cached, so the
    students after the first one with a given teacher and seed do not pay for its forward passes again.

    `transfer`: the longer budget of TRANSFER_EPOCHS x TRANSFER_STEPS_PER_EPOCH steps, on `transfer_set(data)` for a
    distilled student (the teacher's term covers every image, the labels' term the labelled ones: run
    ``10_student_<kind>_<teacher>_transfer_s<seed>``), on the labelled images alone for kind "alone", since without a
    teacher an unlabelled image teaches nothing (run ``10_student_alone_long_s<seed>``).
    """
    if kind not in STUDENT_KINDS:
        raise ValueError(f"kind must be one of {STUDENT_KINDS}, got {kind!r}")
    recipe = dataclasses.replace(RECIPES["default"].train, epochs=STUDENT_EPOCHS, seed=seed)
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
        objective = distillation_objective(teacher_model, student_distill_config(kind, temperature), cache_teacher=True)
        name = f"10_student_{kind}_{teacher}" + suffix
        if kind == "soft" and temperature != TEMPERATURE:
            name += f"_T{temperature:g}"
    kwargs.setdefault("tensorboard", False)
    kwargs.setdefault("progress", False)
    return train_or_load(name + f"_s{seed}", student_config(token=kind == "token"), train_set, data.val, cfg,
                         runs_dir=notebook_runs_dir(fast), objective=objective, **kwargs)

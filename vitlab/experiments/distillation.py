"""Notebook 10: the students, their teachers (notebook 03's models) and the transfer set.

Runs, one per seed of STUDENT_SEEDS:

- ``10_student_alone_s<seed>``: the student on its STUDENT_IMAGES labelled images, cross-entropy only;
- ``10_student_<kind>_<teacher>_s<seed>``: the same, distilled (kind soft, hard or token; teacher vit or cnn);
- ``10_student_alone_long_s<seed>``, ``10_student_<kind>_<teacher>_transfer_s<seed>``: the longer budget, alone on
  the labelled images or distilled over the transfer set;
- ``..._T<t>_s<seed>``: a soft student at a temperature other than TEMPERATURE (notebook 10's exercise).
"""

from __future__ import annotations

import dataclasses

from ..methods.distillation import DistillConfig
from ..models import deit_config, vit_mini_mnist
from ..training.recipes import RECIPES
from ..training.spec import DataSpec, Part, RunSpec
from .common import CNN_BASELINE, FAST_PLAN, SEEDS, VIT_DEFAULT

STUDENT_IMAGES = 5000  # the students learn from this many labelled training images (the teachers saw all 55,000)
STUDENT_EPOCHS = 60  # passes over them, the same for every student
TEACHERS = {"vit": VIT_DEFAULT, "cnn": CNN_BASELINE}  # notebook 03's ViT and CNN
STUDENT_TEACHERS = tuple(TEACHERS)
STUDENT_KINDS = ("alone", "soft", "hard", "token")  # no teacher, Hinton's soft targets, DeiT's hard labels, DeiT's token
STUDENT_SEEDS = SEEDS  # every student is trained once per seed: initialisation, order and augmentation
# Fixed before any run, not tuned: alpha = 1/2 as DeiT; T = 4, a moderate temperature of the kind Hinton et al.
# report working best when the student is small.
ALPHA, TEMPERATURE = 0.5, 4.0
# With a transfer set (all 55,000 training images, labels kept on the students' 5,000 only) every student takes the
# same number of optimizer steps: TRANSFER_EPOCHS x TRANSFER_STEPS_PER_EPOCH = 2,280, as many as 120 epochs of the
# 5,000 labelled images in batches of 256.
# (label, kind, teacher): the students of notebook 10, fixed before any run
STUDENT_SETUPS = (("student alone", "alone", None), ("soft, ViT teacher", "soft", "vit"),
                  ("hard, ViT teacher", "hard", "vit"), ("token, ViT teacher", "token", "vit"),
                  ("hard, CNN teacher", "hard", "cnn"), ("token, CNN teacher", "token", "cnn"))
# (label, kind, teacher, the student of STUDENT_SETUPS with the same loss): the longer budget
TRANSFER_SETUPS = (("student alone, 2,280 steps", "alone", None, "student alone"),
                   ("soft, ViT teacher, transfer set", "soft", "vit", "soft, ViT teacher"),
                   ("hard, ViT teacher, transfer set", "hard", "vit", "hard, ViT teacher"))
TRANSFER_EPOCHS = 12
TRANSFER_STEPS_PER_EPOCH = 190


def student_config(token: bool = False):
    """Notebook 10's student: notebook 03's model (vit_mini_mnist) at half its width and half its depth: 7x7
    patches, D=32, 2 blocks of 2 heads of 16; with `token`, its DeiT twin (one more token, its position and a
    second head)."""
    cfg = vit_mini_mnist(dim=32, depth=2, heads=2)
    return deit_config(cfg) if token else cfg


def student_distill_config(kind: str, temperature: float = TEMPERATURE) -> DistillConfig:
    """The distillation settings of notebook 10: alpha = ALPHA everywhere (the labels and the teacher weigh the
    same, as in DeiT), `temperature` for the soft loss, the distillation token learns the teacher's hard labels."""
    return DistillConfig(kind=kind, alpha=ALPHA, temperature=temperature, token_loss="hard",
                         label_smoothing=RECIPES["default"].train.label_smoothing)


def student_spec(kind: str, teacher: str = "vit", transfer: bool = False, seed: int = 0,
                 temperature: float = TEMPERATURE) -> RunSpec:
    """Notebook 10's students, all with the default recipe's training at the same budget: STUDENT_EPOCHS passes over
    the same STUDENT_IMAGES labelled images (a seeded subset of the training set), `seed` drawing the initialisation,
    the order and the augmentation.

    kind "alone": cross-entropy only; "soft", "hard", "token": distilled from `teacher` with
    `student_distill_config(kind, temperature)`.

    `transfer`: the longer budget of TRANSFER_EPOCHS x TRANSFER_STEPS_PER_EPOCH steps, over the transfer set for a
    distilled student (the teacher's term covers every image, the labels' term the labelled ones), on the labelled
    images alone for kind "alone", since without a teacher an unlabelled image teaches nothing.
    """
    if kind not in STUDENT_KINDS:
        raise ValueError(f"kind must be one of {STUDENT_KINDS}, got {kind!r}")
    if teacher not in TEACHERS:
        raise ValueError(f"teacher must be one of {STUDENT_TEACHERS}, got {teacher!r}")
    recipe = dataclasses.replace(RECIPES["default"].train, epochs=STUDENT_EPOCHS)
    data, suffix = DataSpec(train=(Part.of("take", n=STUDENT_IMAGES),)), ""
    if transfer:
        steps = TRANSFER_EPOCHS * TRANSFER_STEPS_PER_EPOCH
        if kind == "alone":  # the same number of steps as epochs over the labelled images
            recipe = dataclasses.replace(recipe, epochs=steps // (STUDENT_IMAGES // recipe.batch_size))
            suffix = "_long"
        else:
            data = DataSpec(train=(Part.of("transfer", labelled=STUDENT_IMAGES),))
            recipe = dataclasses.replace(recipe, epochs=TRANSFER_EPOCHS, max_steps_per_epoch=TRANSFER_STEPS_PER_EPOCH)
            suffix = "_transfer"
    objective, name = None, "10_student_alone" + suffix
    if kind != "alone":
        objective = Part.of("distill", teacher=TEACHERS[teacher],
                            **student_distill_config(kind, temperature).to_dict())
        name = f"10_student_{kind}_{teacher}" + suffix
        if kind == "soft" and temperature != TEMPERATURE:
            name += f"_T{temperature:g}"
    return RunSpec(name, student_config(token=kind == "token"), recipe, data, objective=objective,
                   fast=FAST_PLAN).seeded(seed)

"""Knowledge distillation: a small student learns from a trained teacher as well as from the labels.

Three ways of learning from the teacher, all as training `Objective`s (see `vitlab.training.objectives`):

- **soft** (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network"): match the
  teacher's probabilities softened by a temperature T,

      L = (1 - alpha) * CE(s, y) + alpha * T^2 * KL( softmax(t / T) || softmax(s / T) )

  The soft targets carry the teacher's "dark knowledge" (this 7 looks a bit like a 1). Their gradient
  scales as 1/T^2, so the T^2 factor keeps the two terms comparable when T changes.
- **hard** (Touvron et al. 2021, "Training data-efficient image transformers", DeiT): use the teacher's
  decision as a second label, L = (1 - alpha) * CE(s, y) + alpha * CE(s, argmax t). No temperature to tune,
  and the teacher's label follows the augmented image (a crop that lost the digit's tail gets the label of
  what is left), which a fixed dataset label cannot.
- **token** (DeiT's distillation token): a `DeiT` carries a second learned token beside CLS, with
  its own head. The CLS head learns from the labels, the distillation head from the teacher (hard or soft);
  both tokens attend to the same patches through the same blocks. At inference the two heads' logits are
  averaged.

Every objective's labels term skips images labelled `UNLABELLED` (see `vitlab.data.ImageSet.hide_labels`), while
the teacher's term covers all of them: so the student can learn on a *transfer set* (Hinton et al.: it "could
consist entirely of unlabeled data") of many images of which only some carry labels.

Shapes: B = batch, K = classes, D = width, N = patches; a DeiT's tokens are (B, 2 + N, D):
[CLS, DIST, patches].
"""

from __future__ import annotations

import dataclasses
import hashlib
import weakref
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import DictConfig
from ..training.objectives import Objective, labelled_cross_entropy

DISTILL_KINDS = ("soft", "hard", "token")


def soft_distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)), averaged over the batch: (B, K), (B, K) -> scalar.

    `F.kl_div` takes the student's *log*-probabilities and the teacher's probabilities; "batchmean"
    divides the sum by B, which is the mathematical KL per example ("mean" would also divide by K).
    """
    T = temperature
    log_p_student = F.log_softmax(student_logits / T, dim=1)  # (B, K)
    p_teacher = F.softmax(teacher_logits / T, dim=1)  # (B, K), the soft targets
    return F.kl_div(log_p_student, p_teacher, reduction="batchmean") * T * T


def hard_distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy to the teacher's decision: CE(s, argmax t): (B, K), (B, K) -> scalar."""
    return F.cross_entropy(student_logits, teacher_logits.argmax(dim=1))


@dataclass
class DistillConfig(DictConfig):
    kind: str = "soft"  # "soft" (Hinton's KL on softened probabilities), "hard" (CE to the teacher's argmax) or "token" (DeiT's distillation token)
    alpha: float = 0.5  # weight of the teacher's term; the labels' cross-entropy gets 1 - alpha (0 = no teacher)
    temperature: float = 4.0  # T that softens both distributions in the soft loss; unused by hard losses
    token_loss: str = "hard"  # what the distillation token learns from the teacher: "hard" (DeiT's choice) or "soft"
    label_smoothing: float = 0.1  # label smoothing of the labels' cross-entropy (the recipe's value); teacher terms use none

    def __post_init__(self):
        if self.kind not in DISTILL_KINDS:
            raise ValueError(f"distillation kind must be one of {DISTILL_KINDS}, got {self.kind!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha weighs the teacher's term against the labels and must be in [0, 1], got {self.alpha}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 (it divides the logits), got {self.temperature}")
        if self.token_loss not in ("hard", "soft"):
            raise ValueError(f"token_loss must be 'hard' or 'soft', got {self.token_loss!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


def num_classes_of(model: nn.Module) -> Optional[int]:
    """The size of a model's classification head, from its config when it has one (ViT, CNN)."""
    cfg = getattr(model, "cfg", None)
    return getattr(cfg, "num_classes", None)


# teacher -> {(batch shape, digest of the batch's bytes): logits}; dropped with the teacher
_TEACHER_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def clear_teacher_cache() -> None:
    """Forget every cached teacher output (see `Distillation(cache_teacher=True)`)."""
    _TEACHER_CACHE.clear()


class Distillation(Objective):
    """Base class: holds a frozen teacher in eval mode and mixes a teacher term with the labels' cross-entropy.

    The teacher's weights are frozen (requires_grad False) and its forward runs under no_grad, so no
    gradient ever reaches it and no graph is built for it; it is put in eval mode at every call, because a
    Trainer (or the user) may have switched it back to train mode, and dropout or batch-norm statistics in
    train mode would make its targets noisy or even change it.
    """

    kind = "?"

    def __init__(self, teacher: nn.Module, config: Optional[DistillConfig] = None, cache_teacher: bool = False,
                 **overrides):
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"teacher must be a torch.nn.Module, got {type(teacher).__name__}")
        cfg = config if config is not None else DistillConfig(kind=self.kind, **overrides)
        if config is not None and overrides:
            cfg = dataclasses.replace(cfg, **overrides)
        if cfg.kind != self.kind:
            raise ValueError(f"{type(self).__name__} needs DistillConfig(kind={self.kind!r}), got kind={cfg.kind!r}")
        self.config = cfg
        self.teacher = teacher.eval()
        self.teacher.requires_grad_(False)
        self.teacher_classes = num_classes_of(teacher)
        self.cache_teacher = cache_teacher

    # ---- helpers for subclasses

    @torch.no_grad()
    def teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen teacher's logits for the (augmented) batch the student sees: (B, C, H, W) -> (B, K).

        With `cache_teacher`, logits are remembered by the batch's bytes, shared by every objective holding
        the same teacher: students trained with the same recipe and seed see exactly the same augmented
        batches (the Trainer seeds them from (seed, epoch)), so only the first one pays for the teacher.
        """
        self.teacher.eval()
        dev = next(self.teacher.parameters()).device
        if dev != x.device:
            self.teacher.to(x.device)
        if not self.cache_teacher:
            return self.teacher(x).float()
        cache = _TEACHER_CACHE.setdefault(self.teacher, {})
        key = (tuple(x.shape), hashlib.blake2b(x.detach().cpu().contiguous().numpy().tobytes(), digest_size=16).digest())
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = self.teacher(x).float().cpu()  # (B, K): 40 bytes an image
        return hit.to(x.device)

    def check_classes(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
        if student_logits.shape[1] != teacher_logits.shape[1]:
            raise ValueError(
                f"the teacher predicts {teacher_logits.shape[1]} classes but the student {student_logits.shape[1]}: "
                f"distillation needs the same classes in the same order"
            )

    def check_student(self, model: nn.Module) -> None:
        """Fail before training when the student cannot learn from this teacher (different class count)."""
        k = num_classes_of(model)
        if k is not None and self.teacher_classes is not None and k != self.teacher_classes:
            raise ValueError(
                f"the teacher predicts {self.teacher_classes} classes but the student {k}: "
                f"distillation needs the same classes in the same order"
            )

    def labels_term(self, student_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The labels' cross-entropy, summed over the labelled images and divided by the whole batch size.

        On a transfer set most images are unlabelled. Averaged over the labelled ones alone, the few labelled
        images of each batch would weigh as much as all the teacher's answers, and the student would overfit them.
        With every image
        in the mean, a labelled image gets (1 - alpha) CE + alpha teacher and an unlabelled one alpha teacher. A
        fully labelled batch gives exactly the mean cross-entropy.
        """
        return labelled_cross_entropy(student_logits, y, self.config.label_smoothing, over="batch")

    def teacher_term(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, how: str) -> torch.Tensor:
        if how == "soft":
            return soft_distillation_loss(student_logits, teacher_logits, self.config.temperature)
        return hard_distillation_loss(student_logits, teacher_logits)

    def to_dict(self) -> dict:
        # The hyper-parameters and what kind of teacher, never its weights: a run records this, and asking
        # for a finished run with another objective is refused.
        n = sum(p.numel() for p in self.teacher.parameters())
        return {"name": type(self).__name__, **self.config.to_dict(),
                "teacher": {"type": type(self.teacher).__name__, "parameters": n, "num_classes": self.teacher_classes}}


class SoftDistillation(Distillation):
    """Hinton et al. 2015: (1 - alpha) * CE(s, y) + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))."""

    kind = "soft"

    def __call__(self, model, x, y):
        s = model(x)  # (B, K) student logits
        t = self.teacher_logits(x)  # (B, K) teacher logits, no graph
        self.check_classes(s, t)
        a = self.config.alpha
        ce = self.labels_term(s, y)
        return (1 - a) * ce + a * self.teacher_term(s, t, "soft"), s


class HardDistillation(Distillation):
    """DeiT's hard-label distillation: (1 - alpha) * CE(s, y) + alpha * CE(s, argmax t); DeiT uses alpha = 1/2."""

    kind = "hard"

    def __call__(self, model, x, y):
        s = model(x)  # (B, K)
        t = self.teacher_logits(x)  # (B, K)
        self.check_classes(s, t)
        a = self.config.alpha
        ce = self.labels_term(s, y)
        return (1 - a) * ce + a * self.teacher_term(s, t, "hard"), s


class TokenDistillation(Distillation):
    """DeiT's distillation token: (1 - alpha) * CE(cls head, y) + alpha * L_teacher(dist head, t).

    The student must have a distillation head (`forward_heads`, e.g. a `DeiT`). The returned logits
    are the two heads' mean, which is what the model predicts at inference.
    """

    kind = "token"

    def check_student(self, model: nn.Module) -> None:
        if not callable(getattr(model, "forward_heads", None)):
            raise TypeError(
                f"token distillation needs a student with a distillation head (forward_heads), such as DeiT; "
                f"a {type(model).__name__} has none: use soft or hard distillation, or build a DeiT"
            )
        super().check_student(model)

    def __call__(self, model, x, y):
        self.check_student(model)
        cls_logits, dist_logits = model.forward_heads(model.forward_features(x))  # (B, K) each
        t = self.teacher_logits(x)  # (B, K)
        self.check_classes(cls_logits, t)
        a = self.config.alpha
        ce = self.labels_term(cls_logits, y)
        loss = (1 - a) * ce + a * self.teacher_term(dist_logits, t, self.config.token_loss)
        return loss, (cls_logits + dist_logits) / 2


OBJECTIVES = {"soft": SoftDistillation, "hard": HardDistillation, "token": TokenDistillation}


def distillation_objective(teacher: nn.Module, config: DistillConfig, cache_teacher: bool = False) -> Distillation:
    """The objective for `config.kind`, holding `teacher` frozen (see `Distillation` for `cache_teacher`)."""
    return OBJECTIVES[config.kind](teacher, config, cache_teacher=cache_teacher)


def gap_recovered(student_alone_errors: float, distilled_errors: float, teacher_errors: float) -> float:
    """Which fraction of the student-alone -> teacher gap a distilled student closes (1 = as good as the teacher).

    Counted in test errors: (alone - distilled) / (alone - teacher). Undefined (nan) when the student alone is
    already as good as the teacher.
    """
    gap = student_alone_errors - teacher_errors
    if gap <= 0:
        return float("nan")
    return (student_alone_errors - distilled_errors) / gap

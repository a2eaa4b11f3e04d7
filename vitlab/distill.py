"""Knowledge distillation: a small student learns from a trained teacher as well as from the labels.

Three ways of learning from the teacher, all as training `Objective`s (see `vitlab.train`):

- **soft** (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network"): match the
  teacher's probabilities softened by a temperature T,

      L = (1 - alpha) * CE(s, y) + alpha * T^2 * KL( softmax(t / T) || softmax(s / T) )

  The soft targets carry the teacher's "dark knowledge" (this 7 looks a bit like a 1). Their gradient
  scales as 1/T^2, so the T^2 factor keeps the two terms comparable when T changes.
- **hard** (Touvron et al. 2021, "Training data-efficient image transformers", DeiT): use the teacher's
  decision as a second label, L = (1 - alpha) * CE(s, y) + alpha * CE(s, argmax t). No temperature to tune,
  and the teacher's label follows the augmented image (a crop that lost the digit's tail gets the label of
  what is left), which a fixed dataset label cannot.
- **token** (DeiT's distillation token): a `DistilledViT` carries a second learned token beside CLS, with
  its own head. The CLS head learns from the labels, the distillation head from the teacher (hard or soft);
  both tokens attend to the same patches through the same blocks. At inference the two heads' logits are
  averaged.

Every objective's labels term skips images labelled `UNLABELLED` (see `vitlab.data.ImageSet.hide_labels`), while
the teacher's term covers all of them: so the student can learn on a *transfer set* (Hinton et al.: it "could
consist entirely of unlabeled data") of many images of which only some carry labels.

Shapes: B = batch, K = classes, D = width, N = patches; a DistilledViT's tokens are (B, 2 + N, D):
[CLS, DIST, patches].
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import register_model_type
from .config import DictConfig
from .model import ViT, ViTConfig
from .train import Objective, labelled_cross_entropy

DISTILL_KINDS = ("soft", "hard", "token")


# --------------------------------------------------------------------------- the losses, as plain functions


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


# --------------------------------------------------------------------------- DeiT's distilled ViT


@dataclass
class DistilledViTConfig(ViTConfig):
    """A ViTConfig for `DistilledViT`; the same fields, its own type so checkpoints know which model to build."""

    def __post_init__(self):
        super().__post_init__()
        if self.pool != "cls":
            # The two heads read their own tokens; mean pooling would give both heads the same input.
            raise ValueError(f"DistilledViT reads the CLS and distillation tokens, so pool must be 'cls', got {self.pool!r}")


class DistilledViT(ViT):
    """DeiT's ViT with a distillation token (Touvron et al. 2021, section 4).

    Tokens entering the blocks: [CLS, DIST, patch_1 .. patch_N] + positions, (B, 2 + N, D).
    `forward_heads(tokens)` -> (cls_logits, dist_logits), each (B, K): the CLS head is trained on the
    labels, the distillation head on the teacher. `forward(x)` averages them, which is how DeiT predicts.
    """

    num_prefix_tokens = 2  # CLS and DIST before the patches

    def __init__(self, cfg: DistilledViTConfig):
        if not isinstance(cfg, DistilledViTConfig):
            cfg = DistilledViTConfig(**cfg.to_dict())
        super().__init__(cfg)
        self.dist_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))  # (1, 1, D)
        # Its own position, next to the base class's (1, 1 + N, D) table, which stays untouched so that the
        # inherited `embed_patches` and `cls_tokens` keep working. Fixed sin-cos tables give CLS a zero
        # position; the distillation token gets none either.
        self.dist_pos_embed = nn.Parameter(torch.zeros(1, 1, cfg.dim)) if cfg.pos_embed == "learned" else None
        self.head_dist = nn.Linear(cfg.dim, cfg.num_classes)
        nn.init.trunc_normal_(self.dist_token, std=0.02)
        if self.dist_pos_embed is not None:
            nn.init.trunc_normal_(self.dist_pos_embed, std=0.02)
        self._init_weights(self.head_dist)

    def no_weight_decay(self) -> set:
        return super().no_weight_decay() | {"dist_token", "dist_pos_embed"}

    def dist_tokens(self, batch_size: int) -> torch.Tensor:
        """The distillation token with its position, once per image: (B, 1, D)."""
        tok = self.dist_token if self.dist_pos_embed is None else self.dist_token + self.dist_pos_embed
        return tok.expand(batch_size, -1, -1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 2 + N, D): [CLS, DIST, patches], each with its position."""
        patches = self.embed_patches(x)  # (B, N, D)
        B = patches.shape[0]
        return self.pos_drop(torch.cat([self.cls_tokens(B), self.dist_tokens(B), patches], dim=1))

    def forward_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Final-normed tokens (B, 2 + N, D) -> (CLS head logits, distillation head logits), each (B, K)."""
        return self.head(x[:, 0]), self.head_dist(x[:, 1])

    def forward_pool(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of the CLS and distillation tokens, as timm does: (B, 2 + N, D) -> (B, D)."""
        return (x[:, 0] + x[:, 1]) / 2

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The mean of the two heads' logits (B, K); with pre_logits, the pooled tokens (B, D)."""
        if pre_logits:
            return self.forward_pool(x)
        cls_logits, dist_logits = self.forward_heads(x)
        return (cls_logits + dist_logits) / 2


register_model_type("deit", DistilledViTConfig, DistilledViT)


def distilled_config(cfg: ViTConfig) -> DistilledViTConfig:
    """The DistilledViT twin of a ViT config: same fields, DistilledViTConfig type."""
    return DistilledViTConfig(**cfg.to_dict())


# --------------------------------------------------------------------------- objectives


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
            import dataclasses

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
        images of each batch would weigh as much as all the teacher's answers, and the student would overfit them
        (notebook 10: 250 / 293 test errors with hard / soft targets, against 156 / 176 this way). With every image
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

    The student must have a distillation head (`forward_heads`, e.g. a `DistilledViT`). The returned logits
    are the two heads' mean, which is what the model predicts at inference.
    """

    kind = "token"

    def check_student(self, model: nn.Module) -> None:
        if not callable(getattr(model, "forward_heads", None)):
            raise TypeError(
                f"token distillation needs a student with a distillation head (forward_heads), such as DistilledViT; "
                f"a {type(model).__name__} has none: use soft or hard distillation, or build a DistilledViT"
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


def make_objective(teacher: nn.Module, config: DistillConfig, cache_teacher: bool = False) -> Distillation:
    """The objective for `config.kind`, holding `teacher` frozen (see `Distillation` for `cache_teacher`)."""
    return OBJECTIVES[config.kind](teacher, config, cache_teacher=cache_teacher)


# --------------------------------------------------------------------------- what a student costs at inference


@torch.no_grad()
def measure_latency(model: nn.Module, image_size: int = 28, channels: int = 1, batch_size: int = 1,
                    repeats: int = 200, warmup: int = 20, threads: Optional[int] = None) -> dict:
    """CPU forward-pass timing on random input, in eval mode.

    Returns {"latency_ms": median ms per call at `batch_size`, "images_per_s": batch_size / median,
    "iqr_ms": interquartile range of the calls}. The median of many calls resists the hiccups of a shared
    machine; `threads` pins torch's intra-op threads for the measurement (restored afterwards).
    """
    import statistics
    import time

    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    x = torch.randn(batch_size, channels, image_size, image_size, device=dev)
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old_threads)
        model.train(was_training)
    times.sort()
    med = statistics.median(times)
    q1, q3 = times[len(times) // 4], times[(3 * len(times)) // 4]
    return {"latency_ms": 1000 * med, "images_per_s": batch_size / med, "iqr_ms": 1000 * (q3 - q1)}


def gap_recovered(student_alone_errors: float, distilled_errors: float, teacher_errors: float) -> float:
    """Which fraction of the student-alone -> teacher gap a distilled student closes (1 = as good as the teacher).

    Counted in test errors: (alone - distilled) / (alone - teacher). Undefined (nan) when the student alone is
    already as good as the teacher.
    """
    gap = student_alone_errors - teacher_errors
    if gap <= 0:
        return float("nan")
    return (student_alone_errors - distilled_errors) / gap

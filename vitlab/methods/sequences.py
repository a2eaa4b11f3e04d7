"""Sequences of MNIST digits: sample the sum and anchor tasks, embed the items, train and evaluate the set models.

Sequences hold indices into an ImageSet, drawn at random without replacement within a sequence (never windows of
consecutive images, except `windows=True` which reproduces the published flaw), padded with -1. Items are
embedded either by looking up a table of precomputed features (a frozen encoder: cheap) or by running an image
encoder inside the training step (trained end to end).

    train = sum_sequences(data.train, 20000, seed=0)                         # SequenceSet
    table = FeatureTable.of(vit, data.train)                                 # frozen per-digit embeddings
    model = SeqModel(SumSetModel(SetConfig(kind="deepsets")), table)
    hist = fit_sequences(model, train, SeqTrainConfig(epochs=5))
    acc = sum_accuracy(model, test)                                          # {"exact": ..., "by_length": {L: ...}}
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import DictConfig
from ..data import ImageSet
from ..models.sets import AnchorSetModel
from ..training.checkpoints import atomic_save
from ..training.inference import map_batches


@dataclass
class SequenceSet:
    """Sequences of image indices into `images`, -1 for padding, with the sum and anchor targets."""

    images: ImageSet  # where the indices point
    items: torch.Tensor  # (S, L) long, -1 = padding
    sums: torch.Tensor  # (S,) long, the sum of the digits
    anchor: Optional[torch.Tensor] = None  # (S,) long, the anchor image's index (anchor task)
    target: Optional[torch.Tensor] = None  # (S,) float, 1 when the anchor's class occurs in the sequence

    def __len__(self) -> int:
        return len(self.items)

    @property
    def mask(self) -> torch.Tensor:
        return self.items >= 0  # (S, L) True = real item

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(1)

    def subset(self, idx) -> SequenceSet:
        idx = torch.as_tensor(idx, dtype=torch.long)
        pick = (lambda t: None if t is None else t[idx])
        return replace(self, items=self.items[idx], sums=self.sums[idx], anchor=pick(self.anchor), target=pick(self.target))


def _lengths(n: int, min_len: int, max_len: int, rng) -> np.ndarray:
    if not 1 <= min_len <= max_len:
        raise ValueError(f"lengths must satisfy 1 <= min_len <= max_len, got {min_len}..{max_len}")
    return rng.integers(min_len, max_len + 1, size=n)


def sum_sequences(images: ImageSet, n: int, min_len: int = 1, max_len: int = 10, seed: int = 0,
                  windows: bool = False) -> SequenceSet:
    """`n` sequences of uniformly random lengths min_len..max_len, each of distinct images drawn at random from
    `images` (seeded). `windows=True` is the published flaw: image s, s+1, ... for a random start s."""
    if max_len > len(images):
        raise ValueError(f"max_len {max_len} is more than the {len(images)} images to draw from")
    rng = np.random.default_rng(seed)
    lens = _lengths(n, min_len, max_len, rng)
    if windows:
        start = rng.integers(0, len(images) - max_len + 1, size=n)[:, None]
        idx = start + np.arange(max_len)[None]  # (n, max_len): consecutive, overlapping between sequences
    else:
        idx = rng.integers(0, len(images), size=(n, max_len))
        while True:  # draw again the rows that hold an image twice, until every row's images are distinct
            s = np.sort(idx, axis=1)
            dup = (s[:, 1:] == s[:, :-1]).any(1)
            if not dup.any():
                break
            idx[dup] = rng.integers(0, len(images), size=(int(dup.sum()), max_len))
    items = torch.as_tensor(idx, dtype=torch.long)
    items[torch.arange(max_len)[None] >= torch.as_tensor(lens)[:, None]] = -1
    labels = images.labels
    sums = torch.where(items >= 0, labels[items.clamp_min(0)], 0).sum(1)
    return SequenceSet(images, items, sums)


def anchor_sequences(images: ImageSet, n: int, min_len: int = 1, max_len: int = 10, seed: int = 0) -> SequenceSet:
    """The anchor task, classes balanced: half the sequences hold the anchor's digit, half do not.

    The anchor is a further image, never one of the sequence's own; for a negative its class is drawn from the
    classes absent from the sequence (a sequence holding all ten is drawn again).
    """
    rng = np.random.default_rng(seed)
    labels = images.labels.numpy()
    by_class = [np.nonzero(labels == c)[0] for c in range(10)]
    want = rng.permutation(np.arange(n) % 2)  # exactly balanced (n even), in random order
    base = sum_sequences(images, n, min_len, max_len, seed + 7919)
    items = base.items.numpy().copy()
    anchors = np.empty(n, dtype=np.int64)
    for s in range(n):
        while True:
            real = items[s][items[s] >= 0]
            present = np.unique(labels[real])
            pool = present if want[s] else np.setdiff1d(np.arange(10), present)
            if len(pool):
                break
            items[s, : len(real)] = rng.choice(len(images), len(real), replace=False)
        c = rng.choice(pool)
        while True:
            a = rng.choice(by_class[c])
            if a not in real:
                break
        anchors[s] = a
    items = torch.as_tensor(items)
    sums = torch.where(items >= 0, images.labels[items.clamp_min(0)], 0).sum(1)
    return SequenceSet(images, items, sums, torch.as_tensor(anchors), torch.as_tensor(want, dtype=torch.float32))


class FeatureTable(nn.Module):
    """Frozen per-image embeddings looked up by index: (N, E) features, plus optional extra rows (a blank image,
    horizontally flipped copies) for the published setting."""

    def __init__(self, features: torch.Tensor):
        super().__init__()
        self.register_buffer("features", torch.as_tensor(features, dtype=torch.float32), persistent=False)

    @property
    def embed_dim(self) -> int:
        return self.features.shape[1]

    def forward(self, idx: torch.Tensor, images: ImageSet) -> torch.Tensor:
        return self.features[idx]  # (n, E)


class EncoderItems(nn.Module):
    """Embed items by running an image encoder (a ViT or the CNN, trained along or frozen) on their images:
    its pre-logit features, `forward_head(forward_features(x), pre_logits=True)`."""

    def __init__(self, encoder: nn.Module, embed_dim: int, frozen: bool = False):
        super().__init__()
        self.encoder, self._embed_dim, self.frozen = encoder, embed_dim, frozen
        if frozen:
            self.encoder.requires_grad_(False)

    @property
    def embed_dim(self) -> int:
        return self._embed_dim

    def forward(self, idx: torch.Tensor, images: ImageSet) -> torch.Tensor:
        x, _ = images.tensors(idx.cpu())  # (n, 1, 28, 28) normalised
        if self.frozen:
            self.encoder.eval()
        return self.encoder.forward_head(self.encoder.forward_features(x), pre_logits=True)  # (n, E)


class SeqModel(nn.Module):
    """A set model with the embedder of its items: forward(batch) runs both on a batch of a SequenceSet."""

    def __init__(self, head: nn.Module, embedder: nn.Module):
        super().__init__()
        self.head, self.embedder = head, embedder

    def embed(self, seqs: SequenceSet, items: torch.Tensor, blank: Optional[int] = None):
        """(B, L) indices -> items (B, L, E) and mask (B, L). `blank`: the table row of a blank image, which fills
        the padding with every slot marked real (the published setting: zero images, no mask)."""
        mask = items >= 0
        if blank is not None:
            items, mask = torch.where(mask, items, blank), torch.ones_like(mask)
        emb = self.embedder(items[mask], seqs.images)  # (n, E), real items only
        out = emb.new_zeros(*items.shape, emb.shape[1])
        out[mask] = emb
        return out, mask

    def forward(self, seqs: SequenceSet, idx: torch.Tensor, blank: Optional[int] = None, flip: Optional[torch.Tensor] = None):
        items = seqs.items[idx]
        if flip is not None:  # published augmentation: the flipped copy of an image is `flip` rows further on
            items = torch.where((items >= 0) & (torch.rand(items.shape, generator=flip[1]) < 0.5), items + flip[0], items)
        x, mask = self.embed(seqs, items, blank)
        if isinstance(self.head, AnchorSetModel):
            a = self.embedder(seqs.anchor[idx], seqs.images)  # (B, E)
            return self.head(a, x, mask)
        return self.head(x, mask)


@dataclass
class SeqTrainConfig(DictConfig):
    epochs: int = 10  # passes over the training sequences
    batch_size: int = 128  # sequences per step
    lr: float = 1e-3  # peak learning rate (after warm-up)
    weight_decay: float = 0.01  # AdamW
    warmup_frac: float = 0.05  # linear warm-up over this fraction of the steps, then cosine to lr / 100
    grad_clip: float = 1.0  # global gradient-norm clip
    seed: int = 0  # model init and batch order
    published: bool = False  # the published flaws: zero-image padding with no mask, random horizontal flips


def sequence_loss(model: SeqModel, out, seqs: SequenceSet, idx: torch.Tensor) -> torch.Tensor:
    """The loss of a batch: binary cross-entropy for the anchor task; for the sum, MSE on the number (regression, as
    the published model), cross-entropy over the sums (class) or the negative log-probability of the true sum under
    the convolved digit distributions (digits)."""
    if isinstance(model.head, AnchorSetModel):
        return F.binary_cross_entropy_with_logits(out[0], seqs.target[idx])
    y, head = seqs.sums[idx], model.head.cfg.head
    if head == "regress":
        return F.mse_loss(out.out, y.float())
    return F.nll_loss(out.out, y) if head == "digits" else F.cross_entropy(out.out, y)


def fit_sequences(model: SeqModel, train: SequenceSet, cfg: SeqTrainConfig, blank: Optional[int] = None,
                  flip_offset: Optional[int] = None, verbose: bool = False) -> dict:
    """Train `model` on `train` (AdamW, warm-up + cosine, seeded as the Trainer is): returns the history
    {"loss": per step, "seconds": total}."""
    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(train) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    warm = max(1, int(cfg.warmup_frac * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else
                                              0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (s - warm) / max(total - warm, 1))))
    gen = torch.Generator().manual_seed(cfg.seed)
    flip = (flip_offset, gen) if cfg.published and flip_offset else None
    blank = blank if cfg.published else None
    hist, t0 = {"loss": []}, time.perf_counter()
    model.train()
    for e in range(cfg.epochs):
        order = torch.randperm(len(train), generator=gen)
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            loss = sequence_loss(model, model(train, idx, blank, flip), train, idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            hist["loss"].append(loss.item())
        if verbose:
            print(f"epoch {e + 1}/{cfg.epochs} loss {np.mean(hist['loss'][-steps_per_epoch:]):.4f}", flush=True)
    model.eval()
    hist["seconds"] = time.perf_counter() - t0
    return hist


@torch.no_grad()
def predict_sequences(model: SeqModel, seqs: SequenceSet, batch_size: int = 500, blank: Optional[int] = None):
    """Eval-mode outputs over every sequence: sum task -> (pred (S,) long, out); anchor -> (logit (S,), attention)."""
    model.eval()
    outs = [model(seqs, torch.arange(s, min(s + batch_size, len(seqs))), blank) for s in range(0, len(seqs), batch_size)]
    if isinstance(model.head, AnchorSetModel):
        w = [o[1] for o in outs]
        return torch.cat([o[0] for o in outs]), (None if w[0] is None else w)
    return torch.cat([o.pred for o in outs]), [o.out for o in outs]


def sum_accuracy(model: SeqModel, seqs: SequenceSet, blank: Optional[int] = None) -> dict:
    """Exact-sum accuracy (prediction == true sum), averaged over the lengths present (each length weighs the same),
    per length, and the mean squared error of the predicted sum."""
    pred, _ = predict_sequences(model, seqs, blank=blank)
    ok = (pred == seqs.sums).float()
    lens = seqs.lengths
    by_len = {int(n): float(ok[lens == n].mean()) for n in lens.unique()}
    return {"exact": float(np.mean(list(by_len.values()))), "by_length": by_len,
            "mse": float(((pred - seqs.sums).float() ** 2).mean())}


def anchor_accuracy(model: SeqModel, seqs: SequenceSet) -> dict:
    """Accuracy of "the anchor's digit occurs" (logit > 0), overall and per length, beside the majority baseline."""
    logit, _ = predict_sequences(model, seqs)
    ok = ((logit > 0).float() == seqs.target).float()
    lens = seqs.lengths
    return {"acc": float(ok.mean()), "by_length": {int(n): float(ok[lens == n].mean()) for n in lens.unique()},
            "majority": float(max(seqs.target.mean(), 1 - seqs.target.mean()))}


def image_features(encoder: nn.Module, images: ImageSet, flipped: bool = False, blank: bool = False) -> torch.Tensor:
    """(N, E) pre-logit features of every image, through `map_batches`; with `flipped`, the horizontally flipped
    images' features follow (rows N..2N-1); with `blank`, one last row for an all-zero image."""
    f = lambda m, x, y: m.forward_head(m.forward_features(x), pre_logits=True)
    parts = [map_batches(encoder, images, f)]
    if flipped:
        parts.append(map_batches(encoder, replace(images, images=images.images.flip(-1)), f))
    if blank:
        zero = replace(images, images=torch.zeros_like(images.images[:1]), labels=images.labels[:1])
        parts.append(map_batches(encoder, zero, f))
    return torch.cat(parts)


def fit_or_load(path, model: SeqModel, train: SequenceSet, cfg: SeqTrainConfig, setup: dict, **kw) -> dict:
    """Load the set model's weights from `path` when it was trained with this `setup` (a dict naming the model, the
    data and the recipe), else train it and save them there. Frozen feature tables are not saved."""
    path = Path(path)
    key = {**setup, "train": cfg.to_dict()}
    if path.exists():
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if ck["setup"] == repr(key):
            model.load_state_dict(ck["state"], strict=False)
            return ck["history"]
    hist = fit_sequences(model, train, cfg, **kw)
    atomic_save({"setup": repr(key), "state": model.state_dict(), "history": hist}, path)
    return hist

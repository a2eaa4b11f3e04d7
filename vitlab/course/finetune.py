"""Notebooks 07 and 08: two known digits plus "unknown", the fine-tuning runs that learn it, and the backbones they
start from: notebook 03's (trained on all ten digits, so the "unseen" digits leak in) and clean ones trained
without the digits that play unknown."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch

from ..data import ImageSet
from ..methods.openset import known_unknown_split
from ..methods.pretrained import backbone_from_checkpoint
from ..models import CNNConfig
from ..training.recipes import RECIPES
from ..training.runs import train_or_load
from .common import (CNN_BASELINE_EPOCHS, DEFAULT_FAST_EPOCHS, FAST_TRAIN_IMAGES, default_vit_run, notebook_runs_dir,
                     shrink_for_fast)


@dataclass
class OpenSetData:
    """MNIST split by digit for 'K known digits plus unknown' (labels 0..K-1 known, K = unknown)."""

    known: list  # the known digits, in label order
    unknown_train: list  # digits the explicit-unknown approach trains on as "unknown"
    unseen: list  # digits no model trains on
    train: ImageSet  # known training images
    val: ImageSet  # known validation images
    test: ImageSet  # known test images
    train_unknown: ImageSet  # `unknown_train` digits from the training split (digit labels)
    val_unknown: ImageSet
    test_unseen: ImageSet  # the unseen digits' test images (digit labels)

    @property
    def seen(self) -> list:
        """Every digit some model of the task may train on: the known ones and the unknown-train ones, sorted."""
        return sorted(self.known + self.unknown_train)

    def with_unknown(self, split: str = "train", seed: int = 1) -> ImageSet:
        """Known images plus as many `unknown_train` images (as many as there are known ones), relabelled K."""
        known = getattr(self, split)
        unknown = getattr(self, f"{split}_unknown").take(len(known), seed=seed)
        K = len(self.known)
        classes = list(known.info.classes) + ["unknown"]
        # The dataset's digits -> this task's labels: known digits 0..K-1, the unknown-train digits K, the rest left out.
        label_map = tuple(self.known.index(d) if d in self.known else K if d in self.unknown_train else -1
                          for d in range(len(known.info.label_map)))
        info = dataclasses.replace(known.info, classes=tuple(classes), label_map=label_map)
        return dataclasses.replace(known, images=torch.cat([known.images, unknown.images]),
                                   labels=torch.cat([known.labels, torch.full((len(unknown),), K)]), info=info,
                                   name=f"{known.name}+unknown")


def open_set_data(data, known: Sequence[int], unknown_train: Sequence[int], fast: bool = False,
                  fast_images: int = 1500) -> OpenSetData:
    """Split `data` (a DataSplits) for the known digits; with `fast`, at most `fast_images` training images each."""
    known, unknown_train = list(known), list(unknown_train)
    if set(known) & set(unknown_train):
        raise ValueError(f"a digit cannot be both known and unknown: {sorted(set(known) & set(unknown_train))}")
    unseen = [d for d in range(len(data.info.classes)) if d not in known + unknown_train]

    def split(s):
        k, rest = known_unknown_split(s, known)
        pick = lambda digits: rest.subset(torch.nonzero(torch.isin(rest.labels, torch.tensor(digits, dtype=torch.long))).flatten())  # noqa: E731
        return k, pick(unknown_train), pick(unseen)

    tr_k, tr_u, _ = split(data.train)
    va_k, va_u, _ = split(data.val)
    te_k, _, te_unseen = split(data.test)
    if fast:
        tr_k, tr_u = tr_k.take(fast_images), tr_u.take(fast_images)
    return OpenSetData(known, unknown_train, unseen, tr_k, va_k, te_k, tr_u, va_u, te_unseen)


def open_set_run(data, osd, approach: str, kind: str, fast: bool = False, backbone=None, tag: str = "", **kwargs):
    """Notebook 07's fine-tuning runs, reused by notebook 08. Starts from notebook 03's ViT (or `backbone`).

    approach "a": 3 outputs, trained on known + `osd.unknown_train` digits (explicit unknown class);
    approach "b": 2 outputs, trained on the known digits only (unknowns are rejected by a score threshold).
    kind "probe": only the new head learns; "finetune": every weight learns, at a quarter of the recipe's rate.
    The model is the backbone's architecture with a K+1 or K-way head. Run name
    ``07_<known digits>_<approach>_<kind>``, plus ``_<tag>`` for another backbone (e.g. tag="imagenet").
    """
    if approach not in ("a", "b") or kind not in ("probe", "finetune"):
        raise ValueError(f"approach must be 'a' or 'b' and kind 'probe' or 'finetune', got {approach!r}, {kind!r}")
    if backbone is None:
        backbone = backbone_from_checkpoint(default_vit_run(data, fast, verbose=False).checkpoint)
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


def clean_backbone_run(data, osd: OpenSetData, fast: bool = False, model: str = "vit", candidate: str | None = None,
                       **kwargs):
    """A backbone that never saw the unseen digits: notebook 03's recipe (model "vit": the default recipe's ViT,
    FAST-shrunk as notebook 03 shrinks it; "cnn": its CNN baseline) trained on `osd.seen` only, labels 0..5 in
    that order. Run ``07_<model>_without_<unseen digits>``, e.g. ``07_vit_without_4679``.

    candidate: a ViT trained as one of benchmarks/openset.py's candidates instead (a name in
    `openset_protocol.CANDIDATES`, e.g. "no-ls-long": 80 epochs without label smoothing), in run
    ``07_vit_without_4679_<candidate>``. FAST keeps the candidate's smoothing and stem but trains FAST's epochs."""
    if model not in ("vit", "cnn"):
        raise ValueError(f"model must be 'vit' or 'cnn', got {model!r}")
    c = None
    if candidate is not None:
        from ..methods.openset_protocol import CANDIDATES

        if candidate not in CANDIDATES:
            raise ValueError(f"unknown candidate {candidate!r}; choose from {', '.join(CANDIDATES)}")
        c = CANDIDATES[candidate]
        if c.model != model or c.outliers is not None:
            raise ValueError(f"candidate {candidate!r} is not a plain {model} backbone (model {c.model!r}, "
                             f"outliers {c.outliers!r})")
    train, _ = known_unknown_split(data.train, osd.seen)
    val, _ = known_unknown_split(data.val, osd.seen)
    r = RECIPES["default"]
    if model == "vit":
        tcfg = r.train if c is None else c.train_config(CNN_BASELINE_EPOCHS)
        train, cfg = shrink_for_fast(train, tcfg, fast, epochs=DEFAULT_FAST_EPOCHS)
        mcfg = (dataclasses.replace(r.model, num_classes=len(osd.seen)) if c is None
                else c.model_config(len(osd.seen)))
    else:
        train, cfg = shrink_for_fast(train, r.train, fast)
        cfg = dataclasses.replace(cfg, epochs=2 if fast else CNN_BASELINE_EPOCHS)
        mcfg = CNNConfig(num_classes=len(osd.seen))
    for k, v in (("tensorboard", False), ("progress", False), ("verbose", False)):
        kwargs.setdefault(k, v)
    name = f"07_{model}_without_{''.join(map(str, osd.unseen))}" + (f"_{candidate}" if c is not None else "")
    return train_or_load(name, mcfg, train, val, cfg, runs_dir=notebook_runs_dir(fast), **kwargs)


def protocol_sets(data, osd: OpenSetData, fast: bool = False) -> tuple:
    """The digits split as the standard open-set protocol does it, known = `osd.seen`, unknown = `osd.unseen`:
    (kNN bank: the seen digits' training images, known test images, unseen test images). FAST: the bank is as many
    images as a FAST run trains on, the test sides 1,000 images each."""
    bank, _ = known_unknown_split(data.train, osd.seen)
    known, unknown = known_unknown_split(data.test, osd.seen)
    if fast:
        bank, known, unknown = bank.take(FAST_TRAIN_IMAGES), known.take(1000), unknown.take(1000)
    return bank, known, unknown

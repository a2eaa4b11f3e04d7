"""Notebook 14: sequences of digits. The task data (seeded sequences from the train / val / test images), the
per-digit encoders (notebook 03's ViT frozen or fine-tuned, a small CNN trained end to end) and the named runs,
kept under ``runs/14_sequences/`` (FAST: ``runs/fast/14_sequences/``) so re-running the notebook loads them.

The set models train with their own small loop (`methods.sequences.fit_or_load`) and are kept as one file each:
they are not yet run specs of the run store."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import torch

from ..methods.sequences import (
    EncoderItems,
    FeatureTable,
    SeqModel,
    SeqTrainConfig,
    SequenceSet,
    anchor_accuracy,
    anchor_sequences,
    fit_or_load,
    image_features,
    sum_accuracy,
    sum_sequences,
)
from ..models import CNNConfig, SmallCNN
from ..models.sets import AnchorSetModel, SetConfig, SumSetModel, allow_length
from .common import VIT_DEFAULT
from .runner import fast_mode, runs_dir, trained


@dataclass
class Sizes:
    train: int  # training sequences (drawn from the training images)
    val: int  # validation sequences (from the validation images): every design choice is made on these
    test: int  # test sequences of lengths 1..10 (from the test images): final figures only
    test_long: int  # test sequences of each extrapolation length (20, 50)
    epochs: int  # epochs of a set model on frozen features
    cnn_epochs: int  # epochs of the small CNN trained end to end (its cost: a forward and backward per image)
    vit_ft_epochs: int  # epochs of the ViT fine-tuned along with the set model ...
    vit_ft_train: int  # ... on this many of the training sequences


FULL = Sizes(train=20000, val=2000, test=5000, test_long=1000, epochs=6, cnn_epochs=5, vit_ft_epochs=2,
             vit_ft_train=10000)
FAST_SIZES = Sizes(train=1000, val=300, test=500, test_long=100, epochs=2, cnn_epochs=1, vit_ft_epochs=1, vit_ft_train=200)
CNN_ENCODER = CNNConfig(width=8, hidden=64)  # the small CNN trained end to end: SmallCNN at a quarter of the width
LONG = (20, 50)  # extrapolation lengths
FROZEN_LR = 3e-3  # peak learning rate of a set model on frozen features (batches of 128 sequences)
CNN_LR = 5e-3  # ... of the CNN trained end to end from random weights (batches of 32: more steps per image)
VIT_FT_LR = 5e-4  # ... of the ViT fine-tuned along (batches of 32; lower: it starts trained)
E2E_BATCH = 32  # sequences per step when the encoder trains along


class SequenceLab:
    """The notebook's data and runs: `lab.sum_run(name, SetConfig(...))`, `lab.anchor_run(...)`, `lab.sum_eval(...)`.

    Encoders: "vit" (notebook 03's ViT, frozen: a table of its features), "vit_ft" (that ViT fine-tuned along with
    the set model), "cnn" (a small CNN trained end to end from scratch), and any frozen table added with
    `add_frozen(name, encoder)` (e.g. the CNN trained on the sum task, reused for the anchor task).
    """

    def __init__(self, data, vit=None):
        self.data = data
        self.sizes = FAST_SIZES if fast_mode() else FULL  # the set models are not run specs yet: FAST sizes them here
        self.dir = runs_dir() / "14_sequences"
        s = self.sizes
        self.train = sum_sequences(data.train, s.train, seed=0)
        self.val = sum_sequences(data.val, s.val, seed=1)
        self.test = sum_sequences(data.test, s.test, seed=2)
        self.test_long = {n: sum_sequences(data.test, s.test_long, n, n, seed=3 + n) for n in LONG}
        self.windows = sum_sequences(data.train, s.train, seed=0, windows=True)  # the published flaw
        self.a_train = anchor_sequences(data.train, s.train, seed=10)
        self.a_val = anchor_sequences(data.val, s.val, seed=11)
        self.a_test = anchor_sequences(data.test, s.test, seed=12)
        self.vit = vit if vit is not None else trained(VIT_DEFAULT, data).model
        self.feats = {}  # encoder name -> {split: (N, E) features}
        self.add_frozen("vit", self.vit, published=True)
        self.blank = 2 * len(data.train)  # the blank image's row in the training table (published setting)
        self.flip_offset = len(data.train)  # the flipped copy of image i is row i + flip_offset

    def add_frozen(self, name: str, encoder, published: bool = False) -> None:
        """Precompute `encoder`'s features of every image once, for set models that read it frozen. `published`:
        the training table also holds the flipped images and a blank one, for the published setting."""
        d = self.data
        self.feats[name] = {"train": image_features(encoder, d.train, flipped=published, blank=published),
                            "val": image_features(encoder, d.val), "test": image_features(encoder, d.test)}

    def embedder(self, encoder: str, split: str = "train"):
        if encoder in self.feats:
            return FeatureTable(self.feats[encoder][split])
        if encoder == "vit_ft":
            return EncoderItems(copy.deepcopy(self.vit), self.vit.cfg.dim)
        if encoder == "cnn":
            return EncoderItems(SmallCNN(CNN_ENCODER), CNN_ENCODER.hidden)
        raise ValueError(f"encoder must be 'vit_ft', 'cnn' or a frozen one of {sorted(self.feats)}, got {encoder!r}")

    def default_train_config(self, encoder: str, seed: int = 0) -> SeqTrainConfig:
        s = self.sizes
        if encoder == "cnn":
            return SeqTrainConfig(epochs=s.cnn_epochs, batch_size=E2E_BATCH, lr=CNN_LR, seed=seed)
        if encoder == "vit_ft":
            return SeqTrainConfig(epochs=s.vit_ft_epochs, batch_size=E2E_BATCH, lr=VIT_FT_LR, seed=seed)
        return SeqTrainConfig(epochs=s.epochs, lr=FROZEN_LR, seed=seed)

    def _run(self, name, cls, cfg, encoder, train, tcfg):
        tcfg = tcfg or self.default_train_config(encoder)
        if encoder == "vit_ft":
            train = train.subset(torch.arange(min(len(train), self.sizes.vit_ft_train)))
        torch.manual_seed(tcfg.seed)
        emb = self.embedder(encoder)
        model = SeqModel(cls(dataclasses.replace(cfg, embed_dim=emb.embed_dim)), emb)
        setup = {"model": model.head.cfg.to_dict(), "encoder": encoder, "n_train": len(train),
                 "windows": train is self.windows, "fast": self.sizes is FAST_SIZES}
        hist = fit_or_load(self.dir / f"{name}.pt", model, train, tcfg, setup, blank=self.blank,
                           flip_offset=self.flip_offset)
        return model, hist

    def for_split(self, model: SeqModel, split: str) -> SeqModel:
        """The same set model reading `split`'s images (a frozen table swaps its features; an encoder is kept)."""
        for f in self.feats.values():
            if isinstance(model.embedder, FeatureTable) and model.embedder.features is f["train"]:
                return SeqModel(model.head, FeatureTable(f[split]))
        return model

    def sum_run(self, name: str, cfg: SetConfig, encoder: str = "vit", tcfg: SeqTrainConfig = None,
                windows: bool = False):
        """Train (or load) a sum model: run ``14_sequences/<name>``."""
        return self._run(name, SumSetModel, cfg, encoder, self.windows if windows else self.train, tcfg)

    def anchor_run(self, name: str, cfg: SetConfig, encoder: str = "vit", tcfg: SeqTrainConfig = None):
        """Train (or load) an anchor model: run ``14_sequences/<name>``."""
        return self._run(name, AnchorSetModel, cfg, encoder, self.a_train, tcfg)

    def sum_eval(self, model: SeqModel, seqs: SequenceSet, split: str, published: bool = False) -> dict:
        """Exact-sum accuracy (mean over lengths), per length, and MSE. `published`: padding read as blank images."""
        m = self.for_split(model, split)
        longest = int(seqs.lengths.max())
        if longest > m.head.cfg.max_len:
            m = SeqModel(allow_length(m.head, longest), m.embedder)
        if published:  # the published model reads blank images in the padding: append the blank row
            feats = torch.cat([self.feats["vit"][split], self.feats["vit"]["train"][self.blank:]])
            return sum_accuracy(SeqModel(m.head, FeatureTable(feats)), seqs, blank=len(feats) - 1)
        return sum_accuracy(m, seqs)

    def anchor_eval(self, model: SeqModel, seqs: SequenceSet, split: str) -> dict:
        return anchor_accuracy(self.for_split(model, split), seqs)

    @torch.no_grad()
    def digit_accuracy(self, model: SeqModel, seqs: SequenceSet, split: str) -> float:
        """Per-digit accuracy of a "digits" head: its per-item argmax against the true labels, over every item."""
        m = self.for_split(model, split)
        pred = torch.cat([m(seqs, torch.arange(i, min(i + 500, len(seqs)))).digit_logits.argmax(-1)
                          for i in range(0, len(seqs), 500)])  # (S, L)
        mask = seqs.mask
        return float((pred[mask] == seqs.images.labels[seqs.items[mask]]).float().mean())

"""Notebook 13 and benchmarks/synthetic.py: the synthetic-digit runs, shared so the notebook loads what the
benchmark trained.

Runs (in ``runs/``, or ``runs/fast/`` in FAST mode):

- ``13_zero_s<seed>``: the default ViT trained on synthetic digits only (fonts + strokes), no real label;
- ``13_n<k>_<arm>_s<seed>``: k real labels per class, arm "real" (real only), "mix" (real + synthetic in every
  epoch) or "pre" (fine-tuned from ``13_zero_s<seed>``), all at the same step budget (FEW_STEPS of FEW_BATCH);
- ``13_cvae_n<k>_s<seed>``: the conditional VAE trained on the same k real digits per class;
- ``13_gen_<generators>``, ``13_n10_mix_d<share>[_nocvae]_s0``: design runs, scored on the validation split;
- ``13_full_mix``: the default recipe on the 55k real training digits with FULL_SYNTHETIC of synthetic ones,
  at the very step count of notebook 03's ``vit_default`` (its real-only twin).
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import torch

from ..data import ImageSet
from ..data.augment import Augment
from ..data.synthetic import synthetic_set
from ..methods.cvae import CVAEObjective, cvae_digits
from ..models import CVAEConfig
from ..training.config import TrainConfig
from ..training.recipes import RECIPES
from ..training.runs import train_or_load
from .common import FAST_TRAIN_IMAGES, default_vit_run, notebook_runs_dir
from .mae import labelled_subset
from .seeds import SEEDS

POOL_SIZE = 40_000  # synthetic digits for the zero-label runs (half fonts, half strokes); FAST: FAST_TRAIN_IMAGES
ZERO_EPOCHS = 6  # zero-label runs: the default recipe for this many epochs over the pool (about 940 steps)
FEW_BATCH, FEW_STEPS = 64, 400  # few-label runs: every arm takes FEW_STEPS steps of FEW_BATCH images ...
FEW_EPOCHS = 4  # ... as FEW_EPOCHS epochs of FEW_STEPS // FEW_EPOCHS steps
MIX_SHARE = 0.75  # share of synthetic images in a "mix" epoch; chosen on the validation split (benchmark's design)
CVAE_SHARE = 1 / 3  # share of those synthetic images drawn from the conditional VAE (the rest: fonts + strokes)
FULL_SYNTHETIC = 0.1  # full-data run: synthetic images added, as a share of the 55k real ones
LABELS_PER_CLASS = (1, 10, 100)
ARMS = ("real", "mix", "pre")


def _kw(kw: dict) -> dict:
    for k, v in (("tensorboard", False), ("progress", False), ("verbose", False)):
        kw.setdefault(k, v)
    return kw


def synthetic_pool(data, fast: bool = False) -> ImageSet:
    """The zero-label training pool: POOL_SIZE digits, half `fonts`, half `strokes` (seed 0), made once and kept
    as ``13_synthetic_pool.pt`` in the runs folder. ``.fonts`` lists the fonts it used."""
    n = FAST_TRAIN_IMAGES if fast else POOL_SIZE
    path = notebook_runs_dir(fast) / "13_synthetic_pool.pt"
    if path.exists():
        saved = torch.load(path, weights_only=True)
        if len(saved["labels"]) == n:
            pool = replace(data.train, images=saved["images"], labels=saved["labels"], name=saved["name"], split=None)
            pool.sources, pool.fonts = saved["sources"], saved["fonts"]
            return pool
    pool = synthetic_set(("fonts", "strokes"), n, like=data.train, seed=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"images": pool.images, "labels": pool.labels, "name": pool.name, "sources": pool.sources,
                "fonts": pool.fonts}, path)
    return pool


def concat(*sets: ImageSet, name: str = "") -> ImageSet:
    """One ImageSet holding every image of `sets` (the first one's info)."""
    return replace(sets[0], images=torch.cat([s.images for s in sets]), labels=torch.cat([s.labels for s in sets]),
                   name=name or "+".join(s.name for s in sets), split=None)


def tile(s: ImageSet, n: int) -> ImageSet:
    """`s` repeated to exactly `n` images (each augmented differently when trained on): a fixed epoch length."""
    idx = torch.arange(n) % len(s)
    return s.subset(idx)


def zero_config(fast: bool = False) -> TrainConfig:
    """The default recipe, ZERO_EPOCHS epochs (FAST: 2), seed 0 (the seed of each run is set by zero_label_run)."""
    return dataclasses.replace(RECIPES["default"].train, epochs=2 if fast else ZERO_EPOCHS)


def zero_label_run(data, seed: int = 0, fast: bool = False, pool=None, **kw):
    """The default ViT trained on the synthetic pool only (validated on the real validation split)."""
    pool = pool if pool is not None else synthetic_pool(data, fast)
    tc = dataclasses.replace(zero_config(fast), seed=seed)
    val = data.val.take(1000) if fast else data.val
    return train_or_load(f"13_zero_s{seed}", RECIPES["default"].model, pool, val, tc, runs_dir=notebook_runs_dir(fast),
                         **_kw(kw))


def generator_run(data, kinds, fast: bool = False, pool=None, **kw):
    """A design run (validation only): the default recipe for 2 epochs on 20,000 digits (FAST: 1,000) of the
    generators `kinds` (both: drawn from the pool). Run ``13_gen_<kinds joined by +>``."""
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    pool = pool if pool is not None else synthetic_pool(data, fast)
    syn = pool if sorted(kinds) == ["fonts", "strokes"] else synthetic_set(kinds, len(pool) // 2, like=data.train, seed=0)
    syn = syn.take(1000 if fast else 20_000, seed=0)
    tc = dataclasses.replace(zero_config(fast), epochs=2)
    return train_or_load(f"13_gen_{'+'.join(kinds)}", RECIPES["default"].model, syn, None, tc,
                         runs_dir=notebook_runs_dir(fast), **_kw(kw))


def few_config(fast: bool = False, seed: int = 0) -> TrainConfig:
    """The default recipe's optimiser, schedule and augmentation at the few-label budget: FEW_STEPS steps of
    FEW_BATCH (FAST: 1 epoch of 10 steps)."""
    return dataclasses.replace(RECIPES["default"].train, epochs=1 if fast else FEW_EPOCHS, batch_size=FEW_BATCH,
                               warmup_epochs=0.5, seed=seed)


def epoch_images(fast: bool = False) -> int:
    return FEW_BATCH * (10 if fast else FEW_STEPS // FEW_EPOCHS)


def cvae_run(data, k: int, seed: int = 0, fast: bool = False, **kw):
    """The conditional VAE trained on the same k real digits per class as the few-label runs (seed `seed`), with
    the default Augment for variety: 8 epochs of 6,400 images (FAST: 1 of 640)."""
    real = labelled_subset(data.train, 10 * k, seed=seed)
    tc = TrainConfig(epochs=1 if fast else 8, batch_size=FEW_BATCH, lr=2e-3, weight_decay=0.0, warmup_epochs=0.5,
                     schedule="cosine", label_smoothing=0.0, grad_clip=0.0, augment=Augment(), seed=seed)
    return train_or_load(f"13_cvae_n{k}_s{seed}", CVAEConfig(), tile(real, epoch_images(fast)), None, tc,
                         runs_dir=notebook_runs_dir(fast), objective=CVAEObjective(data.info.mean, data.info.std),
                         **_kw(kw))


def mix_set(data, real: ImageSet, k: int, seed: int, fast: bool = False, share: float = MIX_SHARE,
            cvae_share: float = CVAE_SHARE, pool=None) -> ImageSet:
    """One epoch's images for the "mix" arm: `real` tiled to (1 - share) of the epoch, the rest synthetic
    (cvae_share of it sampled from ``13_cvae_n<k>_s<seed>``, the others a seeded draw from the pool)."""
    n = epoch_images(fast)
    n_syn = round(share * n)
    n_cvae = round(cvae_share * n_syn)
    pool = pool if pool is not None else synthetic_pool(data, fast)
    parts = [tile(real, n - n_syn), pool.take(n_syn - n_cvae, seed=seed)]
    if n_cvae:
        parts.append(cvae_digits(cvae_run(data, k, seed, fast).model, n_cvae, data.train, seed=seed))
    return concat(*parts, name=f"mnist{k}/class+synthetic")


def few_label_run(data, k: int, arm: str, seed: int = 0, fast: bool = False, pool=None, val=None, tag: str = "",
                  share: float = MIX_SHARE, cvae_share: float = CVAE_SHARE, **kw):
    """k real labels per class, one of ARMS, FEW_STEPS steps. `val` (default none: the test set scores these)
    and `tag`, `share`, `cvae_share` are for the benchmark's design runs on the validation split."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}: choose from {ARMS}")
    real = labelled_subset(data.train, 10 * k, seed=seed)
    init = None
    if arm == "mix":
        train = mix_set(data, real, k, seed, fast, share, cvae_share, pool)
    else:
        train = tile(real, epoch_images(fast))
    if arm == "pre":
        init = zero_label_run(data, seed, fast, pool).model
    return train_or_load(f"13_n{k}_{arm}{tag}_s{seed}", RECIPES["default"].model, train, val, few_config(fast, seed),
                         runs_dir=notebook_runs_dir(fast), init=init, **_kw(kw))


DESIGN_MIXES = ((0.25, CVAE_SHARE), (0.5, CVAE_SHARE), (0.75, CVAE_SHARE), (0.5, 0.0))  # (share, VAE share) tried


def design_runs(data, fast: bool = False, pool=None) -> dict:
    """Every design run, to be scored on the validation split: {description: run}. The generators (short
    zero-label runs), then the mixes of DESIGN_MIXES and real only at 10 labels per class, seed 0. The mix chosen
    (MIX_SHARE, CVAE_SHARE) is the main run ``13_n10_mix_s0`` itself."""
    pool = pool if pool is not None else synthetic_pool(data, fast)
    out = {f"generator {'+'.join(g)}, 2 epochs": generator_run(data, g, fast, pool)
           for g in (("fonts",), ("strokes",), ("fonts", "strokes"))}
    for share, cvae in DESIGN_MIXES:
        chosen = share == MIX_SHARE and cvae == CVAE_SHARE
        tag = "" if chosen else f"_d{round(100 * share)}" + ("" if cvae else "_nocvae")
        out[f"10/class, synthetic {share:.0%}, VAE {cvae:.0%} of it"] = few_label_run(
            data, 10, "mix", 0, fast, pool, tag=tag, share=share, cvae_share=cvae)
    out["10/class, real only"] = few_label_run(data, 10, "real", 0, fast, pool)
    return out


def full_data_runs(data, fast: bool = False, pool=None, **kw) -> dict:
    """{"real": notebook 03's ``vit_default``, "mix": ``13_full_mix``}: the default recipe on all real training
    digits, without and with FULL_SYNTHETIC synthetic ones; the same number of steps (the mix run's epochs are cut
    to the real run's length, so each epoch sees a random 55k of its 60.5k images). FAST: 4,000 real images."""
    real_run = default_vit_run(data, fast, **_kw(dict(kw)))
    pool = pool if pool is not None else synthetic_pool(data, fast)
    real = data.train.take(FAST_TRAIN_IMAGES) if fast else data.train
    syn = pool.take(round(FULL_SYNTHETIC * len(real)), seed=1)
    r = RECIPES["default"].train
    epochs = 2 if fast else r.epochs
    tc = dataclasses.replace(r, epochs=epochs, max_steps_per_epoch=len(real) // r.batch_size)
    mix = train_or_load("13_full_mix", RECIPES["default"].model, concat(real, syn, name="mnist+synthetic"), data.val,
                        tc, runs_dir=notebook_runs_dir(fast), **_kw(kw))
    return {"real": real_run, "mix": mix}

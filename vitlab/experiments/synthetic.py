"""Notebook 13 and benchmarks/synthetic.py: the synthetic-digit runs, shared so the notebook loads what the
benchmark trained.

Runs:

- ``13_zero_s<seed>``: the default ViT trained on synthetic digits only (fonts + strokes), no real label;
- ``13_n<k>_<arm>_s<seed>``: k real labels per class, arm "real" (real only), "mix" (real + synthetic in every
  epoch) or "pre" (fine-tuned from ``13_zero_s<seed>``), all at the same step budget (FEW_STEPS of FEW_BATCH);
- ``13_cvae_n<k>_s<seed>``: the conditional VAE trained on the same k real digits per class;
- ``13_gen_<generators>``, ``13_n10_mix_d<share>[_nocvae]_s0``: design runs, scored on the validation split;
- ``13_full_mix``: the default recipe on the real training digits with FULL_SYNTHETIC of synthetic ones, at the very
  step count of notebook 03's ``vit_default`` (its real-only twin).

The synthetic pool is made once and kept beside the runs as ``13_synthetic_pool.pt`` (images and labels as tensors,
read with ``weights_only``): it is data, not a run, so it has no checkpoint.
"""

from __future__ import annotations

import dataclasses

import torch

from ..data import ImageSet
from ..data.augment import Augment
from ..models import CVAEConfig
from ..training.config import TrainConfig
from ..training.recipes import RECIPES
from ..training.spec import DataSpec, Fast, Init, Part, RunSpec
from .common import SEEDS, VIT_DEFAULT  # noqa: F401  (SEEDS: the notebook's and the benchmark's seeds)
from .runner import Context, data_step, trained

POOL_SIZE = 40_000  # synthetic digits for the zero-label runs (half fonts, half strokes)
FAST_POOL = 4000  # ... in FAST mode
ZERO_EPOCHS = 6  # zero-label runs: the default recipe for this many epochs over the pool
FEW_BATCH, FEW_STEPS = 64, 400  # few-label runs: every arm takes FEW_STEPS steps of FEW_BATCH images ...
FEW_EPOCHS = 4  # ... as FEW_EPOCHS epochs of FEW_STEPS // FEW_EPOCHS steps
EPOCH_IMAGES, FAST_EPOCH_IMAGES = FEW_BATCH * (FEW_STEPS // FEW_EPOCHS), FEW_BATCH * 10
MIX_SHARE = 0.75  # share of synthetic images in a "mix" epoch; chosen on the validation split (benchmark's design)
CVAE_SHARE = 1 / 3  # share of those synthetic images drawn from the conditional VAE (the rest: fonts + strokes)
FULL_SYNTHETIC = 0.1  # full-data run: synthetic images added, as a share of the real ones
LABELS_PER_CLASS = (1, 10, 100)
ARMS = ("real", "mix", "pre")
DESIGN_MIXES = ((0.25, CVAE_SHARE), (0.5, CVAE_SHARE), (0.75, CVAE_SHARE), (0.5, 0.0))  # (share, VAE share) tried


def synthetic_pool(data, n: int = POOL_SIZE) -> ImageSet:
    """The zero-label training pool: `n` digits, half `fonts`, half `strokes` (seed 0), made once and kept as
    ``13_synthetic_pool.pt`` beside the runs. ``.fonts`` lists the fonts it used."""
    from ..data.synthetic import synthetic_set
    from .runner import runs_dir

    path = runs_dir() / "13_synthetic_pool.pt"
    if path.exists():
        saved = torch.load(path, weights_only=True)
        if len(saved["labels"]) == n:
            pool = dataclasses.replace(data.train, images=saved["images"], labels=saved["labels"], name=saved["name"],
                                       split=None)
            pool.sources, pool.fonts = saved["sources"], saved["fonts"]
            return pool
    pool = synthetic_set(("fonts", "strokes"), n, like=data.train, seed=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"images": pool.images, "labels": pool.labels, "name": pool.name, "sources": pool.sources,
                "fonts": pool.fonts}, path)
    return pool


@data_step("synthetic_pool")
def _pool_step(s: ImageSet, ctx: Context, n: int, take: int = 0, seed: int = 0) -> ImageSet:
    """The pool instead of the images so far (all of it, or a seeded draw of `take`)."""
    pool = synthetic_pool(ctx.data, n)
    return pool.take(take, seed=seed) if take else pool


@data_step("synthetic")
def _synthetic_step(s: ImageSet, ctx: Context, kinds: tuple, n: int, take: int, seed: int = 0) -> ImageSet:
    """`n` fresh digits of the generators `kinds` (seeded), then a seeded draw of `take` of them."""
    from ..data.synthetic import synthetic_set

    return synthetic_set(list(kinds), n, like=ctx.data.train, seed=seed).take(take, seed=0)


@data_step("mix")
def _mix_step(s: ImageSet, ctx: Context, n: int, share: float, cvae_share: float, pool: int, seed: int,
              cvae=None) -> ImageSet:
    """One epoch's images for the "mix" arm: the images so far (the real ones) tiled to (1 - share) of `n`, the rest
    synthetic (cvae_share of it sampled from the run `cvae`, the others a seeded draw from the pool)."""
    from ..methods.cvae import cvae_digits

    n_syn = round(share * n)
    n_cvae = round(cvae_share * n_syn)
    parts = [s.tile(n - n_syn), synthetic_pool(ctx.data, pool).take(n_syn - n_cvae, seed=seed)]
    if n_cvae:
        parts.append(cvae_digits(trained(cvae, ctx.data).model, n_cvae, ctx.data.train, seed=seed))
    return ImageSet.concat(*parts, name=f"mnist{round(len(s) / 10)}/class+synthetic")


@data_step("add_synthetic")
def _add_synthetic_step(s: ImageSet, ctx: Context, share: float, pool: int, seed: int = 1) -> ImageSet:
    """The images so far plus `share` as many drawn from the pool."""
    syn = synthetic_pool(ctx.data, pool).take(round(share * len(s)), seed=seed)
    return ImageSet.concat(s, syn, name="mnist+synthetic")


def _zero_data(pool: int, val: tuple = ()) -> DataSpec:
    return DataSpec(train=(Part.of("synthetic_pool", n=pool),), val=val)


def zero_spec(seed: int = 0) -> RunSpec:
    """The default ViT trained on the synthetic pool only (validated on the real validation split)."""
    return RunSpec(f"13_zero_s{seed}", RECIPES["default"].model,
                   dataclasses.replace(RECIPES["default"].train, epochs=ZERO_EPOCHS, seed=seed), _zero_data(POOL_SIZE),
                   fast=Fast(epochs=2, data=_zero_data(FAST_POOL, (Part.of("take", n=1000),))))


def generator_spec(kinds) -> RunSpec:
    """A design run (validation only): the default recipe for 2 epochs on 20,000 digits of the generators `kinds`
    (both: drawn from the pool)."""
    kinds = tuple([kinds] if isinstance(kinds, str) else kinds)

    def data(pool: int, take: int) -> DataSpec:
        step = (Part.of("synthetic_pool", n=pool, take=take) if sorted(kinds) == ["fonts", "strokes"]
                else Part.of("synthetic", kinds=kinds, n=pool // 2, take=take))
        return DataSpec(train=(step,), val=None)

    return RunSpec(f"13_gen_{'+'.join(kinds)}", RECIPES["default"].model,
                   dataclasses.replace(RECIPES["default"].train, epochs=2), data(POOL_SIZE, 20_000),
                   fast=Fast(epochs=2, data=data(FAST_POOL, 1000)))


def few_config(seed: int = 0) -> TrainConfig:
    """The default recipe's optimiser, schedule and augmentation at the few-label budget: FEW_STEPS steps of
    FEW_BATCH (FAST: 1 epoch of 10 steps)."""
    return dataclasses.replace(RECIPES["default"].train, epochs=FEW_EPOCHS, batch_size=FEW_BATCH, warmup_epochs=0.5,
                               seed=seed)


def _real(k: int, seed: int, epoch_images: int) -> tuple:
    return Part.of("balanced", n=10 * k, seed=seed), Part.of("tile", n=epoch_images)


def cvae_spec(k: int, seed: int = 0) -> RunSpec:
    """The conditional VAE trained on the same k real digits per class as the few-label runs (seed `seed`), with
    the default Augment for variety: 8 epochs of EPOCH_IMAGES images (FAST: 1 of FAST_EPOCH_IMAGES)."""
    tc = TrainConfig(epochs=8, batch_size=FEW_BATCH, lr=2e-3, weight_decay=0.0, warmup_epochs=0.5,
                     schedule="cosine", label_smoothing=0.0, grad_clip=0.0, augment=Augment(), seed=seed)
    return RunSpec(f"13_cvae_n{k}_s{seed}", CVAEConfig(), tc, DataSpec(train=_real(k, seed, EPOCH_IMAGES), val=None),
                   objective=Part.of("cvae"),
                   fast=Fast(epochs=1, data=DataSpec(train=_real(k, seed, FAST_EPOCH_IMAGES), val=None)))


def few_label_spec(k: int, arm: str, seed: int = 0, validate: bool = False, tag: str = "",
                   share: float = MIX_SHARE, cvae_share: float = CVAE_SHARE) -> RunSpec:
    """k real labels per class, one of ARMS, FEW_STEPS steps. `validate` (default: no validation, the test set
    scores these), `tag`, `share` and `cvae_share` are for the benchmark's design runs on the validation split."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}: choose from {ARMS}")

    def data(epoch_images: int, pool: int) -> DataSpec:
        if arm != "mix":
            return DataSpec(train=_real(k, seed, epoch_images), val=() if validate else None)
        cvae = cvae_spec(k, seed) if round(cvae_share * round(share * epoch_images)) else None
        mix = Part.of("mix", n=epoch_images, share=share, cvae_share=cvae_share, pool=pool, seed=seed, cvae=cvae)
        return DataSpec(train=(Part.of("balanced", n=10 * k, seed=seed), mix), val=() if validate else None)

    return RunSpec(f"13_n{k}_{arm}{tag}_s{seed}", RECIPES["default"].model, few_config(seed), data(EPOCH_IMAGES, POOL_SIZE),
                   init=Init(zero_spec(seed)) if arm == "pre" else None,
                   fast=Fast(epochs=1, data=data(FAST_EPOCH_IMAGES, FAST_POOL)))


def design_specs() -> dict:
    """Every design run, to be scored on the validation split: {description: spec}. The generators (short
    zero-label runs), then the mixes of DESIGN_MIXES and real only at 10 labels per class, seed 0. The mix chosen
    (MIX_SHARE, CVAE_SHARE) is the main run ``13_n10_mix_s0`` itself."""
    out = {f"generator {'+'.join(g)}, 2 epochs": generator_spec(g) for g in (("fonts",), ("strokes",), ("fonts", "strokes"))}
    for share, cvae in DESIGN_MIXES:
        chosen = share == MIX_SHARE and cvae == CVAE_SHARE
        tag = "" if chosen else f"_d{round(100 * share)}" + ("" if cvae else "_nocvae")
        out[f"10/class, synthetic {share:.0%}, VAE {cvae:.0%} of it"] = few_label_spec(10, "mix", 0, tag=tag, share=share,
                                                                                    cvae_share=cvae)
    out["10/class, real only"] = few_label_spec(10, "real", 0)
    return out


def full_mix_spec(real_images: int) -> RunSpec:
    """``13_full_mix``: the default recipe on all `real_images` real training digits plus FULL_SYNTHETIC as many
    synthetic ones, with as many steps as ``vit_default`` (each epoch sees a random `real_images` of the mix)."""
    r = RECIPES["default"].train

    def data(real: tuple, pool: int) -> DataSpec:
        return DataSpec(train=real + (Part.of("add_synthetic", share=FULL_SYNTHETIC, pool=pool, seed=1),))

    fast_real = VIT_DEFAULT.fast.images
    return RunSpec("13_full_mix", RECIPES["default"].model,
                   dataclasses.replace(r, max_steps_per_epoch=real_images // r.batch_size), data((), POOL_SIZE),
                   fast=Fast(epochs=2, data=data((Part.of("take", n=fast_real),), FAST_POOL),
                             train=(("max_steps_per_epoch", fast_real // r.batch_size),)))


def design_runs(data) -> dict:
    return {label: trained(spec, data) for label, spec in design_specs().items()}


def full_data_runs(data) -> dict:
    """{"real": notebook 03's ``vit_default``, "mix": ``13_full_mix``}: the default recipe on all real training
    digits, without and with FULL_SYNTHETIC synthetic ones; the same number of steps."""
    return {"real": trained(VIT_DEFAULT, data), "mix": trained(full_mix_spec(len(data.train)), data)}


def zero_label_run(data, seed: int = 0):
    return trained(zero_spec(seed), data)


def cvae_run(data, k: int, seed: int = 0):
    return trained(cvae_spec(k, seed), data)


def few_label_run(data, k: int, arm: str, seed: int = 0, **spec_args):
    """`few_label_spec(k, arm, seed, **spec_args)`, trained or loaded."""
    return trained(few_label_spec(k, arm, seed, **spec_args), data)

"""Notebooks 07 and 08: two known digits plus "unknown", the fine-tuning runs that learn it, and the backbones they
start from: notebook 03's (trained on all ten digits, so the "unseen" digits leak in) and clean ones trained
without the digits that play unknown.

Runs: ``07_<known digits>_<approach>_<kind>[_<tag>]`` (`open_set_spec`), ``07_<model>_without_<unseen digits>[_<candidate>]``
(`clean_backbone_spec`). The task's images, split by digit, are `vitlab.data.splits.known_unknown_sets`."""

from __future__ import annotations

import dataclasses
from typing import Sequence, Union

from ..models import CNNConfig
from ..training.recipes import RECIPES
from ..training.spec import DataSpec, Fast, Init, Part, RunSpec
from .common import CNN_BASELINE_EPOCHS, FAST_PLAN, VIT_DEFAULT


def _unseen(known, unknown_train) -> list:
    return [d for d in range(10) if d not in list(known) + list(unknown_train)]


def open_set_spec(known: Sequence[int], unknown_train: Sequence[int], approach: str, kind: str,
                  backbone: Union[RunSpec, str] = VIT_DEFAULT, tag: str = "") -> RunSpec:
    """Notebook 07's fine-tuning runs, reused by notebook 08, starting from `backbone` (a run, or "imagenet":
    timm's ViT-Ti weights, which need internet).

    approach "a": K+1 outputs, trained on the known digits + `unknown_train` ones as "unknown" (an explicit class);
    approach "b": K outputs, trained on the known digits only (unknowns are rejected by a score threshold).
    kind "probe": only the new head learns; "finetune": every weight learns, at a quarter of the recipe's rate.
    """
    if approach not in ("a", "b") or kind not in ("probe", "finetune"):
        raise ValueError(f"approach must be 'a' or 'b' and kind 'probe' or 'finetune', got {approach!r}, {kind!r}")
    known, unknown_train = tuple(known), tuple(unknown_train)
    K = len(known)
    classes = K + 1 if approach == "a" else K
    if backbone == "imagenet":
        from ..methods.pretrained import vit_from_timm_hub

        init = Init(hub="vit_tiny_patch16_224", num_classes=K + 1)  # a K+1-way head: approach (b) draws its own
        model = dataclasses.replace(vit_from_timm_hub(init.hub, num_classes=K + 1).cfg, num_classes=classes)
    else:
        init, model = Init(backbone), dataclasses.replace(backbone.model, num_classes=classes)
    train = dataclasses.replace(RECIPES["default"].train, epochs=3, lr=5e-4, warmup_epochs=0.3)
    if kind == "probe":
        train = dataclasses.replace(train, lr=5e-3, weight_decay=0.0)
    step = (Part.of("with_unknown", known=known, unknown=unknown_train, seed=1) if approach == "a"
            else Part.of("digits", keep=known))
    name = f"07_{''.join(map(str, known))}_{approach}_{kind}" + (f"_{tag}" if tag else "")
    return RunSpec(name, model, train, DataSpec(train=(step,), val=(step,)), init=init,
                   train_only=("head",) if kind == "probe" else (), fast=Fast(images=3000, epochs=1))


def clean_backbone_spec(known: Sequence[int], unknown_train: Sequence[int], model: str = "vit",
                        candidate: str | None = None) -> RunSpec:
    """A backbone that never saw the unseen digits: notebook 03's recipe (model "vit": the default recipe's ViT;
    "cnn": its CNN baseline) trained on the seen digits only, labels 0..5 in sorted order.

    candidate: a ViT trained as one of benchmarks/openset.py's candidates instead (a name in
    `experiments.openset_protocol.CANDIDATES`, e.g. "no-ls-long": 80 epochs without label smoothing), in run
    ``07_vit_without_4679_<candidate>``. FAST keeps the candidate's smoothing and stem but trains FAST's epochs."""
    if model not in ("vit", "cnn"):
        raise ValueError(f"model must be 'vit' or 'cnn', got {model!r}")
    seen = tuple(sorted(tuple(known) + tuple(unknown_train)))
    unseen = _unseen(known, unknown_train)
    r = RECIPES["default"]
    if candidate is not None:
        from .openset_protocol import CANDIDATES

        if candidate not in CANDIDATES:
            raise ValueError(f"unknown candidate {candidate!r}; choose from {', '.join(CANDIDATES)}")
        c = CANDIDATES[candidate]
        if c.model != model or c.outliers is not None:
            raise ValueError(f"candidate {candidate!r} is not a plain {model} backbone (model {c.model!r}, "
                             f"outliers {c.outliers!r})")
        mcfg, tcfg = c.model_config(len(seen)), c.train_config(CNN_BASELINE_EPOCHS)
    elif model == "vit":
        mcfg, tcfg = dataclasses.replace(r.model, num_classes=len(seen)), r.train
    else:
        mcfg, tcfg = CNNConfig(num_classes=len(seen)), dataclasses.replace(r.train, epochs=CNN_BASELINE_EPOCHS)
    step = Part.of("digits", keep=seen)
    name = f"07_{model}_without_{''.join(map(str, unseen))}" + (f"_{candidate}" if candidate else "")
    return RunSpec(name, mcfg, tcfg, DataSpec(train=(step,), val=(step,)),
                   fast=VIT_DEFAULT.fast if model == "vit" else FAST_PLAN)


KNOWN, UNKNOWN_TRAIN = (3, 8), (0, 1, 2, 5)  # notebook 07's task (08 reuses it): two known digits, four as "unknown"


def open_set_specs(known=KNOWN, unknown_train=UNKNOWN_TRAIN, starts=None) -> dict:
    """Notebook 07's runs: {(backbone, approach, kind): spec} for both approaches and both kinds of fine-tuning, from
    each of `starts` ({name: a run or "imagenet"}; default: notebook 03's "leaky" ViT and the "clean" one trained
    without the unseen digits). Runs from a backbone other than "leaky" carry its name as their tag."""
    starts = starts or {"leaky": VIT_DEFAULT, "clean": clean_backbone_spec(known, unknown_train)}
    return {(b, approach, kind): open_set_spec(known, unknown_train, approach, kind, start, tag="" if b == "leaky" else b)
            for b, start in starts.items() for approach in ("a", "b") for kind in ("probe", "finetune")}

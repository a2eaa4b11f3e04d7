"""Known classes and unknown ones: a dataset split by class for open-set recognition, held in one place.

    k, rest = known_unknown_split(data.train, [3, 8])          # known images (labels 0, 1), the others (labels kept)
    ku = known_unknown_sets(data, [3, 8], unknown_train=[0, 1, 2, 5])      # a DataSplits, split for one task
    ku.train, ku.val, ku.eval_known, ku.eval_unknown           # known train / val / judged images, the unknowns
    ku.with_unknown("train")                                   # the known images plus as many "unknown" ones, label K

Two tasks use it: the standard protocol (Neal et al. 2018: train on the known classes only, tell the known test
images from the other classes' test images; `vitlab.experiments.openset_protocol`), and a model with an explicit
"unknown" output, trained on some other classes (`unknown_train`) and judged on the classes it never saw.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from .imageset import DataSplits, ImageSet


def known_unknown_split(data: ImageSet, known: Sequence[int], unknown_label: bool = False) -> tuple[ImageSet, ImageSet]:
    """Split `data` into (known, rest). Known labels are renumbered 0..K-1 in the order given; the rest keep
    their digit labels, or all become K when `unknown_label` (the explicit "unknown" class)."""
    known = list(known)
    if len(set(known)) != len(known) or not known:
        raise ValueError(f"known classes must be distinct and non-empty, got {known}")
    classes = len(data.info.classes)
    if not all(0 <= k < classes for k in known):
        raise ValueError(f"known classes must be in 0..{classes - 1}, got {known}")
    names = [data.info.classes[k] for k in known]
    k = data.relabel({c: i for i, c in enumerate(known)}, names)
    others = {c: c for c in range(classes) if c not in known}
    rest = data.subset(torch.nonzero(torch.isin(data.labels, torch.tensor(sorted(others), dtype=torch.long))).flatten())
    if unknown_label:
        rest = data.relabel({c: len(known) for c in others}, names + ["unknown"])
    return k, rest


def of_classes(data: ImageSet, classes: Sequence[int]) -> ImageSet:
    """The images of `data` whose label is one of `classes`, labels kept, in the set's order."""
    return data.subset(torch.nonzero(torch.isin(data.labels, torch.tensor(list(classes), dtype=torch.long))).flatten())


def with_unknown(known_set: ImageSet, unknowns: ImageSet, known: Sequence[int], unknown: Sequence[int],
                 seed: int = 1) -> ImageSet:
    """`known_set` (the `known` classes, labels 0..K-1) plus as many images drawn from `unknowns` (images of the
    `unknown` classes, by `seed`), labelled K, "unknown": what a model with an explicit unknown output trains on.
    The info's `label_map` records it (known class -> 0..K-1, unknown class -> K, any other -> -1), so a checkpoint
    trained on it can relabel the dataset again."""
    known, unknown = list(known), list(unknown)
    u = unknowns.take(len(known_set), seed=seed)
    K = len(known)
    label_map = tuple(known.index(d) if d in known else K if d in unknown else -1
                      for d in range(len(known_set.info.label_map)))
    info = dataclasses.replace(known_set.info, classes=tuple(known_set.info.classes) + ("unknown",),
                               label_map=label_map)
    return dataclasses.replace(known_set, images=torch.cat([known_set.images, u.images]),
                               labels=torch.cat([known_set.labels, torch.full((len(u),), K)]), info=info,
                               name=f"{known_set.name}+unknown")


@dataclass
class KnownUnknown:
    """A dataset split for one open-set task. Known images are labelled 0..K-1 (in the order of `known`); unknown
    ones keep their dataset labels."""

    known: list  # the known classes, in label order
    unknown: list  # the classes that play "unknown" when the model is judged; no model of the task trains on them
    train: ImageSet  # known training images (the kNN scores' bank too)
    val: ImageSet  # known validation images, what training reports on
    eval_known: ImageSet  # known images of the judged split (`eval_split`)
    eval_unknown: ImageSet  # the `unknown` classes' images of the judged split
    eval_split: str = "test"  # the judged split: "test" to report, "val" to choose
    unknown_train: list = field(default_factory=list)  # classes an explicit "unknown" output learns from (or none)
    train_unknown: Optional[ImageSet] = None  # the `unknown_train` classes' training images (None without them)
    val_unknown: Optional[ImageSet] = None  # their validation images

    @property
    def seen(self) -> list:
        """Every class some model of the task may train on: the known ones and the unknown-train ones, sorted."""
        return sorted(self.known + self.unknown_train)

    def with_unknown(self, split: str = "train", seed: int = 1) -> ImageSet:
        """The known images of `split` ("train" or "val") plus as many `unknown_train` images, labelled K."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        unknowns = getattr(self, f"{split}_unknown")
        if unknowns is None:
            raise ValueError("this split has no unknown_train classes to draw 'unknown' images from")
        return with_unknown(getattr(self, split), unknowns, self.known, self.unknown_train, seed)


def known_unknown_sets(data: DataSplits, known: Sequence[int], unknown_train: Sequence[int] = (),
                       eval_split: str = "test") -> KnownUnknown:
    """Split `data` for the `known` classes: their training, validation and `eval_split` images; the images of the
    `eval_split` of every class neither known nor in `unknown_train`; and, with `unknown_train`, those classes'
    training and validation images."""
    known, unknown_train = list(known), list(unknown_train)
    if set(known) & set(unknown_train):
        raise ValueError(f"a class cannot be both known and unknown: {sorted(set(known) & set(unknown_train))}")
    if eval_split not in ("val", "test"):
        raise ValueError(f"eval_split must be 'val' or 'test', got {eval_split!r}")
    unknown = [d for d in range(len(data.info.classes)) if d not in known + unknown_train]
    train, train_rest = known_unknown_split(data.train, known)
    val, val_rest = known_unknown_split(data.val, known)
    eval_known, eval_rest = known_unknown_split(data.val if eval_split == "val" else data.test, known)
    if not unknown_train:  # the rest is exactly the unknown classes
        return KnownUnknown(known, unknown, train, val, eval_known, eval_rest, eval_split)
    return KnownUnknown(known, unknown, train, val, eval_known, of_classes(eval_rest, unknown), eval_split,
                        unknown_train, of_classes(train_rest, unknown_train), of_classes(val_rest, unknown_train))

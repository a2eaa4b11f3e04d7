"""What vitlab knows about each dataset: its folder, class names and normalisation constants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .idx import DataError


@dataclass(frozen=True)
class DatasetInfo:
    name: str  # our name for it
    folder: str  # torchvision's folder under the data root
    classes: tuple  # class names, index = label
    mean: float  # pixel mean of the training set, in [0, 1]
    std: float  # pixel standard deviation of the training set
    label_map: Optional[tuple] = None  # relabelled sets: the dataset's class c -> label_map[c] (-1 = left out)


DATASETS = {
    "mnist": DatasetInfo("mnist", "MNIST", tuple(str(i) for i in range(10)), 0.1307, 0.3081),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        0.2860,
        0.3530,
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}") from None

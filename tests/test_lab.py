"""The main job: `make lab` starts JupyterLab on the notebooks, as root too (the default user in containers)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

NOTEBOOKS = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lab_server_starts_and_lists_the_notebooks(tmp_path):
    """Exactly what `make lab` runs (`vitlab lab $(LAB_ARGS)`), on a free loopback port without a browser."""
    port, token = _free_port(), "vitlab-test-token"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    proc = subprocess.Popen([sys.executable, "-m", "vitlab", "lab", "--no-browser", f"--port={port}",
                             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}/api/contents/notebooks?token={token}"
    try:
        t0, listing = time.monotonic(), None
        while listing is None:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() - t0 < 120, "JupyterLab did not answer within 2 minutes"
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    listing = json.load(r)
            except OSError:
                time.sleep(0.5)
        names = sorted(c["name"] for c in listing["content"] if c["type"] == "notebook")
        assert names == NOTEBOOKS and "01_load_data.ipynb" in names
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=10) as r:
            assert r.status == 200 and b"JupyterLab" in r.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    if os.geteuid() == 0:
        assert "running as root (a container?), so JupyterLab is started with --allow-root" in err

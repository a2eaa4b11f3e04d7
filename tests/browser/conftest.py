"""Browser tests: the notebooks' widgets driven in a real JupyterLab, in a real (headless) Chromium.

Fixtures
    lab_server   (session) a JupyterLab server on 127.0.0.1 (free port, no token) serving the repository root; its
                 kernels run in FAST mode (CI=1, TQDM_DISABLE=1)
    browser      (session) Debian's Chromium (`chromium` on PATH), driven by Playwright for Python; Playwright's own
                 browser downloads are not used
    page         (function) a fresh 1400x1000 tab whose relative URLs (page.goto("/lab")) go to `lab_server`
The helpers that drive a notebook (open_notebook, run_all, ...) are in lab.py.

A failing test leaves a screenshot of its page in tests/browser/artifacts/<test name>.png, and the server's log
beside it (<test name>.lab.log); the folder is ignored by git.

The notebooks are never written: autosave is off (a user-settings override) and nothing saves. The server's config,
data (the trust database), runtime files, user settings and workspaces are in a temporary folder, not in ~/.jupyter
nor in the repository.

Without Chromium (Debian: `apt-get install chromium`) or Playwright (`pip install -e '.[dev]'`) the tests skip,
saying why; under VITLAB_REQUIRE_BROWSER=1 (set by `.ci/run`, so in CI) they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .lab import REPO

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
REQUIRE_BROWSER = os.environ.get("VITLAB_REQUIRE_BROWSER", "") not in ("", "0")

SERVER_START_TIMEOUT = 120.0  # s: JupyterLab's first start on a busy two-core machine

CHROMIUM_ARGS = [
    "--no-sandbox",  # needed as root (containers, CI); harmless otherwise
    "--disable-gpu",
    "--disable-dev-shm-usage",  # small /dev/shm in containers
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# JupyterLab user settings for the test server (a temporary folder): never autosave (the notebook on disk must not
# change), every cell attached to the DOM (so the prompts seen are all the cells'), no news or update checks.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/apputils-extension/sessionDialogs": {"skipKernelRestartDialog": True},
}


# ---------------------------------------------------------------------------------------------- availability


def _unavailable() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    if shutil.which("chromium") is None:
        return "no `chromium` on PATH (Debian: apt-get install chromium); Playwright's own browsers are not used"
    return None


@pytest.fixture(scope="session", autouse=True)
def _browser_available():
    """Skip every browser test when Chromium or Playwright is missing; fail instead under VITLAB_REQUIRE_BROWSER=1."""
    why = _unavailable()
    if why is not None:
        if REQUIRE_BROWSER:
            pytest.fail(f"VITLAB_REQUIRE_BROWSER=1 but {why}", pytrace=False)
        pytest.skip(why)


# ---------------------------------------------------------------------------------------------- JupyterLab server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_tree(pid: int, timeout: float = 10.0) -> None:
    """Terminate a process and all its descendants (the server's kernels), then kill what is left."""
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = root.children(recursive=True) + [root]
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=timeout)


class LabServer:
    """A running JupyterLab: `url` (no trailing slash), `log` (its output), `proc`."""

    def __init__(self, url: str, log: Path, proc: subprocess.Popen):
        self.url, self.log, self.proc = url, log, proc

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory) -> LabServer:
    """A JupyterLab server on 127.0.0.1 (free port, no token, no password) serving the repository root, its kernels
    in FAST mode (CI=1, TQDM_DISABLE=1). Its config, data, runtime, settings and workspaces are in a temporary folder.
    The whole process tree (kernels included) is ended at the end of the session."""
    tmp = tmp_path_factory.mktemp("jupyter")
    settings = tmp / "user-settings"
    for plugin, values in LAB_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    for d in ("config", "data", "runtime", "workspaces"):
        (tmp / d).mkdir()
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the kernels use the inline backend, as for a person (tests/conftest.py sets Agg)
    env.pop("JUPYTER_TOKEN", None)
    env.update(
        CI="1",
        TQDM_DISABLE="1",
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
    )
    port = _free_port()
    cmd = [
        sys.executable, "-m", "jupyter", "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={REPO}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
        # Opening a notebook makes a "checkpoint" copy; an absolute folder keeps it out of notebooks/.ipynb_checkpoints.
        f"--FileCheckpoints.checkpoint_dir={tmp / 'checkpoints'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = tmp / "lab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    server = LabServer(f"http://127.0.0.1:{port}", log, proc)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(f"{server.url}/api/status", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not answer in {SERVER_START_TIMEOUT:.0f} s:\n{server.log_tail()}")
            time.sleep(0.5)
        yield server
    finally:
        _kill_tree(proc.pid)


# ---------------------------------------------------------------------------------------------- browser and page


def _snapshot(folder: Path) -> dict:
    """Every file under `folder` (hidden ones too, e.g. .ipynb_checkpoints/) with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium (`chromium` on PATH) driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, lab_server):
    """A fresh tab (1400x1000) in its own browser context; relative URLs (page.goto("/lab")) go to `lab_server`.
    Afterwards, fails the test if a notebook it opened (or its checkpoint) was written."""
    before = _snapshot(REPO / "notebooks")
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=lab_server.url)
    context.set_default_timeout(60_000)
    pg = context.new_page()
    pg.lab_server = lab_server  # for the failure hook's server log
    pg.opened_notebooks = []  # open_notebook adds to it
    try:
        yield pg
    finally:
        context.close()  # leaves without saving: autosave is off and nothing asks to save
    # The notebooks this page opened, and their checkpoints, are as they were (other files under notebooks/ may be
    # someone's work in progress in a shared checkout, so only these are checked).
    after = _snapshot(REPO / "notebooks")
    stems = tuple(Path(name).stem for name in pg.opened_notebooks)
    changed = sorted(k for k in before.keys() | after.keys()
                     if stems and before.get(k) != after.get(k) and Path(k).name.startswith(stems))
    assert not changed, f"the browser test wrote to notebooks/: {changed}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure (in setup or the test), save the page to artifacts/<test name>.png and the server log beside it."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when not in ("setup", "call") or not rep.failed:
        return
    pg = item.funcargs.get("page") if hasattr(item, "funcargs") else None
    if pg is None:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", item.name)
    from playwright.sync_api import Error as PlaywrightError

    try:
        shot = ARTIFACTS / f"{name}.png"
        pg.screenshot(path=str(shot), full_page=True)
        rep.sections.append(("browser artifacts", f"screenshot: {shot}"))
    except (PlaywrightError, OSError) as e:  # a crashed or closed page: say so, do not mask the failure
        rep.sections.append(("browser artifacts", f"no screenshot: {e}"))
    server = getattr(pg, "lab_server", None)
    if server is not None:
        try:
            shutil.copyfile(server.log, ARTIFACTS / f"{name}.lab.log")
        except OSError:
            pass



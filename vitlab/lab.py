"""`vitlab lab` (what `make lab` runs): JupyterLab on the notebook series, opening notebook 01."""

from __future__ import annotations

import os
import sys

from .paths import project_dir


def start_lab(extra: list) -> int:
    """JupyterLab on the checkout, opening notebook 01, as `make lab` runs it; as root (a container, a classroom
    image) with --allow-root. JupyterLab replaces this process, so Ctrl-C and signals reach it directly; `extra`
    options go to JupyterLab. Returns 2 (after one line) only when there are no notebooks to open."""
    notebooks = project_dir("VITLAB_NOTEBOOKS", "notebooks")
    if not (notebooks / "01_load_data.ipynb").is_file():
        print(f"vitlab: error: {notebooks}: no vitlab notebooks here (run from a vitlab checkout, or set "
              f"VITLAB_NOTEBOOKS)", file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={notebooks.parent}",
           f"--LabApp.default_url=/lab/tree/{notebooks.name}/01_load_data.ipynb", *extra]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        print("vitlab: running as root (a container?), so JupyterLab is started with --allow-root", file=sys.stderr,
              flush=True)
        cmd.append("--allow-root")
    sys.stdout.flush()
    os.execv(sys.executable, cmd)

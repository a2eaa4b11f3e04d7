"""Where vitlab keeps things on disk: the dataset cache and the runs."""

from __future__ import annotations

import os
from pathlib import Path


def project_dir(env_var: str, folder: str) -> Path:
    """``$env_var`` if set; else ``<folder>`` in the checkout the package lives in; else ``./<folder>``."""
    env = os.environ.get(env_var)
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").exists():
        return checkout / folder
    return Path.cwd() / folder


def shown(path: str | os.PathLike) -> str:
    """A path as messages print it: relative to the checkout when inside it (``runs/vit_tiny_mnist/...``), so
    notebooks' saved outputs and logs never carry this machine's absolute paths; unchanged otherwise, and a relative
    path (or a source that is no path, such as the offline fallback's name) is always left as given."""
    p = Path(path)
    if not p.is_absolute():
        return str(path)
    checkout = Path(__file__).resolve().parent.parent
    try:
        return str(p.resolve().relative_to(checkout))
    except ValueError:
        return str(path)

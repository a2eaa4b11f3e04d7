"""Where vitlab keeps things on disk: the dataset cache and the runs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

CHECKPOINT = "checkpoint.pt"  # a run's checkpoint, inside its folder: runs/<name>/checkpoint.pt


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


def ensure_writable(folder: Path, what: str) -> None:
    """Make `folder` if missing and check that a file can be written into it, so that an output place that cannot
    take the results stops a command in one line (a ValueError naming `what`) before any work, not after it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise ValueError(f"{what} {folder}: {blocker} is a file, not a folder") from None
    except OSError as e:
        raise ValueError(f"{what} {folder}: cannot write there ({e.strerror or type(e).__name__})") from None


def output_names(paths, suffix: str) -> list:
    """One output file name per input file, none the same: `<stem><suffix>`; where two inputs share a stem
    (seven.png and seven.jpg) their whole names, and where those clash too (a/seven.png, b/seven.png) a number."""
    stems = [Path(p).stem for p in paths]
    names = [f"{s if stems.count(s) == 1 else Path(p).name}{suffix}" for s, p in zip(stems, paths)]
    seen: dict = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if names.count(n) == 1 else f"{n[:-len(suffix)]}.{seen[n]}{suffix}")
    return out

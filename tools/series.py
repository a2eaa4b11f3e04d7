"""One full pass of the series: every notebook, in order, executed in place in a fresh kernel, from an empty runs/.

    make series                        # start a pass, or carry on with the one under way
    python tools/series.py [--new] [--only 07 08] [--fast] [--notebooks DIR] [--runs DIR] [--log FILE]

A notebook's figures are stored with a palette of at most 256 colours (tools/nbimages.py), which keeps the
committed series small. A pass starts from an empty runs directory: whatever is there (apart from FAST runs in runs/fast/) is moved aside to
runs.before-series-<time>/, never deleted. Each notebook then runs top to bottom (without CI set, so the full run;
--fast sets it) and is written back in place only when every cell succeeded; a failing notebook is left as it was,
its partly executed copy goes to <runs>/series/<name>.failed.ipynb, and the pass stops with a one-line error.

The log (docs/series.json) records the machine and, for each notebook, its wall time, the commit it ran at and
what tools/nbcheck.py finds in its new outputs. A pass takes longer than a working session on 2 CPU cores, so
running the command again carries on with the first notebook not yet done, and a notebook interrupted half-way
resumes its training where `train_or_load` left it (a checkpoint every epoch). --only re-runs the named notebooks
within the pass (e.g. after fixing one); --new starts a pass afresh.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import nbcheck  # noqa: E402
import nbimages  # noqa: E402


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def commit(notebook: Path) -> str:
    """HEAD, with '+changes' when the package or this notebook differ from it (the pass's own rewrites of earlier
    notebooks don't count: they are its outputs, not what this notebook runs)."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "vitlab", str(notebook)],
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+changes" if dirty else "") if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    # Torch's thread count changes a run's numbers (and its time), so the pass records what its kernels inherit.
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "python": platform.python_version(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset (torch uses every core)")}


def select(paths: list[Path], only: list[str]) -> list[Path]:
    """The notebooks named by number or name prefix (``07``, ``07_finetune``), in series order."""
    chosen = [p for p in paths if any(p.stem.startswith(o) for o in only)]
    missing = [o for o in only if not any(p.stem.startswith(o) for p in paths)]
    if missing:
        raise SystemExit(f"series: no notebook matches {', '.join(missing)}")
    return chosen


def start_pass(runs: Path, log_path: Path, mode: str) -> dict:
    """A new pass: an empty runs directory (earlier runs moved aside, FAST ones kept) and a fresh log."""
    if runs.exists():
        kept = [p for p in runs.iterdir() if p.name != "fast"]
        if kept:
            aside = runs.parent / f"{runs.name}.before-series-{datetime.datetime.now():%Y%m%d-%H%M%S}"
            aside.mkdir()
            for p in kept:
                shutil.move(str(p), aside / p.name)
            print(f"series: moved {len(kept)} earlier runs aside to {aside.name}/ (nothing deleted)")
    return {"started": now(), "mode": mode, "machine": machine(), "notebooks": {}}


def save_log(log: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(log, indent=1) + "\n")
    tmp.replace(path)


TQDM_TEXT = re.compile(r"\d+%\|.*\| *[\d.?]+[kM]?/[\d.?]+[kM]? \[")  # tqdm's text: " 40%|####  | 86/214 [00:03<..."
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def drop_progress_bars(nb) -> int:
    """Remove tqdm's notebook progress bars from `nb`'s outputs, and the widget state only they used; the number of
    bars removed. Bars are for a live session (the trainer's vanish at each epoch's end) and the pass sets
    TQDM_DISABLE, so this only catches bars from code that ignores it. Other widgets (06's explorer, 11's pad) keep
    their state, so that a saved notebook still shows them."""
    removed = 0
    for cell in nb.cells:
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            text = data.get("text/plain", "")
            if WIDGET_VIEW in data and TQDM_TEXT.search("".join(text) if isinstance(text, list) else text):
                removed += 1
            else:
                kept.append(out)
        if "outputs" in cell:
            cell["outputs"] = kept
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state")
    if removed and state is not None:
        todo = [out["data"][WIDGET_VIEW]["model_id"] for cell in nb.cells for out in cell.get("outputs", [])
                if WIDGET_VIEW in out.get("data", {})]
        used = set()
        while todo:  # every model a remaining view reaches, through IPY_MODEL_<id> references
            m = todo.pop()
            if m in used or m not in state:
                continue
            used.add(m)
            todo += re.findall(r"IPY_MODEL_(\w+)", json.dumps(state[m]))
        for m in list(state):
            if m not in used:
                del state[m]
        if not state:
            del nb.metadata["widgets"]
    return removed


def execute(path: Path, runs: Path) -> float:
    """Run one notebook top to bottom in a fresh kernel; write it back only if every cell succeeded."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=None, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    try:
        client.execute()
    except (CellExecutionError, KeyboardInterrupt) as e:
        failed = runs / "series" / f"{path.stem}.failed.ipynb"
        failed.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, failed)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise RuntimeError(f"{path.name} failed ({e.ename}: {e.evalue}); partial run in {failed}") from None
    seconds = time.perf_counter() - t0
    drop_progress_bars(nb)
    nbimages.compact_notebook(nb)  # figures in a 256-colour palette: the committed series stays small
    nbformat.write(nb, path)
    return seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--new", action="store_true", help="start a new pass even if one is under way")
    ap.add_argument("--only", nargs="+", default=[], metavar="NN", help="(re-)run just these notebooks in the pass")
    ap.add_argument("--fast", action="store_true", help="FAST mode (CI=1): for trying the pass itself")
    ap.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    ap.add_argument("--runs", type=Path, help="the runs directory (default: $VITLAB_RUNS or runs/)")
    ap.add_argument("--log", type=Path, default=ROOT / "docs" / "series.json")
    a = ap.parse_args(argv)

    paths = sorted(a.notebooks.glob("[0-9]*.ipynb"))
    if not paths:
        ap.error(f"no notebooks in {a.notebooks}")
    runs = a.runs or Path(os.environ.get("VITLAB_RUNS") or ROOT / "runs")
    os.environ["VITLAB_RUNS"] = str(runs)  # the kernels inherit this process's environment
    os.environ["TQDM_DISABLE"] = "1"  # progress bars are for live sessions, not committed outputs
    os.environ.pop("MPLBACKEND", None)  # the kernels' inline backend draws the figures
    if a.fast:
        os.environ["CI"] = "1"
    else:
        os.environ.pop("CI", None)

    log = None
    if a.log.exists() and not a.new:
        try:
            log = json.loads(a.log.read_text())
        except json.JSONDecodeError as e:
            ap.error(f"{a.log} is not a series log ({e}); move it away or pass --new")
        if log.get("mode") != ("fast" if a.fast else "full"):
            ap.error(f"the pass under way is a {log.get('mode')} one; pass --new to start a {'fast' if a.fast else 'full'} one")
        if not a.only and all(log["notebooks"].get(p.stem, {}).get("status") == "done" for p in paths):
            log = None  # the last pass is complete: start a new one
    if log is None:
        if a.only:
            ap.error("--only re-runs notebooks within a pass under way; there is none (run without --only first)")
        log = start_pass(runs, a.log, "fast" if a.fast else "full")
        save_log(log, a.log)

    todo = select(paths, a.only) if a.only else [p for p in paths if log["notebooks"].get(p.stem, {}).get("status") != "done"]
    print(f"series: {len(todo)} of {len(paths)} notebooks to run ({log['mode']} mode), pass started {log['started']}")
    for p in todo:
        entry = log["notebooks"][p.stem] = {"status": "running", "started": now(), "commit": commit(p)}
        save_log(log, a.log)
        print(f"series: {p.name} ...", flush=True)
        try:
            entry["seconds"] = round(execute(p, runs), 1)
        except KeyboardInterrupt:
            entry["status"] = "interrupted"
            save_log(log, a.log)
            print(f"series: interrupted in {p.name}; run the same command to carry on", file=sys.stderr)
            return 130
        except RuntimeError as e:
            entry.update(status="failed", error=str(e))
            save_log(log, a.log)
            print(f"series: {e}", file=sys.stderr)
            return 1
        entry.update(status="done", finished=now(), problems=nbcheck.output_problems(p))
        save_log(log, a.log)
        print(f"series: {p.name} done in {entry['seconds']:.0f} s" +
              "".join(f"\n  {line}" for line in entry["problems"]), flush=True)

    done = [(k, v) for k, v in log["notebooks"].items() if v.get("status") == "done"]
    print(f"\n{'notebook':38s} {'seconds':>8s}  commit")
    for k, v in done:
        print(f"{k:38s} {v['seconds']:>8.0f}  {v['commit']}")
    print(f"{'total':38s} {sum(v['seconds'] for _, v in done):>8.0f}  on {log['machine']['cpu']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

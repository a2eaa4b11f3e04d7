"""`make series` (tools/series.py): notebooks run in order in fresh kernels, written back only on success, timed in
a log, resumable across sessions, from an empty runs directory with nothing deleted."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import series  # noqa: E402


def _notebook(path, *sources):
    cells = [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": s, "outputs": [], "execution_count": None}
             for i, s in enumerate(sources)]
    path.write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                            "language": "python"}},
                                "nbformat": 4, "nbformat_minor": 5}))
    return path


@pytest.fixture
def series_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    # The first notebook leaves a file in the runs directory that the second reads: order and VITLAB_RUNS reach the kernel.
    _notebook(nbs / "01_first.ipynb", "import os, pathlib\nruns = pathlib.Path(os.environ['VITLAB_RUNS'])\n"
              "runs.mkdir(exist_ok=True)\n(runs / 'from_01.txt').write_text('seen')\nprint('FAST' if os.environ.get('CI') else 'full')")
    _notebook(nbs / "02_second.ipynb", "import os, pathlib\nprint((pathlib.Path(os.environ['VITLAB_RUNS']) / 'from_01.txt').read_text())")
    return tmp_path


def _run(d, *extra):
    return series.main(["--notebooks", str(d / "notebooks"), "--runs", str(d / "runs"), "--log", str(d / "log.json"), *extra])


def _outputs(path):
    return ["".join(o.get("text", "")) for c in json.loads(path.read_text())["cells"] for o in c["outputs"]]


def test_a_pass_runs_every_notebook_in_order_and_logs_its_time(series_dir):
    assert _run(series_dir) == 0
    assert _outputs(series_dir / "notebooks" / "01_first.ipynb") == ["full\n"]
    assert _outputs(series_dir / "notebooks" / "02_second.ipynb") == ["seen\n"]
    log = json.loads((series_dir / "log.json").read_text())
    assert log["mode"] == "full" and log["machine"]["cpu"]
    assert [k for k in log["notebooks"]] == ["01_first", "02_second"]
    assert all(v["status"] == "done" and v["seconds"] > 0 and v["problems"] == [] for v in log["notebooks"].values())


def test_a_failure_keeps_the_notebook_and_the_pass_carries_on_after_the_fix(series_dir, capsys):
    nbs = series_dir / "notebooks"
    broken = _notebook(nbs / "03_third.ipynb", "print('partly')", "raise ValueError('bad digit')")
    before = broken.read_text()
    assert _run(series_dir) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "03_third.ipynb failed" in err[0] and "ValueError: bad digit" in err[0]
    assert broken.read_text() == before  # the committed notebook is untouched
    assert _outputs(series_dir / "runs" / "series" / "03_third.failed.ipynb")[0] == "partly\n"
    log = json.loads((series_dir / "log.json").read_text())
    assert log["notebooks"]["03_third"]["status"] == "failed"

    first = (nbs / "01_first.ipynb").stat().st_mtime_ns
    _notebook(broken, "print('fixed')")
    assert _run(series_dir) == 0  # carries on: only the notebook not yet done runs
    assert (nbs / "01_first.ipynb").stat().st_mtime_ns == first
    assert _outputs(broken) == ["fixed\n"]


def test_a_new_pass_moves_earlier_runs_aside_and_keeps_fast_runs(series_dir):
    runs = series_dir / "runs"
    (runs / "old_run").mkdir(parents=True)
    (runs / "old_run" / "checkpoint.pt").write_text("weights")
    (runs / "fast").mkdir()
    assert _run(series_dir, "--fast") == 0
    (aside,) = series_dir.glob("runs.before-series-*")
    assert (aside / "old_run" / "checkpoint.pt").read_text() == "weights"
    assert sorted(p.name for p in runs.iterdir()) == ["fast", "from_01.txt"]
    assert _outputs(series_dir / "notebooks" / "01_first.ipynb") == ["FAST\n"]


def test_only_needs_a_pass_and_a_known_notebook(series_dir):
    with pytest.raises(SystemExit):
        _run(series_dir, "--only", "01")
    assert _run(series_dir) == 0
    with pytest.raises(SystemExit, match="no notebook matches 07"):
        _run(series_dir, "--only", "07")
    with pytest.raises(SystemExit):
        _run(series_dir, "--fast")  # the pass on record is a full one


def test_progress_bars_are_dropped_and_other_widgets_kept():
    import nbformat

    view = series.WIDGET_VIEW

    def out(model, text):
        return nbformat.v4.new_output("display_data", data={view: {"model_id": model, "version_major": 2,
                                                                   "version_minor": 0}, "text/plain": text})

    cell = nbformat.v4.new_code_cell("train(); explorer")
    cell.outputs = [out("bar1", "epoch 1/53:  40%|####      | 86/214 [00:03<00:05, 25.1it/s]"),
                    nbformat.v4.new_output("stream", name="stdout", text="epoch   1/53  val acc 97.1%\n"),
                    out("box", "VBox(children=(HTML(value='explorer'),))")]
    nb = nbformat.v4.new_notebook(cells=[cell])
    state = {"bar1": {"state": {"children": ["IPY_MODEL_bar1p"]}}, "bar1p": {"state": {}},
             "box": {"state": {"children": ["IPY_MODEL_html"]}}, "html": {"state": {}}}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": state}}
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]  # the notebook's copy
    assert series.drop_progress_bars(nb) == 1
    assert [o.get("name") or o["data"]["text/plain"][:4] for o in nb.cells[0].outputs] == ["stdout", "VBox"]
    assert set(state) == {"box", "html"}  # the explorer and what it references stay; the bar's models go
    cell.outputs = cell.outputs[:1] + [out("bar2", "epoch 2/53:   0%|          | 0/214 [00:00<?, ?it/s]")]
    state["bar2"] = {"state": {}}
    assert series.drop_progress_bars(nb) == 1 and "widgets" not in nb.metadata  # nothing left: no widget state

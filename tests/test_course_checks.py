"""The series as a course: clean committed outputs and exercises with checked solutions (tools/nbcheck.py).

The solutions themselves run with every other cell when pytest executes the notebooks (--nbval-lax), so a broken
exercise fails there; these tests check the form: that each exercise asks for a prediction, hides its solution and
asserts its expected outcome, and that what a reader sees in the committed outputs is clean.
"""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import nbcheck  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# Notebooks whose committed outputs predate the one full pass of the series (`make series`): they still show what
# this test forbids. Strict: a listed notebook that has become clean fails until it is taken off the list.
AWAITING_SERIES_RUN: set[str] = set()
# Notebooks that do not have their exercises yet. Strict in the same way.
AWAITING_EXERCISES: set[str] = set()


def _marks(path, pending, why):
    return pytest.param(path, id=path.stem,
                        marks=[pytest.mark.xfail(strict=True, reason=why)] if path.stem in pending else [])


@pytest.mark.parametrize("path", [_marks(p, AWAITING_SERIES_RUN, "outputs predate the full series run")
                                  for p in NOTEBOOKS])
def test_committed_outputs_are_clean(path):
    assert nbcheck.output_problems(path) == []


def test_notebooks_total_under_6_mb():
    assert nbcheck.size_problems(NOTEBOOKS) == []


@pytest.mark.parametrize("path", [_marks(p, AWAITING_EXERCISES, "exercises not written yet") for p in NOTEBOOKS])
def test_exercises_follow_the_convention(path):
    assert nbcheck.exercise_problems(path) == []


# --- the checker itself, on notebooks built here ---------------------------------------------------------------

def _cell(kind, source, outputs=(), count=None, tags=(), hidden=False):
    """`hidden`: True hides the source (and a code cell's outputs), "source" only the source."""
    cell = {"cell_type": kind, "metadata": {}, "source": source}
    if tags:
        cell["metadata"]["tags"] = list(tags)
    if hidden:
        outputs_too = hidden is True and kind == "code"
        cell["metadata"]["jupyter"] = {"source_hidden": True, **({"outputs_hidden": True} if outputs_too else {})}
    if kind == "code":
        cell.update(outputs=list(outputs), execution_count=count)
    return cell


def _stream(text, name="stdout"):
    return {"output_type": "stream", "name": name, "text": text}


def _write(tmp_path, cells, name="nb.ipynb"):
    p = tmp_path / name
    p.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return p


def _exercise(n, predict=True, assert_=True, hidden=True, expected=True):
    prompt = f"### Exercise {n}: something\n" + ("**Predict first:** what happens?\n" if predict else "") + "Try it."
    code = "x = 1 + 1\n" + ("assert x == 2\n" if assert_ else "print(x)\n")
    words = "**Expected outcome:** two." if expected else "It is two."
    return [_cell("markdown", prompt), _cell("code", code, tags=["solution"], hidden=hidden),
            _cell("markdown", words, tags=["solution"], hidden=hidden)]


def test_clean_outputs_pass(tmp_path):
    p = _write(tmp_path, [_cell("markdown", "# Title"), _cell("code", "print(1)", [_stream("runs in runs/vit\n")], 1),
                          _cell("code", "print(2)", [_stream("see https://example.org/a/b/c\n")], 2)])
    assert nbcheck.output_problems(p) == []


@pytest.mark.parametrize("text, what", [
    ("loaded from /home/ann/vitlab/runs/x/checkpoint.pt\n", "an absolute path"),
    ("umap_.py:1952: UserWarning: n_jobs value 1 overridden\n", "a warning"),
    ("epoch 1  train acc nan%\n", "a nan"),
    ("the issue's target is met\n", "tracker words"),
])
def test_each_kind_of_noise_is_found(tmp_path, text, what):
    p = _write(tmp_path, [_cell("code", "f()", [_stream(text), _stream(text)], 1)])
    (line,) = nbcheck.output_problems(p)
    assert what in line and "and 1 more" in line


def test_stderr_errors_order_and_words_in_text_are_found(tmp_path):
    p = _write(tmp_path, [_cell("markdown", "Next: 07 (planned)"),
                          _cell("code", "a", [_stream("oops\n", "stderr")], 2),
                          _cell("code", "b", [{"output_type": "error", "ename": "KeyError", "evalue": "'x'",
                                               "traceback": []}], 1)])
    problems = "\n".join(nbcheck.output_problems(p))
    for words in ("tracker words in the text", "stderr", "KeyError", "execution counts"):
        assert words in problems


def test_an_nbval_marker_in_the_code_is_found(tmp_path):
    marked = _write(tmp_path, [_cell("code", "print(1)  # NBVAL_CHECK_OUTPUT", [_stream("1\n")], 1)], "marked.ipynb")
    assert any("nbval marker" in line for line in nbcheck.output_problems(marked))
    tagged = _write(tmp_path, [_cell("code", "print(1)", [_stream("1\n")], 1, tags=["nbval-check-output"])])
    assert nbcheck.output_problems(tagged) == []


def test_unexecuted_notebook_and_size_are_found(tmp_path, monkeypatch):
    p = _write(tmp_path, [_cell("code", "print(1)")])
    assert "no outputs" in nbcheck.output_problems(p)[0]
    monkeypatch.setattr(nbcheck, "MAX_TOTAL_BYTES", 10)
    assert "over" in nbcheck.size_problems([p])[0]


def test_a_well_formed_exercise_section_passes(tmp_path):
    p = _write(tmp_path, [_cell("markdown", "# Title"), _cell("markdown", "## Exercises")]
               + _exercise(1) + _exercise(2))
    assert nbcheck.exercise_problems(p) == []
    (first, second) = nbcheck.exercises(nbcheck.load(p))
    assert first["number"] == 1 and len(first["solution"]) == 2


@pytest.mark.parametrize("broken, words", [
    (dict(predict=False), "Predict first"),
    (dict(assert_=False), "asserts"),
    (dict(hidden=False), "not hidden"),
    (dict(hidden="source"), "outputs_hidden"),  # the source hidden, but its outputs would give the answer away
    (dict(expected=False), "Expected outcome"),
])
def test_a_broken_exercise_is_named(tmp_path, broken, words):
    p = _write(tmp_path, [_cell("markdown", "## Exercises")] + _exercise(1) + _exercise(2, **broken))
    (line,) = nbcheck.exercise_problems(p)
    assert "Exercise 2" in line and words in line


def test_too_few_exercises_or_none_at_all(tmp_path):
    one = _write(tmp_path, [_cell("markdown", "## Exercises")] + _exercise(1), "one.ipynb")
    assert any("1 exercises" in line for line in nbcheck.exercise_problems(one))
    none = _write(tmp_path, [_cell("markdown", "# Title")], "none.ipynb")
    assert len(nbcheck.exercise_problems(none)) == 2


def test_student_copy_drops_solutions_and_outputs(tmp_path):
    p = _write(tmp_path, [_cell("code", "print(1)", [_stream("1\n")], 1), _cell("markdown", "## Exercises")]
               + _exercise(1) + _exercise(2))
    out = tmp_path / "student"
    assert nbcheck.main(["student", str(out), str(p)]) == 0
    copy = json.loads((out / p.name).read_text())
    assert [c["cell_type"] for c in copy["cells"]] == ["code", "markdown", "markdown", "markdown"]
    assert copy["cells"][0]["outputs"] == [] and copy["cells"][0]["execution_count"] is None
    assert not any(nbcheck.is_solution(c) for c in copy["cells"])

"""Checks on the committed notebooks, and the learner's copy without solutions.

    python tools/nbcheck.py outputs   [NOTEBOOK ...]   # output hygiene: what a reader on GitHub would trip over
    python tools/nbcheck.py exercises [NOTEBOOK ...]   # every notebook's exercises follow the convention below
    python tools/nbcheck.py student OUT_DIR [NOTEBOOK ...]  # copies without the solution cells, outputs cleared

With no notebooks named, each command takes every notebook in notebooks/. `outputs` and `exercises` print one line
per problem and exit 1 when there is any.

The exercise convention (docs/teaching.md explains it for teachers):
- a notebook ends with a `## Exercises` section of 2 to 4 exercises;
- each opens with a markdown cell whose first line is `### Exercise <n>: <title>` and which asks the reader to
  predict before running (a line starting `**Predict first:**`);
- its solution follows in cells tagged `solution`, their source and outputs hidden in JupyterLab (metadata
  `jupyter.source_hidden`, and `jupyter.outputs_hidden` on code cells); at least one of them is code that asserts the expected outcome, so CI (FAST mode) fails
  when an exercise breaks, and one says the outcome in words (`**Expected outcome:**`).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
MAX_TOTAL_BYTES = 6_000_000  # all notebooks together, outputs included

EXERCISE_HEADING = re.compile(r"^### Exercise (\d+): \S")
# An absolute path: a slash-rooted path of two or more directories, or a home directory; not a URL's path.
ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])(?:/(?:[\w.+-]+/){2,}[\w.+-]*|~/[\w.+-]+/)")
WARNING = re.compile(r"\b\w*(?:Warning|DEPRECAT\w*)\b|^\s*warn(?:ing)?:", re.IGNORECASE | re.MULTILINE)
NAN = re.compile(r"\bnan\b", re.IGNORECASE)
# Words that belong to the project's tracker, not to a lesson.
TRACKER = re.compile(r"\b(?:the issue(?:'s)?|issue #?\d+|TODO|FIXME|placeholder)\b|\((?:planned|coming soon)\)", re.IGNORECASE)


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else source


def output_text(output: dict) -> str:
    """The text a reader sees of one output: streams, plain-text results, tracebacks; not images."""
    if output.get("output_type") == "stream":
        return _text(output.get("text", ""))
    if output.get("output_type") == "error":
        return "\n".join(output.get("traceback", []))
    data = output.get("data", {})
    return _text(data.get("text/plain", "")) + _text(data.get("text/markdown", ""))


def is_solution(cell: dict) -> bool:
    return "solution" in cell.get("metadata", {}).get("tags", [])


def output_problems(path: Path) -> list[str]:
    """What a reader of the committed outputs would trip over: absolute paths, warnings, nan, tracker words in
    outputs or text, errors, stderr, execution counts out of order, a notebook never run, nbval markers in code."""
    nb, name = load(path), Path(path).name
    problems = []
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if code and not any(c.get("outputs") for c in code):
        problems.append(f"{name}: no outputs (commit it after a full run)")
    counts = [c.get("execution_count") for c in code]
    ran = [n for n in counts if n is not None]
    if ran and (ran != list(range(1, len(ran) + 1)) or len(ran) != len(code)):
        problems.append(f"{name}: execution counts are not 1..{len(code)} in order (run it top to bottom in a fresh kernel)")
    for i, cell in enumerate(nb["cells"]):
        where = f"{name} cell {i}"
        if cell["cell_type"] == "markdown":
            m = TRACKER.search(_text(cell["source"]))
            if m:
                problems.append(f"{where}: tracker words in the text ({m.group(0)!r})")
            continue
        if cell["cell_type"] != "code":
            continue
        if re.search(r"#\s*NBVAL_", _text(cell["source"])):  # the learner's code stays clean: a cell tag says it
            problems.append(f"{where}: an nbval marker in the code (tag the cell nbval-check-output instead)")
        seen = {}  # one line per kind of problem and cell, with how many lines show it
        for out in cell.get("outputs", []):
            text = output_text(out)
            if out.get("output_type") == "error":
                seen.setdefault("an error", [f"{out.get('ename')}: {out.get('evalue')}", 0])[1] += 1
            if out.get("output_type") == "stream" and out.get("name") == "stderr" and text.strip():
                seen.setdefault("stderr", [text.strip().splitlines()[0], 0])[1] += 1
            for what, pattern in (("an absolute path", ABSOLUTE_PATH), ("a warning", WARNING), ("a nan", NAN),
                                  ("tracker words", TRACKER)):
                for line in text.splitlines():
                    if pattern.search(line):
                        seen.setdefault(what, [line.strip(), 0])[1] += 1
        for what, (line, n) in seen.items():
            more = f" and {n - 1} more" if n > 1 else ""
            problems.append(f"{where}: output shows {what}: {line[:100]!r}{more}")
    return problems


def size_problems(paths) -> list[str]:
    total = sum(Path(p).stat().st_size for p in paths)
    if total > MAX_TOTAL_BYTES:
        return [f"the notebooks total {total / 1e6:.1f} MB, over {MAX_TOTAL_BYTES / 1e6:.0f} MB (smaller figures)"]
    return []


def exercises(nb: dict) -> list[dict]:
    """The notebook's exercises: for each, its number, title, prompt and solution cells."""
    found, current = [], None
    for cell in nb["cells"]:
        src = _text(cell["source"])
        m = EXERCISE_HEADING.match(src) if cell["cell_type"] == "markdown" else None
        if m:
            current = {"number": int(m.group(1)), "title": src.splitlines()[0], "prompt": src, "solution": []}
            found.append(current)
        elif current is not None and is_solution(cell):
            current["solution"].append(cell)
        elif current is not None and cell["cell_type"] == "markdown" and src.lstrip().startswith("#"):
            current = None  # a new section ends the exercise
    return found


def exercise_problems(path: Path) -> list[str]:
    nb, name = load(path), Path(path).name
    cells = nb["cells"]
    heads = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and _text(c["source"]).startswith("## Exercises")]
    found = exercises(nb)
    problems = []
    if len(heads) != 1:
        problems.append(f"{name}: needs one '## Exercises' section (found {len(heads)})")
    if not 2 <= len(found) <= 4:
        problems.append(f"{name}: has {len(found)} exercises, not 2 to 4")
    if [e["number"] for e in found] != list(range(1, len(found) + 1)):
        problems.append(f"{name}: exercises are not numbered 1..{len(found)}")
    for e in found:
        where = f"{name} {e['title'].removeprefix('### ')!r}"
        if "**Predict first:**" not in e["prompt"]:
            problems.append(f"{where}: no '**Predict first:**' question")
        sol = e["solution"]
        if not any(c["cell_type"] == "code" and re.search(r"^\s*assert\b", _text(c["source"]), re.M) for c in sol):
            problems.append(f"{where}: no solution code cell (tagged 'solution') that asserts the expected outcome")
        if not any("**Expected outcome:**" in _text(c["source"]) for c in sol):
            problems.append(f"{where}: no solution cell saying '**Expected outcome:**'")
        hidden = lambda c: c.get("metadata", {}).get("jupyter", {})  # noqa: E731
        if any(not hidden(c).get("source_hidden") or (c["cell_type"] == "code" and not hidden(c).get("outputs_hidden"))
               for c in sol):
            problems.append(f"{where}: a solution cell is not hidden (metadata jupyter.source_hidden, and "
                            f"jupyter.outputs_hidden on code: its outputs would answer before the learner predicts)")
    stray = [i for i, c in enumerate(cells) if is_solution(c) and (not heads or i < heads[0])]
    if stray:
        problems.append(f"{name}: solution cells outside the Exercises section (cells {stray})")
    return problems


def student_copy(nb: dict) -> dict:
    """The learner's copy: solution cells removed, outputs and execution counts cleared."""
    nb = copy.deepcopy(nb)
    nb["cells"] = [c for c in nb["cells"] if not is_solution(c)]
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            c["outputs"], c["execution_count"] = [], None
    return nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for cmd in ("outputs", "exercises"):
        sub.add_parser(cmd).add_argument("notebooks", nargs="*", type=Path)
    st = sub.add_parser("student")
    st.add_argument("out", type=Path)
    st.add_argument("notebooks", nargs="*", type=Path)
    a = ap.parse_args(argv)
    paths = a.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    for p in paths:
        if not p.is_file():
            ap.error(f"no such notebook: {p}")
    if a.command == "student":
        a.out.mkdir(parents=True, exist_ok=True)
        for p in paths:
            (a.out / p.name).write_text(json.dumps(student_copy(load(p)), indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {len(paths)} notebooks without solutions to {a.out}")
        return 0
    check = output_problems if a.command == "outputs" else exercise_problems
    problems = [line for p in paths for line in check(p)]
    if a.command == "outputs" and not a.notebooks:
        problems += size_problems(paths)
    print("\n".join(problems) if problems else f"{len(paths)} notebooks: no problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

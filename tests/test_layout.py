"""The package's shape: each layer imports only from the layers below it, modules stay small, `import vitlab` stays
light. docs/architecture.md describes the layers these tests enforce."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vitlab"

# Lower number = lower layer. A module may import from its own layer and any layer below, never above.
LAYERS = {
    "core": 0,  # vitlab/config.py, paths.py, images.py, _lazy.py: import nothing of vitlab but each other
    "data": 1,
    "models": 2,
    "training": 3,
    "analysis": 4,
    "methods": 5,
    "viz": 6,
    "apps": 7,  # the predict / drawing-pad application: the digit reader, the digit check, the pad, run reports
    "experiments": 8,  # the series' runs as data and the runner: nothing below imports it
    "top": 9,  # vitlab/__init__.py, __main__.py, cli.py, cli_train.py, lab.py: the entry points
}
TOP_MODULES = {"__init__", "__main__", "cli", "cli_train", "lab"}


def layer_of(module: str) -> str:
    """'vitlab.training.trainer' -> 'training'; 'vitlab.config' -> 'core'; 'vitlab.cli' -> 'top'."""
    parts = module.split(".")
    if len(parts) >= 3 or (len(parts) == 2 and parts[1] in LAYERS):
        return parts[1]
    if len(parts) == 1 or parts[1] in TOP_MODULES:
        return "top"
    return "core"


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        yield ".".join(parts), path, is_package


def vitlab_imports(module: str, path: Path, is_package: bool):
    """(line, imported vitlab module) for every import in the file, function-level ones included."""
    package = module if is_package else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "vitlab":
                    yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "vitlab":
                continue
            if target in ("vitlab", "vitlab.data", "vitlab.models", "vitlab.training") and node.module is None:
                yield node.lineno, target
            else:
                yield node.lineno, target
                for a in node.names:  # `from . import x` / `from ..models import configs` name modules too
                    sub = f"{target}.{a.name}"
                    if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists():
                        yield node.lineno, sub


def lazy_targets(path: Path):
    """The modules a lazy package __init__ names in its _WHERE table (they are imports too, just deferred)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_WHERE" for t in node.targets):
            return [v.value for v in node.value.values]
    return []


def test_every_module_belongs_to_a_known_layer():
    for module, _, _ in modules():
        assert layer_of(module) in LAYERS, module


def test_no_layer_imports_from_a_layer_above_it():
    upward = []
    for module, path, is_package in modules():
        mine = LAYERS[layer_of(module)]
        found = list(vitlab_imports(module, path, is_package))
        if is_package:
            found += [(0, module + rel) for rel in lazy_targets(path)]
        for line, target in found:
            theirs = LAYERS[layer_of(target)]
            if theirs > mine and layer_of(module) != "top":
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({layer_of(module)}) imports {target} "
                              f"({layer_of(target)})")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_layering_check_catches_an_upward_import(tmp_path):
    """The check above is only worth something if it fails on a violation: a data module importing the trainer."""
    bad = tmp_path / "vitlab" / "data"
    bad.mkdir(parents=True)
    (bad / "oops.py").write_text("from ..training.trainer import Trainer\n\ndef f():\n    import vitlab.viz.plots\n")
    found = [t for _, t in vitlab_imports("vitlab.data.oops", bad / "oops.py", False)]
    assert found == ["vitlab.training.trainer", "vitlab.viz.plots"]
    assert all(LAYERS[layer_of(t)] > LAYERS["data"] for t in found)


def test_modules_are_small_and_the_api_is_small():
    sizes = {str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines()) for _, p, _ in modules()}
    assert max(sizes.values()) <= 400, {k: v for k, v in sizes.items() if v > 400}
    import vitlab

    assert len(vitlab.__all__) <= 25
    for name in vitlab.__all__:  # every advertised name resolves
        assert getattr(vitlab, name) is not None


@pytest.mark.parametrize("statement,forbidden", [
    ("import vitlab", ("torch", "matplotlib", "umap", "sklearn")),
    ("import vitlab.data, vitlab.models, vitlab.training", ("torch", "matplotlib", "umap", "sklearn")),
    ("import vitlab.training.trainer", ("matplotlib", "umap", "sklearn", "ipywidgets")),
    ("from vitlab.cli import build_parser; build_parser()", ("torch", "matplotlib", "umap", "sklearn")),
])
def test_imports_stay_light(statement, forbidden):
    code = f"import sys; {statement}; print(' '.join(m for m in {forbidden!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"{statement!r} imported {r.stdout.strip()}"


MAX_FUNCTION_LINES = 60
LONG_FUNCTIONS_ALLOWED: set = set()  # ("vitlab/cli.py", "build_parser") would go here; it is split by command instead


def test_no_function_is_over_60_lines():
    """A function reads as one step of its module: over 60 lines (its `def` to its last line), it is split into
    named helpers."""
    long = []
    for _, path, _ in modules():
        rel = path.relative_to(PACKAGE.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and (rel, node.name) not in LONG_FUNCTIONS_ALLOWED:
                    long.append(f"{rel}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)

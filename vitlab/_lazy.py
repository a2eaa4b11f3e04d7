"""Lazy package exports (PEP 562): a package names its public objects without importing their modules.

`import vitlab` and `import vitlab.data` then cost nothing; torch, matplotlib or umap load only when a name that
needs them is first used.
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, where: dict):
    """``__getattr__`` and ``__dir__`` for `package`, given {name: submodule (relative, e.g. ".imageset")}."""

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        globals_of(package)[name] = value  # cache: the next look-up is an ordinary attribute
        return value

    def __dir__():
        return sorted(set(globals_of(package)) | set(where))

    return __getattr__, __dir__


def globals_of(package: str) -> dict:
    import sys

    return vars(sys.modules[package])

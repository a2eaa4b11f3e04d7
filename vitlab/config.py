"""What every config dataclass shares: a plain-dict form for checkpoints, a strict way back, and one way to say
how two configs differ."""

from __future__ import annotations

import math
import numbers
from dataclasses import MISSING, asdict, fields
from typing import Iterable, Optional


class DictConfig:
    """Mixin for @dataclass configs: ``to_dict()`` for checkpoints, ``from_dict()`` rejecting unknown fields."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def defaults(cls) -> dict:
        """Each field's default value (fields without a plain default are left out)."""
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


def config_diff(saved: dict, now: dict, keys: Optional[Iterable[str]] = None, defaults: Optional[dict] = None,
                label: str = "now") -> str:
    """'dim: checkpoint 64, now 128; depth: ...' for the keys whose values differ ('' if none).

    `keys` limits the comparison (default: every key of either); `defaults` stand in for keys `saved` predates
    (a checkpoint written before a config field existed holds that field's default).
    """
    saved = {**{k: v for k, v in (defaults or {}).items() if k not in saved and k in now}, **saved}
    keys = sorted(set(saved) | set(now)) if keys is None else list(keys)
    return "; ".join(f"{k}: checkpoint {saved.get(k)!r}, {label} {now.get(k)!r}"
                     for k in keys if saved.get(k) != now.get(k))


def check_number(name: str, value, low: float = -math.inf, high: float = math.inf, low_open: bool = False,
                 high_open: bool = False, integer: bool = False) -> None:
    """Raise ValueError naming `name` and `value` unless `value` is a finite number in the given range (an integer,
    with `integer`). A config's `__post_init__` calls this for each numeric field, so nothing is built from a value
    that cannot train (an infinite learning rate, an MLP of width 0)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (not integer or float(value).is_integer())
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo = "" if low == -math.inf else f"{'(' if low_open else '['}{low:g}"
        hi = "" if high == math.inf else f"{high:g}{')' if high_open else ']'}"
        where = f"in {lo}, {hi}" if lo and hi else (f"{'>' if low_open else '>='} {low:g}" if lo else
                                                       f"{'<' if high_open else '<='} {high:g}")
        raise ValueError(f"{name} must be a finite {'integer' if integer else 'number'} {where}, got {value!r}")

"""What every config dataclass shares: a plain-dict form for checkpoints, and a strict way back."""

from __future__ import annotations

from dataclasses import asdict, fields


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

"""Config fields that document themselves: each field declares its help text and its limits where
it is declared, and everything else (range checks, ``--help``, the docs' field tables) reads them.

    beta: float = opt(0.005, "adversarial weight (0: no discriminator at all)", ge=0)

A leaf module (families' configs and ``config.py`` both use it).
"""
from __future__ import annotations

import dataclasses
import operator
from typing import Any

LIMITS = {"gt": (">", operator.gt), "ge": (">=", operator.ge), "lt": ("<", operator.lt), "le": ("<=", operator.le)}


def opt(default: Any = dataclasses.MISSING, help: str = "", *, factory=None, gt=None, ge=None, lt=None, le=None):
    """A dataclass field with its ``help`` and limits (``gt``, ``ge``, ``lt``, ``le``: a number
    must be >, >=, <, <= the bound; None is always allowed where the type allows it).
    ``factory``: a mutable default's factory (``dict``)."""
    meta = {"help": help, **{k: v for k, v in (("gt", gt), ("ge", ge), ("lt", lt), ("le", le)) if v is not None}}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def meta_of(cls: type, name: str) -> dict:
    """Field ``name``'s help and limits as the config class ``cls`` sees them: a family that
    redeclares a field only to change its default keeps its base's meaning and limits, and
    whatever it declares itself wins."""
    meta: dict = {}
    for c in reversed(cls.__mro__):
        f = c.__dict__.get("__dataclass_fields__", {}).get(name)
        if f is not None and name in c.__dict__.get("__annotations__", {}):
            meta.update({k: v for k, v in f.metadata.items() if v not in ("", None)})
    return meta


def limits_text(meta: dict) -> str:
    """``>= 0``, ``> 0 and < 1``; empty without limits."""
    return " and ".join(f"{sym} {meta[k]}" for k, (sym, _) in LIMITS.items() if k in meta)


def check_limits(obj: Any, section: str) -> None:
    """Every number field of the dataclass ``obj`` within its declared limits; a ``ValueError``
    naming the field (``section.name``), its limits and the value otherwise."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        meta = meta_of(type(obj), f.name)
        if not all(ok(value, meta[k]) for k, (_, ok) in LIMITS.items() if k in meta):
            raise ValueError(f"{section}.{f.name} must be {limits_text(meta)}, got {value}")


def help_of(cls: type, name: str) -> str:
    return meta_of(cls, name).get("help", "")

"""Name -> implementation tables. Families register themselves; nothing dispatches on names."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A table of named entries with a helpful error for a wrong name."""

    def __init__(self, kind: str, list_command: str):
        self.kind = kind
        self.list_command = list_command
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise RuntimeError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            try:
                obj.name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            return obj

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise KeyError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(sorted(self._entries))} "
                f"(`{self.list_command}`)"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self):
        return sorted(self._entries.items())


MODELS: Registry = Registry("model", "ssavae list-models")


def register(name: str):
    """Class decorator: ``@register("vae")`` makes the family available to the CLI and API."""
    return MODELS.register(name)


def _load_families() -> None:
    from . import models  # noqa: F401  (importing registers every family)


def get_model_class(name: str):
    from .config import ConfigError

    _load_families()
    try:
        return MODELS.get(name)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None


def list_models() -> list[str]:
    _load_families()
    return MODELS.names()


def model_name_of_config(cfg) -> str:
    _load_families()
    for name, cls in MODELS.items():
        if type(cfg) is cls.Config:
            return name
    raise ValueError(f"{type(cfg).__name__} is not the config of a registered model")

"""Name -> implementation tables. Families register themselves; nothing dispatches on names.

A leaf: imports nothing of the package."""
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

    def remove(self, name: str) -> None:
        """Unregister ``name`` (a family added for a while, e.g. by a test)."""
        del self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self):
        return sorted(self._entries.items())


MODELS: Registry = Registry("model", "ssavae list-models")


def register(name: str):
    """Class decorator: ``@register("vae")`` makes the family available to the CLI and API.
    Importing ``ssavae.models`` registers every family of the package."""
    return MODELS.register(name)

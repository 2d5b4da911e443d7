"""A name -> object table used for problems, optimisers, measures and predictions."""

from __future__ import annotations

import difflib
from typing import Generic, Iterator, TypeVar

__all__ = ["Registry", "suggest"]

T = TypeVar("T")


def suggest(name: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice (by similarity or prefix), else ``""``."""
    close = difflib.get_close_matches(str(name), choices, n=1)
    if not close:
        close = [c for c in choices if c.startswith(str(name)) or str(name).startswith(c)][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """Named entries of one kind; unknown names get a did-you-mean hint."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str):
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(self.unknown(name)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)

    def unknown(self, name: str) -> str:
        """The message for an unknown name: what exists and the closest match."""
        return f"unknown {self.kind} {name!r}{suggest(name, self.names())}; expected one of {self.names()}"

"""One lookup-by-id mechanism for datasets, architectures, defenses, attacks and models."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from robbench.errors import RobbenchError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps ids to entries; entries are added with the `register` decorator."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, id: str) -> Callable[[T], T]:
        def decorate(entry: T) -> T:
            self.add(id, entry)
            return entry

        return decorate

    def add(self, id: str, entry: T) -> None:
        if id in self._entries:
            raise ValueError(f"{self.kind} id {id!r} registered twice")
        self._entries[id] = entry

    def get(self, id: str) -> T:
        try:
            return self._entries[id]
        except KeyError:
            raise RobbenchError(self.unknown_message(id)) from None

    def unknown_message(self, id: str) -> str:
        close = difflib.get_close_matches(id, self._entries, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return f"unknown {self.kind} {id!r}{hint} (known: {', '.join(sorted(self._entries))})"

    def __contains__(self, id: object) -> bool:
        return id in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())

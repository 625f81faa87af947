"""The local engine: the builtin ``map``, in this process."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

R = TypeVar("R")


class LocalEngine:
    """Runs every item here, one after the other."""

    name = "local"

    def map(self, fn: Callable[..., R], items: Iterable[Any], **shared: Any) -> list[R]:
        return [fn(item, **shared) for item in items]

    @property
    def workers(self) -> int:
        return 1

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

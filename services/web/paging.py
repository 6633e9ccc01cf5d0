"""Lists page on the server: a page's size and start, bounded, from the query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query

T = TypeVar("T")
PAGE_SIZE = 25
MAX_PAGE = 100_000


@dataclass(frozen=True)
class Paging:
    page: int = 1
    size: int = PAGE_SIZE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    @property
    def ask(self) -> int:
        """How many to ask the service for: one more than a page tells whether a next exists."""
        return self.size + 1

    def query(self, **filters: Any) -> dict[str, Any]:
        """A list route's query: this page (and one more row), and the filters given
        (an empty one is left out: the service then lists everything the caller may see)."""
        given = {name: value for name, value in filters.items() if value}
        return {"limit": self.ask, "offset": self.offset, **given}

    def window(self, found: list[T]) -> tuple[list[T], bool]:
        """The page's rows, and whether there is a next page."""
        return found[: self.size], len(found) > self.size


def paging(page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1) -> Paging:
    return Paging(page=page)


Page = Annotated[Paging, Depends(paging)]

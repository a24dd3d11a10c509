"""Per-operation DataLoaders over the declarative tables: one batched query per relation.

Built per request (never shared), so one tenant's objects can never be served to another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from strawberry.dataloader import DataLoader

from app.core.db import Session
from app.core.tables import Filter, PageQuery, Row, Table, count_rows, fetch_by_ids, fetch_page

V = TypeVar("V")


class Loaders:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._loaders: dict[tuple[Any, ...], DataLoader[Any, Any]] = {}

    def clear(self) -> None:
        """Forget everything loaded: called after each mutation, whose writes it may predate."""
        self._loaders.clear()

    def batch(
        self, name: str, load: Callable[[Session, Sequence[UUID]], Awaitable[dict[UUID, V]]]
    ) -> DataLoader[UUID, V | None]:
        """A loader over any batch function from ids to values (None where absent)."""
        key = ("batch", name)
        if key not in self._loaders:

            async def load_many(ids: Sequence[UUID]) -> list[V | None]:
                found = await load(self._session, ids)
                return [found.get(i) for i in ids]

            self._loaders[key] = DataLoader(load_fn=load_many)
        return self._loaders[key]

    def by_id(self, table: Table[Any]) -> DataLoader[UUID, Any]:
        key = ("id", table)
        if key not in self._loaders:

            async def load(ids: Sequence[UUID]) -> list[Any]:
                found = await fetch_by_ids(self._session, table, ids)
                return [found.get(i) for i in ids]

            self._loaders[key] = DataLoader(load_fn=load)
        return self._loaders[key]

    def page(self, table: Table[Any], partition: str, page: PageQuery) -> DataLoader[UUID, Any]:
        """Pages of children per parent id, all parents in one statement."""
        key = ("page", table, partition, page)
        if key not in self._loaders:

            async def load(parents: Sequence[UUID]) -> list[list[Row[Any]]]:
                pages = await fetch_page(
                    self._session, table, page, partition=partition, parents=parents
                )
                return [pages.get(p, []) for p in parents]

            self._loaders[key] = DataLoader(load_fn=load)
        return self._loaders[key]

    def count(
        self, table: Table[Any], partition: str, filters: tuple[Filter, ...]
    ) -> DataLoader[UUID, int]:
        key = ("count", table, partition, filters)
        if key not in self._loaders:

            async def load(parents: Sequence[UUID]) -> list[int]:
                counts = await count_rows(
                    self._session, table, filters, partition=partition, parents=parents
                )
                return [counts.get(p, 0) for p in parents]

            self._loaders[key] = DataLoader(load_fn=load)
        return self._loaders[key]

"""Per-request DataLoaders: each relationship field costs one query per page, not per row."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

from strawberry.dataloader import DataLoader

from core.accounts import repository as accounts
from core.db import SessionFactory
from core.identity import repository as identity
from core.identity.viewer import Viewer
from core.inbox import repository as inbox
from core.inbox.repository import MessageRow
from core.models import Company, Folder, MailAccount, RealtimeMode, User
from core.realtime import leases
from core.sync import search_index

K = TypeVar("K")
V = TypeVar("V")


def _by_key(keys: Sequence[K], rows: Sequence[V], key: Callable[[V], K]) -> list[V | None]:
    found = {key(row): row for row in rows}
    return [found.get(k) for k in keys]


def _grouped(keys: Sequence[K], rows: Sequence[V], key: Callable[[V], K]) -> list[list[V]]:
    groups: dict[K, list[V]] = {k: [] for k in keys}
    for row in rows:
        groups[key(row)].append(row)
    return [groups[k] for k in keys]


class Loaders:
    def __init__(self, session_factory: SessionFactory, viewer: Viewer | None) -> None:
        self._sessions = session_factory
        self._viewer = viewer
        self.user = DataLoader[uuid.UUID, User | None](self._load_users)
        self.company = DataLoader[uuid.UUID, Company | None](self._load_companies)
        self.folders = DataLoader[uuid.UUID, list[Folder]](self._load_folders)
        self.owned_accounts = DataLoader[uuid.UUID, list[MailAccount]](self._load_owned)
        self.readable_account = DataLoader[uuid.UUID, MailAccount | None](self._load_readable)
        self.readable_folder = DataLoader[uuid.UUID, Folder | None](self._load_readable_folders)
        # Messages: only ever asked for ids of rows the viewer was allowed to read.
        self.bodies = DataLoader[int, tuple[str | None, str | None]](self._load_bodies)
        self.thread = DataLoader[uuid.UUID, list[MessageRow]](self._load_threads)
        self.realtime = DataLoader[uuid.UUID, RealtimeMode](self._load_realtime)
        self.search_backlog = DataLoader[uuid.UUID, int](self._load_search_backlog)

    async def _load_users(self, ids: list[uuid.UUID]) -> list[User | None]:
        async with self._sessions() as session:
            rows = await identity.get_users(session, ids)
        return _by_key(ids, rows, lambda u: u.id)

    async def _load_companies(self, ids: list[uuid.UUID]) -> list[Company | None]:
        async with self._sessions() as session:
            rows = await identity.get_companies(session, ids)
        return _by_key(ids, rows, lambda c: c.id)

    async def _load_folders(self, account_ids: list[uuid.UUID]) -> list[list[Folder]]:
        async with self._sessions() as session:
            rows = await accounts.folders_of(session, account_ids)
        return _grouped(account_ids, rows, lambda f: f.account_id)

    async def _load_search_backlog(self, account_ids: list[uuid.UUID]) -> list[int]:
        async with self._sessions() as session:
            counts = await search_index.backlog(session, account_ids)
        return [counts.get(a, 0) for a in account_ids]

    async def _load_owned(self, owner_ids: list[uuid.UUID]) -> list[list[MailAccount]]:
        async with self._sessions() as session:
            rows = await accounts.list_owned(session, owner_ids)
        return _grouped(owner_ids, rows, lambda a: a.owner_id)

    async def _load_readable(self, ids: list[uuid.UUID]) -> list[MailAccount | None]:
        if self._viewer is None:
            return [None for _ in ids]
        async with self._sessions() as session:
            rows = await accounts.get_many_readable(session, self._viewer, ids)
        return _by_key(ids, rows, lambda a: a.id)

    async def _load_readable_folders(self, ids: list[uuid.UUID]) -> list[Folder | None]:
        if self._viewer is None:
            return [None for _ in ids]
        async with self._sessions() as session:
            rows = await accounts.get_readable_folders(session, self._viewer, ids)
        return _by_key(ids, rows, lambda f: f.id)

    async def _load_realtime(self, account_ids: list[uuid.UUID]) -> list[RealtimeMode]:
        async with self._sessions() as session:
            watched = await leases.in_idle(session, account_ids)
        return [RealtimeMode.IDLE if a in watched else RealtimeMode.POLLING for a in account_ids]

    def prime(self, account_rows: Sequence[MailAccount], folders: Sequence[Folder]) -> None:
        """Rows a query has already read (and checked): fields on them cost no query."""
        for account in account_rows:
            self.readable_account.prime(account.id, account)
        for folder in folders:
            self.readable_folder.prime(folder.id, folder)

    async def _load_bodies(self, ids: list[int]) -> list[tuple[str | None, str | None]]:
        async with self._sessions() as session:
            found = await inbox.bodies(session, ids)
        return [found.get(i, (None, None)) for i in ids]

    async def _load_threads(self, thread_ids: list[uuid.UUID]) -> list[list[MessageRow]]:
        if self._viewer is None:
            return [[] for _ in thread_ids]
        async with self._sessions() as session:
            rows = await inbox.threads(session, self._viewer, thread_ids)
        return _grouped(thread_ids, rows, lambda m: m.thread_id)

"""Server-side mailbox changes for sync tests, with the stdlib's imaplib (a second client)."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar

from tests.support.mailservers import ImapServer

T = TypeVar("T")
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapAdmin:
    """Blocking imaplib calls run in a thread; each method opens its own connection."""

    def __init__(self, server: ImapServer, username: str, password: str) -> None:
        self.server = server
        self.username = username
        self.password = password

    def _connect(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4(self.server.host, self.server.port, timeout=10)
        client.login(self.username, self.password)
        return client

    async def _run(self, work: Callable[[imaplib.IMAP4], T]) -> T:
        def call() -> T:
            client = self._connect()
            try:
                return work(client)
            finally:
                with contextlib.suppress(imaplib.IMAP4.error):
                    client.logout()

        return await asyncio.to_thread(call)

    async def append(
        self,
        folder: str,
        raw: bytes,
        *,
        flags: str = "",
        when: datetime | None = None,
    ) -> None:
        date = imaplib.Time2Internaldate(when.timestamp()) if when else None

        def work(c: imaplib.IMAP4) -> None:
            typ, data = c.append(_quote(folder), f"({flags})" if flags else None, date, raw)
            assert typ == "OK", data

        await self._run(work)

    async def append_many(self, folder: str, messages: Iterable[tuple[bytes, datetime]]) -> None:
        """APPEND each message on one connection (Dovecot takes ~1,000 per second)."""
        items = list(messages)

        def work(c: imaplib.IMAP4) -> None:
            for raw, when in items:
                typ, data = c.append(
                    _quote(folder), None, imaplib.Time2Internaldate(when.timestamp()), raw
                )
                assert typ == "OK", data

        await self._run(work)

    async def uids(self, folder: str) -> list[int]:
        def work(c: imaplib.IMAP4) -> list[int]:
            c.select(_quote(folder), readonly=True)
            typ, data = c.uid("SEARCH", "ALL")
            assert typ == "OK", data
            return [int(x) for x in (data[0] or b"").split()]

        return await self._run(work)

    async def flags(self, folder: str) -> dict[int, set[str]]:
        def work(c: imaplib.IMAP4) -> dict[int, set[str]]:
            c.select(_quote(folder), readonly=True)
            typ, data = c.uid("FETCH", "1:*", "(UID FLAGS)")
            assert typ == "OK", data
            result: dict[int, set[str]] = {}
            for item in data:
                if not isinstance(item, bytes):
                    continue
                uid = re.search(rb"UID (\d+)", item)
                flags = re.search(rb"FLAGS \(([^)]*)\)", item)
                if uid and flags:
                    result[int(uid.group(1))] = set(flags.group(1).decode().split())
            return result

        return await self._run(work)

    async def store(self, folder: str, uid: int, op: str, flags: str) -> None:
        def work(c: imaplib.IMAP4) -> None:
            c.select(_quote(folder))
            typ, data = c.uid("STORE", str(uid), op, f"({flags})")
            assert typ == "OK", data

        await self._run(work)

    async def store_range(self, folder: str, uids: str, op: str, flags: str) -> None:
        """UID STORE over a set; "1:*:10" means every 10th UID (expanded here)."""

        def work(c: imaplib.IMAP4) -> None:
            c.select(_quote(folder))
            target = uids
            if uids.count(":") == 2:
                start, _, step = uids.split(":")
                typ, data = c.uid("SEARCH", "ALL")
                every = [int(x) for x in (data[0] or b"").split()][int(start) - 1 :: int(step)]
                target = ",".join(str(u) for u in every)
            typ, data = c.uid("STORE", target, op, f"({flags})")
            assert typ == "OK", data

        await self._run(work)

    async def expunge(self, folder: str, uid: int) -> None:
        def work(c: imaplib.IMAP4) -> None:
            c.select(_quote(folder))
            c.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
            typ, data = c.expunge()
            assert typ == "OK", data

        await self._run(work)

    async def move(self, folder: str, uid: int, target: str) -> None:
        def work(c: imaplib.IMAP4) -> None:
            c.select(_quote(folder))
            typ, data = c.uid("COPY", str(uid), _quote(target))
            assert typ == "OK", data
            c.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
            c.expunge()

        await self._run(work)

    async def search(self, folder: str, criteria: str) -> list[int]:
        """``UID SEARCH <criteria>``: the UIDs the server answers."""

        def work(c: imaplib.IMAP4) -> list[int]:
            c.select(_quote(folder), readonly=True)
            typ, data = c.uid("SEARCH", criteria)
            assert typ == "OK", data
            return [int(n) for n in (data[0] or b"").split()]

        return await self._run(work)

    async def copy(self, folder: str, uid: int, target: str) -> None:
        def work(c: imaplib.IMAP4) -> None:
            c.select(_quote(folder))
            typ, data = c.uid("COPY", str(uid), _quote(target))
            assert typ == "OK", data

        await self._run(work)

    async def rename(self, folder: str, new_name: str) -> None:
        def work(c: imaplib.IMAP4) -> None:
            typ, data = c.rename(_quote(folder), _quote(new_name))
            assert typ == "OK", data

        await self._run(work)

    async def create(self, folder: str) -> None:
        await self._run(lambda c: c.create(_quote(folder)))

    async def delete(self, folder: str) -> None:
        await self._run(lambda c: c.delete(_quote(folder)))

    async def uidvalidity(self, folder: str) -> int:
        def work(c: imaplib.IMAP4) -> int:
            typ, data = c.status(_quote(folder), "(UIDVALIDITY)")
            assert typ == "OK", data
            match = _UIDVALIDITY.search(data[0] or b"")
            assert match, data
            return int(match.group(1))

        return await self._run(work)

    async def fetch_raw(self, folder: str) -> list[bytes]:
        def work(c: imaplib.IMAP4) -> list[bytes]:
            c.select(_quote(folder), readonly=True)
            typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[])")
            assert typ == "OK", data
            return [part[1] for part in data if isinstance(part, tuple)]

        return await self._run(work)

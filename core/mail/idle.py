"""IMAP IDLE (RFC 2177) on INBOX: select it, wait for the server's pushes, stay honest.

Built on aioimaplib's IDLE support (``idle_start``/``idle_done`` and the protocol's
``idle_queue``; ``core/mail/protocol.py`` names the versions relied on). aioimaplib 2.0
does not fail a pending command when the connection drops, so the connection-lost callback
puts a marker in the same queue: a closed socket ends the wait at once. A silent dead peer
is found by TCP keepalive and by DONE, which must be answered within a bound at each
re-IDLE.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aioimaplib.aioimaplib import STOP_WAIT_SERVER_PUSH

from core.mail.imap import ImapConnection

# Untagged responses (aioimaplib strips the "* ") that mean INBOX changed.
_PUSH = re.compile(rb"^(\d+ (EXISTS|EXPUNGE|FETCH)\b|VANISHED\b)", re.IGNORECASE)
_CODE = re.compile(rb"\[(UIDVALIDITY|UIDNEXT|HIGHESTMODSEQ) (\d+)\]", re.IGNORECASE)
_EXISTS = re.compile(rb"^(\d+) EXISTS\b", re.IGNORECASE)
_LOST = "connection lost"
# TCP keepalive: a peer gone without a word is noticed in about 60 + 3 * 15 s by the kernel.
_KEEPALIVE = {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 15, "TCP_KEEPCNT": 3}


class IdleConnectionLost(Exception):
    """The connection closed, or the server did not answer in time: reconnect."""


@dataclass(frozen=True)
class InboxState:
    """What SELECT INBOX said; None where the server did not say."""

    uidvalidity: int | None
    uidnext: int | None
    exists: int | None
    highest_modseq: int | None


def is_push(line: bytes) -> bool:
    return _PUSH.match(line) is not None


def _keepalive(transport: Any) -> None:
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in _KEEPALIVE.items():
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class IdleConnection:
    """An authenticated connection used only to IDLE on INBOX."""

    def __init__(self, connection: ImapConnection, answer_within: float) -> None:
        self.connection = connection
        self._client = connection.client
        self._protocol = connection.client.protocol
        self._answer_within = answer_within
        self._lost = asyncio.get_running_loop().create_future()
        self._protocol.conn_lost_cb = self._connection_lost
        _keepalive(self._protocol.transport)

    @property
    def offers_idle(self) -> bool:
        return "IDLE" in self.connection.capabilities

    def _connection_lost(self, exc: Exception | None) -> None:
        if not self._lost.done():
            self._lost.set_result(None)
        self._protocol.idle_queue.put_nowait(_LOST)

    async def _answered(self, awaitable: Any) -> Any:
        """``awaitable``'s result within the bound, or IdleConnectionLost."""
        task = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait(
            {task, self._lost}, timeout=self._answer_within, return_when=asyncio.FIRST_COMPLETED
        )
        if task not in done:
            task.cancel()
            raise IdleConnectionLost("no answer" if not self._lost.done() else "closed")
        return task.result()

    async def select_inbox(self) -> InboxState:
        response = await self._answered(self._client.select("INBOX"))
        if response.result != "OK":
            raise IdleConnectionLost("SELECT INBOX refused")
        codes: dict[str, int] = {}
        exists: int | None = None
        for line in response.lines:
            if not isinstance(line, bytes | bytearray):
                continue
            for match in _CODE.finditer(bytes(line)):
                codes[match.group(1).decode().upper()] = int(match.group(2))
            counted = _EXISTS.match(bytes(line))
            if counted:
                exists = int(counted.group(1))
        return InboxState(
            codes.get("UIDVALIDITY"), codes.get("UIDNEXT"), exists, codes.get("HIGHESTMODSEQ")
        )

    async def watch(self, on_push: Callable[[], None], *, renew_after: float) -> None:
        """IDLE until cancelled, calling ``on_push`` for each batch of changes and
        re-issuing IDLE every ``renew_after`` seconds; raises IdleConnectionLost."""
        queue = self._protocol.idle_queue
        while True:
            idle = await self._answered(self._client.idle_start(timeout=renew_after))
            # When the watcher stops or the connection drops, this task ends with Abort and
            # nobody awaits it any more: take its exception, or asyncio logs it at exit.
            idle.add_done_callback(_consume_outcome)
            while True:
                item = await queue.get()
                if item == _LOST:
                    raise IdleConnectionLost("closed")
                if item == STOP_WAIT_SERVER_PUSH:
                    break
                if any(isinstance(line, bytes) and is_push(line) for line in item):
                    on_push()
            self._client.idle_done()
            response = await self._answered(idle)
            if response.result != "OK":
                raise IdleConnectionLost("IDLE ended with an error")
            self._drain(on_push)

    def _drain(self, on_push: Callable[[], None]) -> None:
        queue = self._protocol.idle_queue
        while not queue.empty():
            item = queue.get_nowait()
            if item == _LOST:
                raise IdleConnectionLost("closed")
            if isinstance(item, list) and any(
                isinstance(line, bytes) and is_push(line) for line in item
            ):
                on_push()

    def close(self) -> None:
        """End IDLE and the session without waiting for answers (stopping must be quick)."""
        transport = self._protocol.transport
        if transport is not None and not transport.is_closing():
            try:
                if self._client.has_pending_idle():
                    transport.write(b"DONE\r\n")
                transport.write(f"{self._protocol.new_tag()} LOGOUT\r\n".encode())
            except Exception:  # noqa: S110  # a goodbye that fails changes nothing
                pass
        self.connection.abort()


def _consume_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()

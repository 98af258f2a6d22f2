"""aioimaplib's protocol with a linear-time response reader.

aioimaplib 2.0.3 reads each received chunk recursively, one call per line, so a response
of more than about a thousand lines raises RecursionError inside the protocol and the
command never completes (upstream issue #118); ``FetchCommand.wait_data`` rescans every
line received so far on each new line (quadratic); every received chunk is formatted
for a debug log line whether or not it is logged; a partial line is copied whole with each
chunk that extends it (quadratic in a line that never ends); and a literal is buffered at
whatever size the server announces. This module replaces all of it with code that does
constant work per line and linear work per byte, and refuses a literal or a line above its
cap at once (:class:`MailServerLimitExceeded`), dropping the connection; the response
objects stay aioimaplib's.

This reaches into aioimaplib's private internals (as does ``_DirectIMAP4`` in
``core/mail/imap.py``), so it names the versions it was written for: pyproject.toml pins
the same range, and ``tests/core/test_aioimaplib_internals.py`` fails, naming both modules,
when the installed aioimaplib differs from what they rely on.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aioimaplib
from aioimaplib.aioimaplib import CRLF, Command, FetchCommand, IncompleteRead

AIOIMAPLIB_VERSIONS = ">=2.0.3,<2.1"

_LITERAL_START = re.compile(rb".*\{(?P<size>\d+)\}$")
DEFAULT_MAX_LITERAL_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024


class MailServerLimitExceeded(aioimaplib.AioImapException):
    """The server sent more than a cap allows (a literal, a line); ``message`` is for the
    user. The connection is dropped: what follows on it can no longer be trusted."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _megabytes(size: int) -> str:
    return f"{size / 2**20:,.0f} MB" if size >= 2**20 else f"{size:,} bytes"


_FETCH_LINE = re.compile(rb"[0-9]+ FETCH \(")


class LinearFetchCommand(FetchCommand):
    """Tracks the open parentheses of the current FETCH item as lines arrive."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open_parens = 0
        super().__init__(*args, **kwargs)

    def append_to_resp(self, line: bytes, result: str = "Pending") -> None:
        if isinstance(line, bytes):
            if _FETCH_LINE.match(line):
                self._open_parens = 0
            self._open_parens += line.count(b"(") - line.count(b")")
        super().append_to_resp(line, result)

    def wait_data(self) -> bool:
        return self._open_parens != 0


class LinearIMAP4ClientProtocol(aioimaplib.IMAP4ClientProtocol):
    current_command: Command | None
    pending_sync_command: Command | None
    max_literal_bytes = DEFAULT_MAX_LITERAL_BYTES
    max_line_bytes = DEFAULT_MAX_LINE_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._partial = bytearray()  # the start of a line whose CRLF has not come yet
        self.refused: MailServerLimitExceeded | None = None
        self._untimed: Command | None = None  # got lines, its timer not reset since
        self.greeted = asyncio.Event()  # the server's first line came
        self.hello = asyncio.Event()  # and its capabilities are known (or it refused us)
        self.greeting_refused = False
        self.lost = False  # the connection is gone: commands fail at once

    def data_received(self, d: bytes) -> None:
        # aioimaplib's version builds "Received : %s" % d for a debug line on every chunk,
        # logged or not: a repr of every byte received, about 1 s of CPU per 80 MB fetched.
        if self.refused is not None:
            return
        partial = self._partial
        if partial:
            # Waiting for the end of a line: only the new bytes are searched, and they are
            # appended in place (amortized linear), not copied with all before them.
            ends = CRLF in d or (partial.endswith(b"\r") and d.startswith(b"\n"))
            partial.extend(d)
            if not ends:
                self._check_line(len(partial))
                return
            d, self._partial = bytes(partial), bytearray()
        try:
            self._handle_responses(d, self._handle_line, self.current_command)
            self.current_command = None
            self._touch_pending()
        except IncompleteRead as incomplete_read:
            self._touch_pending()
            self.current_command = incomplete_read.cmd
            self._partial = bytearray(incomplete_read.data)
            self._check_line(len(self._partial))
        except MailServerLimitExceeded as exceeded:
            self._refuse(exceeded)

    async def welcome(self, command: bytes) -> None:
        # aioimaplib's welcome holds state_condition while CAPABILITY is unanswered, so a
        # server that greets and then goes quiet keeps every waiter on the state, even a
        # cancelled one (Condition.wait re-acquires the lock first), stuck past any timeout.
        # Here the lock is only taken to announce the state; the waiters wait for ``hello``.
        self.greeted.set()
        try:
            if b"PREAUTH" in command:
                self.state = aioimaplib.AUTH
            elif b"OK" in command:
                self.state = aioimaplib.NONAUTH
            else:
                self.greeting_refused = True
                return
            try:
                await self.capability()
            except aioimaplib.AioImapException:
                return  # the connection failed: whoever waits on ``hello`` hears of it
        finally:
            self.hello.set()
        async with self.state_condition:
            self.state_condition.notify_all()

    def _handle_line(self, line: bytes, current_cmd: Command | None) -> Command | None:
        # The common case of a long answer (LIST, FETCH of flags, SEARCH): an untagged line
        # for the one command waiting. aioimaplib's path costs ~20 us a line (its timer is
        # reset per line); this one appends, and the timer is reset once per chunk.
        if current_cmd is None and line.startswith(b"* ") and self.state != aioimaplib.CONNECTED:
            text = line.replace(b"* ", b"")  # as aioimaplib does
            command: Command | None = self.pending_sync_command
            if command is None and not text[:1].isdigit():
                name, _, text = text.partition(b" ")  # an async command gets the rest
                command = self.pending_async_commands.get(name.decode(errors="replace").upper())
            if command is not None and type(command) is Command:  # not FETCH, IDLE...
                command._resp_lines.append(text)
                command._resp_result = "Pending"
                self._untimed = command
                return command
        result: Command | None = super()._handle_line(line, current_cmd)
        return result

    def _touch_pending(self) -> None:
        command, self._untimed = self._untimed, None
        if command is not None and not command._event.is_set():
            command._reset_timer()

    def _check_line(self, length: int) -> None:
        if length > self.max_line_bytes and self.refused is None:
            self._refuse(
                MailServerLimitExceeded(
                    "The mail server sent a response line longer than "
                    f"{_megabytes(self.max_line_bytes)}; the connection was dropped."
                )
            )

    def _refuse(self, exceeded: MailServerLimitExceeded) -> None:
        """Fail every command waiting on this connection now, and drop it."""
        self.refused = exceeded
        self._partial = bytearray()
        self._fail_pending(exceeded)
        if self.transport is not None:
            self.transport.abort()

    def _fail_pending(self, error: Exception) -> None:
        """End every command in flight with ``error``, and forget them: a later command
        must not wait for one of them (aioimaplib's waits would log the error again)."""
        waiting = [self.pending_sync_command, self.current_command]
        waiting += list(self.pending_async_commands.values())
        self.pending_sync_command, self.current_command = None, None
        self.pending_async_commands.clear()
        for command in waiting:
            if command is not None and not command._event.is_set():
                command._exception = error
                command.close(b"", "KO")

    def connection_lost(self, exc: Exception | None) -> None:
        # aioimaplib leaves the commands in flight waiting for their timeout.
        self.lost = True
        self._fail_pending(self.refused or aioimaplib.Abort("the connection was closed"))
        super().connection_lost(exc)

    async def execute(self, command: Command, scrub: str | None = None) -> Any:
        if self.refused is not None:
            raise self.refused
        if self.lost:
            raise aioimaplib.Abort("the connection was closed")
        return await super().execute(command, scrub)

    def _handle_responses(
        self,
        data: bytes,
        line_handler: Any,
        current_cmd: Command | None = None,
    ) -> None:
        position = 0
        while True:
            if position >= len(data):
                if self.pending_sync_command is not None:
                    self.pending_sync_command.flush()
                if current_cmd is not None and current_cmd.wait_data():
                    raise IncompleteRead(current_cmd)
                return
            if current_cmd is not None and current_cmd.wait_literal_data():
                data = current_cmd.append_literal_data(data[position:])
                position = 0
                if current_cmd.wait_literal_data():
                    raise IncompleteRead(current_cmd)
                continue
            end = data.find(CRLF, position)
            if end == -1:
                raise IncompleteRead(current_cmd, data[position:])
            if end - position > self.max_line_bytes:
                self._check_line(end - position)
                return
            line = data[position:end]
            position = end + len(CRLF)
            command = line_handler(line, current_cmd)
            literal = _LITERAL_START.match(line) if line.endswith(b"}") else None
            if literal:
                size = int(literal.group("size"))
                if size > self.max_literal_bytes:
                    raise MailServerLimitExceeded(
                        f"The mail server announced a response of {size:,} bytes, more than "
                        f"the {_megabytes(self.max_literal_bytes)} allowed; the connection "
                        "was dropped."
                    )
                if command is None:
                    command = Command("NIL", "unused")
                command.begin_literal_data(size)
                current_cmd = command
            elif command is not None and command.wait_data():
                current_cmd = command
            else:
                current_cmd = None

    async def fetch(
        self,
        message_set: str,
        message_parts: str,
        by_uid: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109  # aioimaplib's signature
    ) -> Any:
        return await self.execute(
            LinearFetchCommand(
                self.new_tag(),
                message_set,
                message_parts,
                prefix="UID" if by_uid else "",
                loop=self.loop,
                timeout=timeout,
            )
        )

    def _continuation(self, line: bytes) -> None:
        command = self.pending_sync_command
        if command is not None and command.name == "AUTHENTICATE":
            # The mechanism's error report (base64 JSON): an empty response ends the
            # exchange and the server answers NO. The report itself is not needed.
            self.transport.write(CRLF)
            return
        super()._continuation(line)

"""aioimaplib's protocol with a linear-time response reader.

aioimaplib 2.0.3 reads each received chunk recursively, one call per line, so a response
of more than about a thousand lines raises RecursionError inside the protocol and the
command never completes (upstream issue #118); ``FetchCommand.wait_data`` rescans every
line received so far on each new line (quadratic); and every received chunk is formatted
for a debug log line whether or not it is logged. This module replaces all three with code
that does constant work per line; the response objects stay aioimaplib's.

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
    """Also: ``greeted`` is set once the greeting (and the CAPABILITY after it) is handled.

    aioimaplib's ``wait_hello_from_server`` waits on its ``state_condition``, whose lock its
    greeting handler holds until the server answers CAPABILITY (with no timeout). A waiter
    that is cancelled must take that lock back before it can leave, so on Python 3.13 a
    timeout could not end the wait when a server greeted and then never answered: the call
    (and the request behind it) hung for good. Waiting on this event is always cancellable.
    """

    incomplete_line: bytes
    current_command: Command | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.greeted = asyncio.Event()

    async def welcome(self, command: bytes) -> None:
        try:
            await super().welcome(command)
        finally:
            self.greeted.set()  # the state says how it went

    def data_received(self, d: bytes) -> None:
        # aioimaplib's version builds "Received : %s" % d for a debug line on every chunk,
        # logged or not: a repr of every byte received, about 1 s of CPU per 80 MB fetched.
        try:
            self._handle_responses(
                self.incomplete_line + d, self._handle_line, self.current_command
            )
            self.incomplete_line = b""
            self.current_command = None
        except IncompleteRead as incomplete_read:
            self.current_command = incomplete_read.cmd
            self.incomplete_line = incomplete_read.data

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
            line = data[position:end]
            position = end + len(CRLF)
            command = line_handler(line, current_cmd)
            literal = _LITERAL_START.match(line)
            if literal:
                if command is None:
                    command = Command("NIL", "unused")
                command.begin_literal_data(int(literal.group("size")))
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

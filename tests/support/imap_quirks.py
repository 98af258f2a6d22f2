"""An IMAP proxy in front of a real server (Dovecot) that bends the rules like servers seen
in the field, one quirk or several per test:

* ``strip_uidnext``: SELECT answers without ``[UIDNEXT n]`` (Courier; RFC 3501 allows it).
  STATUS still reports UIDNEXT.
* ``search_by_sequence``: ``UID SEARCH UID <set>`` is answered as if ``<set>`` were message
  sequence numbers (GNU Mailutils imap4d): the proxy drops the ``UID`` search key, so
  Dovecot answers the UIDs of the messages at those positions.
* ``bump_uidvalidity``: every APPEND (through this proxy, by anyone) changes the
  UIDVALIDITY every client sees, while the UIDs stay the same (Mailutils renews it on
  each append): the value reported is Dovecot's plus the number of APPENDs so far. The
  extensions that carry UIDVALIDITY back to the server (CONDSTORE, QRESYNC) are hidden
  with it, as Mailutils has neither.
* ``hide``: capabilities taken out of every CAPABILITY the server announces (UIDPLUS,
  ENABLE, MOVE...), so clients take their fallback paths.

The proxy reads both directions line by line and passes literals through untouched, so a
rewrite never lands inside a message. It also logs each client command (``commands``:
the command name, e.g. ``STATUS`` or ``UID FETCH``, and the line without LOGIN's
arguments), can hold a command until a test lets it through (:meth:`hold`), and can
answer one with NO itself, as a server having a bad moment would (:meth:`refuse`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field

from tests.support.streams import close_writers

_LINE_LIMIT = 64 * 1024 * 1024
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r?\n$")
_COMMAND = re.compile(rb"^(?P<tag>[^ \r\n]+) (?P<name>UID [A-Za-z]+|[A-Za-z]+)", re.I)
_UID_SEARCH_UID = re.compile(rb"^([^ ]+ UID SEARCH (?:CHARSET [^ ]+ )?)UID (?=[0-9*])", re.I)
_UIDNEXT_LINE = re.compile(rb"^\* OK \[UIDNEXT \d+\]", re.I)
_UIDVALIDITY = re.compile(rb"\b(UIDVALIDITY|APPENDUID|COPYUID) (\d+)", re.I)


@dataclass(frozen=True)
class Quirks:
    strip_uidnext: bool = False
    search_by_sequence: bool = False
    bump_uidvalidity: bool = False
    hide: tuple[str, ...] = ()

    @property
    def hidden(self) -> tuple[str, ...]:
        extra = ("CONDSTORE", "QRESYNC") if self.bump_uidvalidity else ()
        return tuple(dict.fromkeys((*self.hide, *extra)))


@dataclass
class Command:
    connection: int
    name: str  # upper case: "STATUS", "UID FETCH", ...
    line: str  # LOGIN and AUTHENTICATE lines keep only their name


@dataclass
class _Hold:
    name: str
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Refusal:
    name: str
    containing: str
    used: bool = False


@dataclass
class QuirksProxy:
    target_host: str
    target_port: int
    quirks: Quirks = field(default_factory=Quirks)
    host: str = "127.0.0.1"
    port: int = 0
    commands: list[Command] = field(default_factory=list)
    appends: int = 0
    rewritten: int = 0  # server lines or client commands changed by a quirk
    connections: int = 0
    _holds: list[_Hold] = field(default_factory=list)
    _refusals: list[_Refusal] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> QuirksProxy:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for hold in self._holds:
            hold.released.set()
        if self._server is not None:
            self._server.close()
        # The connections first: since Python 3.12 wait_closed() waits for every open
        # connection, and one whose server side is still open would keep it waiting forever.
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    def names(self, since: int = 0) -> list[str]:
        """The command names sent since ``len(commands)`` was ``since``."""
        return [c.name for c in self.commands[since:]]

    def hold(self, name: str) -> _Hold:
        """Keep the next client command called ``name`` from the server until
        ``.released`` is set; ``.reached`` is set when it arrives."""
        hold = _Hold(name.upper())
        self._holds.append(hold)
        return hold

    def refuse(self, name: str, containing: str = "") -> None:
        """Answer the next client command called ``name`` (whose line contains
        ``containing``) with a tagged NO, without passing it on."""
        self._refusals.append(_Refusal(name.upper(), containing))

    # -- plumbing -----------------------------------------------------------------------

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        number = self.connections
        try:
            server_r, server_w = await asyncio.open_connection(
                self.target_host, self.target_port, limit=_LINE_LIMIT
            )
        except BaseException as error:  # a refused connection, or the proxy closing
            client_w.close()
            self._tasks.discard(task)
            if isinstance(error, OSError):
                return
            raise
        upstream = asyncio.create_task(self._client_to_server(client_r, server_w, client_w, number))
        try:
            await self._server_to_client(server_r, client_w)
        finally:
            upstream.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await upstream
            self._tasks.discard(task)
            await close_writers(server_w, client_w)

    async def _client_to_server(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        number: int,
    ) -> None:
        starts_command = True
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ConnectionError):
            while line := await reader.readuntil(b"\n"):
                if starts_command:
                    line = await self._command(line, number)
                    refused = self._refused(line)
                    if refused is not None:
                        client.write(refused)
                        await client.drain()
                        continue
                writer.write(line)
                literal = _LITERAL.search(line)
                if literal:
                    await writer.drain()
                    writer.write(await reader.readexactly(int(literal.group(1))))
                starts_command = literal is None
                await writer.drain()
            writer.write_eof()

    async def _command(self, line: bytes, number: int) -> bytes:
        match = _COMMAND.match(line)
        if match is None:
            return line  # e.g. DONE, or an AUTHENTICATE continuation
        name = " ".join(match.group("name").decode().upper().split())
        shown = name if name in ("LOGIN", "AUTHENTICATE") else line.decode(errors="replace")
        self.commands.append(Command(number, name, shown.rstrip()))
        if name == "APPEND":
            self.appends += 1
        if self.quirks.search_by_sequence and name == "UID SEARCH":
            edited = _UID_SEARCH_UID.sub(rb"\1", line)
            self.rewritten += edited != line
            line = edited
        for hold in self._holds:
            if hold.name == name and not hold.reached.is_set():
                hold.reached.set()
                await hold.released.wait()
                break
        return line

    def _refused(self, line: bytes) -> bytes | None:
        match = _COMMAND.match(line)
        if match is None:
            return None
        name = " ".join(match.group("name").decode().upper().split())
        for refusal in self._refusals:
            if not refusal.used and refusal.name == name and refusal.containing in line.decode():
                refusal.used = True
                return match.group("tag") + b" NO [UNAVAILABLE] Refused for the test.\r\n"
        return None

    async def _server_to_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        hidden = [
            re.compile(rb" " + re.escape(c.encode()) + rb"(?=[ \]\r])", re.I)
            for c in self.quirks.hidden
        ]
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ConnectionError):
            while line := await reader.readuntil(b"\n"):
                literal = _LITERAL.search(line)
                line = self._response(line, hidden)
                if line:
                    writer.write(line)
                if literal:
                    writer.write(await reader.readexactly(int(literal.group(1))))
                await writer.drain()

    def _response(self, line: bytes, hidden: list[re.Pattern[bytes]]) -> bytes:
        original = line
        if self.quirks.strip_uidnext and _UIDNEXT_LINE.match(line):
            self.rewritten += 1
            return b""
        if hidden and b"CAPABILITY" in line.upper():
            for pattern in hidden:
                line = pattern.sub(b"", line)
        if self.quirks.bump_uidvalidity and self.appends:
            line = _UIDVALIDITY.sub(
                lambda m: m.group(1) + b" " + str(int(m.group(2)) + self.appends).encode(), line
            )
        self.rewritten += line != original
        return line

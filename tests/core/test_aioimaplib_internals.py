"""core/mail/protocol.py and core/mail/imap.py subclass aioimaplib through its private
internals. This fails, naming them, when the installed aioimaplib is not the one they
were written for: a version outside the pinned range, or a private method they override
or call that changed its parameters or, for the ones they replace, its code."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

from aioimaplib import aioimaplib as lib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from core.mail.protocol import AIOIMAPLIB_VERSIONS

MODULES = "core/mail/protocol.py and core/mail/imap.py (_DirectIMAP4)"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

# (function, its parameter names) for every private method the modules override or call.
SIGNATURES: list[tuple[Any, str]] = [
    (lib.IMAP4ClientProtocol.__init__, "self loop conn_lost_cb"),
    (lib.IMAP4ClientProtocol._handle_responses, "self data line_handler current_cmd"),
    (lib.IMAP4ClientProtocol._handle_line, "self line current_cmd"),
    (lib.IMAP4ClientProtocol.data_received, "self d"),
    (lib.IMAP4ClientProtocol.fetch, "self message_set message_parts by_uid timeout"),
    (lib.IMAP4ClientProtocol.execute, "self command scrub"),
    (lib.IMAP4ClientProtocol.new_tag, "self"),
    (lib.IMAP4ClientProtocol.welcome, "self command"),
    (lib.IMAP4ClientProtocol.connection_lost, "self exc"),
    (lib.IMAP4ClientProtocol.capability, "self"),
    (lib.Command.close, "self line result"),
    (lib.Command._reset_timer, "self"),
    (lib.Command.__init__, "self name tag args prefix untagged_resp_name loop timeout"),
    (lib.Command.wait_data, "self"),
    (lib.Command.wait_literal_data, "self"),
    (lib.Command.append_literal_data, "self data"),
    (lib.Command.begin_literal_data, "self expected_size literal_data"),
    (lib.Command.append_to_resp, "self line result"),
    (lib.FetchCommand.__init__, "self tag args prefix untagged_resp_name loop timeout"),
    (lib.IncompleteRead.__init__, "self cmd data"),
    (lib.IMAP4.__init__, "self host port loop timeout conn_lost_cb ssl_context"),
    (lib.IMAP4.create_client, "self host port loop conn_lost_cb ssl_context"),
]
# The code the modules replace, as it was in aioimaplib 2.0.3: a change upstream (a bug
# fix, say) must be looked at and carried over to the replacement.
REPLACED = {
    lib.IMAP4ClientProtocol.data_received: "f4e4f02478babbeb",
    lib.IMAP4ClientProtocol._handle_responses: "b85f6640b4ca5fe6",
    lib.IMAP4ClientProtocol.fetch: "9e9d4d32f2081859",
    lib.FetchCommand.wait_data: "17ec7328fd9b7bba",
    lib.IMAP4.create_client: "4c6284d94662f228",
    lib.IMAP4ClientProtocol.welcome: "84f3266a6516457b",
    # The short path for untagged lines keeps what these two do for plain commands.
    lib.IMAP4ClientProtocol._handle_line: "3e3c734ed4244c4f",
    lib.IMAP4ClientProtocol._untagged_response: "293b7da830751ce5",
    lib.IMAP4ClientProtocol.connection_lost: "4876e95ec7f3e664",
}
# Attributes of a protocol object the modules read or set.
PROTOCOL_ATTRIBUTES = (
    "current_command",
    "pending_sync_command",
    "pending_async_commands",
    "state",
    "state_condition",
    "capabilities",
    "transport",
    "loop",
)


def _loud(problem: str) -> str:
    return (
        f"aioimaplib {version('aioimaplib')}: {problem}. {MODULES} were written for "
        f"aioimaplib{AIOIMAPLIB_VERSIONS}: re-check them against the new source, then "
        "update the range (here and in pyproject.toml) and this test's records."
    )


def test_the_pinned_range_is_the_one_the_modules_were_written_for() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pinned = [Requirement(d) for d in dependencies if Requirement(d).name == "aioimaplib"]
    assert [r.specifier for r in pinned] == [SpecifierSet(AIOIMAPLIB_VERSIONS)], _loud(
        f"pyproject.toml pins {[str(r.specifier) for r in pinned]}"
    )
    installed = Version(version("aioimaplib"))
    assert pinned[0].specifier.contains(installed), _loud("installed outside the pinned range")


def test_the_private_methods_relied_on_keep_their_parameters() -> None:
    for function, expected in SIGNATURES:
        names = list(inspect.signature(function).parameters)
        assert names == expected.split(), _loud(f"{function.__qualname__}{tuple(names)} changed")


def test_the_replaced_code_is_unchanged_upstream() -> None:
    for function, digest in REPLACED.items():
        source = inspect.getsource(function).encode()
        assert hashlib.sha256(source).hexdigest()[:16] == digest, _loud(
            f"{function.__qualname__} changed"
        )


async def test_a_protocol_has_the_state_the_reader_uses() -> None:
    protocol = lib.IMAP4ClientProtocol(None)
    missing = [name for name in PROTOCOL_ATTRIBUTES if not hasattr(protocol, name)]
    assert not missing, _loud(f"IMAP4ClientProtocol has no {missing}")
    assert lib.CRLF == b"\r\n", _loud("CRLF changed")
    command = lib.Command("NOOP", "A1", loop=asyncio.get_running_loop())
    missing = [
        name
        for name in ("_resp_lines", "_resp_result", "_event", "_exception", "_timer")
        if not hasattr(command, name)
    ]
    assert not missing, _loud(f"Command has no {missing}")
    assert (lib.CONNECTED, lib.NONAUTH, lib.AUTH) == ("CONNECTED", "NONAUTH", "AUTH"), _loud(
        "the protocol states changed"
    )

"""Fixtures of the worker fault tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.mailservers import ImapServer
from tests.support.sync import Mailbox, private_mailbox


@pytest.fixture
async def mailbox(dovecot: ImapServer, tmp_path: Path) -> AsyncIterator[Mailbox]:
    """A new Dovecot mailbox of this test's own."""
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        yield box

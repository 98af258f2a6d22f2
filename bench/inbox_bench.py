"""Inbox benchmark: the unified inbox over HTTP against the running app, and the SQL floor.

    python -m bench.inbox_bench [--messages N] [--requests R] [--keep | --reuse DB]
                                [--plan-cache-mode MODE] [--explain] [--strict]

One run, on this machine:

1. loads N messages (default 1,000,000) into a fresh, migrated database: 2 companies,
   10 users, 25 mail accounts with INBOX/Sent/Archive folders. The measured viewer owns 5
   accounts; 5 of the teammates' accounts are SHARED, so the viewer's all-accounts view
   covers 10 INBOX folders. Users come from ``create_user``; accounts, folders and the
   messages are written with SQL (``COPY`` from two loader processes; the indexes of
   ``messages`` are dropped during the load and built again from their own definitions
   afterwards), then folder counts are refreshed and the table is VACUUM ANALYZEd;
2. starts ``mailsync api`` (uvicorn, one process) on a free loopback port and waits for
   ``/readyz``;
3. times inbox queries over HTTP (httpx, one keep-alive connection, sequential, after a
   warm-up): the first page of 50 in the all-accounts view, the same for one account,
   page 200 through cursors, a search for a rare and for a common word, and the first
   page of ``conversations`` (all accounts, one account);
4. the floor: the same statements (the scope query and ``core.inbox.repository``'s page
   statement, compiled once) through asyncpg's statement cache on a plain connection with
   the app's connection settings, as the app prepares them, checked to return the rows the
   API returned; again with the database's own plan cache mode; and the GraphQL/SQL ratio
   per scenario;
5. the first-page request in-process (the same app on uvloop, driven through
   ``httpx.ASGITransport``): its SQL time, then a cProfile summarised by component;
6. EXPLAIN ANALYZE (custom and generic plan) of the slowest query that missed a target.

PostgreSQL and Redis: MAILSYNC_TEST_DATABASE_URL / MAILSYNC_TEST_REDIS_URL when set, else
embedded servers (``cli.embedded``). The database is dropped at the end unless ``--keep``;
``--reuse DB`` measures a database kept by an earlier run (loading 1M rows takes minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import enum
import html
import json
import os
import platform
import pstats
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    BenchError,
    asyncpg_dsn,
    cpu_model,
    database_server,
    database_url,
    fresh_database,
    load_average,
    nproc,
    redis_server,
    run_main,
    say,
    sql,
    tail,
)

# Targets from the issue (milliseconds, on a 2-core machine).
FIRST_PAGE_P50_MS = 30.0
FIRST_PAGE_P99_MS = 100.0
SEARCH_P50_MS = 100.0
# "Deep pages as fast as the first": page 200 p50 / first page p50, with room for noise.
DEEP_VS_FIRST = 1.25

PAGE_SIZE = 50
DEEP_PAGE = 200
WARMUP = 5
MIN_REQUESTS = 10
READY_TIMEOUT = 60.0
LOADERS = 2  # processes writing messages (COPY); the machine has 2 cores
COPY_BATCH = 2_000
YEARS = 3

VIEWER_EMAIL = "viewer@alpha.bench.example"
COMPANIES = ("Bench Alpha", "Bench Beta")
# Per company, per user: (accounts, how many of them SHARED). User 0 of Alpha is the viewer.
ACCOUNTS = (
    ((5, 0), (3, 2), (2, 1), (3, 1), (2, 1)),
    ((2, 1), (2, 0), (2, 1), (2, 1), (2, 0)),
)
FOLDERS = (("INBOX", "INBOX", 0.70), ("SENT", "Sent", 0.20), ("ARCHIVE", "Archive", 0.10))
DUPLICATE_SHARE = 0.03  # of the viewer's first INBOX, copied into the second one
RARE_SCOPE_COUNT = (10, 100)  # at 1M messages; smaller loads accept rarer words
MIN_MESSAGES = 50_000  # page 200 of the viewer's INBOX needs 10,000 of them in scope
COMMON_WORD = "contract"
PLACEHOLDER_SECRET = b"bench placeholder: never decrypted, no sync runs"


def _words(text: str) -> list[str]:
    return text.split()


# The top of the vocabulary: frequent words of business mail, most frequent first.
TOP_WORDS = _words(
    "the to and of a in for we you is on that this with be are it as our your will please "
    "can have from at by thanks if not all let me know team would like about next week "
    "meeting call order price quote contract customer update invoice time get just new "
    "one more send attached review today tomorrow also should could need help best regards "
    "follow up details project delivery account payment proposal agreement discuss schedule"
)
SYLLABLES = _words(
    "ka ro mi tes lan vor pel dri sun qua bel nor fim gar ho lu ze cri tan mo pra vel dos "
    "ri fa nu gel bra tho kin sol mer pi ast ul tro ven cal dru esh wil yor zan plo"
)


# -- the data ----------------------------------------------------------------------------


def vocabulary(seed: int, size: int = 40_000) -> list[str]:
    """TOP_WORDS, then made-up words of 2-4 syllables (distinct), most frequent first."""
    rng = random.Random(seed)  # noqa: S311  # test data
    words, seen = list(TOP_WORDS), set(TOP_WORDS)
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def _zipf_weights(size: int) -> list[float]:
    total, cumulative = 0.0, []
    for rank in range(size):
        total += 1.0 / (rank + 2.7) ** 1.05
        cumulative.append(total)
    return cumulative


class Text:
    """Paragraphs drawn from a Zipf-distributed vocabulary; each message body is a few of
    them, so every word's frequency follows the vocabulary's and tail words are rare."""

    def __init__(self, seed: int, paragraphs: int = 60_000) -> None:
        self.words = vocabulary(seed)
        cumulative = _zipf_weights(len(self.words))
        rng = random.Random(seed ^ 0x7E47)  # noqa: S311
        self.paragraphs: list[str] = []
        for _ in range(paragraphs):
            chosen = rng.choices(self.words, cum_weights=cumulative, k=rng.randint(20, 90))
            chosen[0] = chosen[0].capitalize()
            self.paragraphs.append(" ".join(chosen) + ".")
        self._cumulative = cumulative

    def words_of(self, rng: random.Random, count: int) -> list[str]:
        return rng.choices(self.words, cum_weights=self._cumulative, k=count)


FIRST_NAMES = _words(
    "Anna Ben Clara David Emma Felix Grace Hugo Ines Jonas Karin Leo Maria Nils Olga Paul "
    "Rosa Sam Tina Umar Vera Will Xenia Yusuf Zoe"
)
LAST_NAMES = _words(
    "Adams Berg Costa Dietz Evans Fischer Garcia Hansen Ito Jensen Keller Lopez Meyer Novak "
    "Olsen Petrov Quinn Rossi Schmidt Tanaka Ueda Vogel Weber Young Zimmer"
)
DOMAINS = _words(
    "acme.example northwind.example globex.example initech.example umbrella.example "
    "stark.example wayne.example hooli.example vandelay.example soylent.example"
)


def contacts(seed: int, count: int = 600) -> list[tuple[str, str]]:
    rng = random.Random(seed ^ 0xC0)  # noqa: S311
    people = []
    for index in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        address = f"{first.lower()}.{last.lower()}{index}@{rng.choice(DOMAINS)}"
        people.append((f"{first} {last}", address))
    return people


@dataclass
class FolderTask:
    """One folder's messages, written by one loader process."""

    account_index: int
    account_id: uuid.UUID
    address: str
    owner_name: str
    folder_id: uuid.UUID
    role: str
    count: int
    # The viewer's first INBOX also writes copies (same Message-ID) into the second one.
    duplicate_folder: tuple[uuid.UUID, uuid.UUID] | None = None  # (account, folder)


COPY_COLUMNS = (
    "account_id",
    "folder_id",
    "uid",
    "modseq",
    "message_id",
    "in_reply_to",
    "references",
    "thread_id",
    "subject",
    "from_name",
    "from_address",
    "to_addresses",
    "cc_addresses",
    "date",
    "internal_date",
    "snippet",
    "is_read",
    "is_flagged",
    "is_answered",
    "has_attachments",
    "attachments",
    "body_text",
    "body_html",
    "size",
)


def _person(name: str, address: str) -> dict[str, str]:
    return {"name": name, "address": address}


def folder_rows(
    task: FolderTask, text: Text, people: list[tuple[str, str]], seed: int, now: datetime
) -> Iterator[tuple[Any, ...]]:
    """The folder's messages as COPY records (COPY_COLUMNS), oldest first (UID order)."""
    rng = random.Random(f"{seed}:{task.account_index}:{task.role}")  # noqa: S311
    span = YEARS * 365 * 86400.0
    # Recent mail is denser: the age is span * u^2 for a uniform u.
    ages = sorted((span * rng.random() ** 2 for _ in range(task.count)), reverse=True)
    inbox, sent = task.role == "INBOX", task.role == "SENT"
    read_share = 0.80 if inbox else 0.97
    threads: list[tuple[uuid.UUID, str, str]] = []  # (thread id, subject, Message-ID)
    for index, age in enumerate(ages):
        uid = index + 1
        message_id = f"<{seed}.{task.account_index}.{task.role.lower()}.{uid}@mail.bench.example>"
        if threads and rng.random() < 0.45:
            thread_id, topic, parent = threads[
                -1 - min(int(rng.expovariate(0.2)), len(threads) - 1)
            ]
            subject, in_reply_to, references = f"Re: {topic}", parent, [parent]
        else:
            thread_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            words = text.words_of(rng, 12)
            topic = " ".join(words)[: rng.randint(20, 76)].strip().capitalize() or "Hello"
            subject, in_reply_to, references = topic, None, []
        threads.append((thread_id, topic, message_id))
        if len(threads) > 60:
            del threads[:20]
        contact = people[int(len(people) * rng.random() ** 2)]
        if sent:
            sender = (task.owner_name, task.address)
            to = [_person(*contact)]
        else:
            sender = contact
            to = [_person(task.owner_name, task.address)]
        if rng.random() < 0.3:
            to.append(_person(*rng.choice(people)))
        cc = [_person(*rng.choice(people)) for _ in range(rng.choice((0, 0, 0, 1, 2)))]
        target = int(500 * 8 ** rng.random())  # 0.5 - 4 KB, log-uniform
        paragraphs = [f"Hi {to[0]['name'].split()[0]},"]
        length = 0
        while length < target:
            paragraph = rng.choice(text.paragraphs)
            paragraphs.append(paragraph)
            length += len(paragraph) + 2
        paragraphs.append(f"Best regards,\n{sender[0]}")
        body_text = "\n\n".join(paragraphs)
        body_html = None
        if rng.random() < 0.35:
            inner = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
            body_html = f'<html><body><div dir="ltr">{inner}</div></body></html>'
        attachments: list[dict[str, Any]] = []
        if rng.random() < 0.10:
            size = int(20_000 * 100 ** rng.random())
            name = f"{rng.choice(text.words)}-{uid}.pdf"
            attachments.append({"filename": name, "contentType": "application/pdf", "size": size})
        date = now - timedelta(seconds=age)
        snippet = " ".join(body_text[:260].split())[:200]
        size = len(body_text) + len(body_html or "") + 900 + sum(a["size"] for a in attachments)
        record = (
            task.account_id,
            task.folder_id,
            uid,
            uid,
            message_id,
            in_reply_to,
            references,
            thread_id,
            subject,
            sender[0],
            sender[1],
            json.dumps(to),
            json.dumps(cc),
            date,
            date,
            snippet,
            sent or rng.random() < read_share,
            rng.random() < 0.03,
            inbox and rng.random() < 0.2,
            bool(attachments),
            json.dumps(attachments),
            body_text,
            body_html,
            size,
        )
        yield record
        if task.duplicate_folder is not None and rng.random() < DUPLICATE_SHARE:
            account_id, folder_id = task.duplicate_folder
            # The copy in the other account: same message, the other folder's UID space.
            yield (account_id, folder_id, 1_000_000_000 + uid, uid, *record[4:])


def load_part(url: str, tasks: list[FolderTask], seed: int, now: datetime) -> int:
    """A loader process: COPY these folders' messages in batches."""
    return asyncio.run(_load_part(url, tasks, seed, now))


async def _load_part(url: str, tasks: list[FolderTask], seed: int, now: datetime) -> int:
    import asyncpg

    text, people = Text(seed), contacts(seed)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    written = 0
    try:
        await connection.execute("SET synchronous_commit = off")
        for task in tasks:
            batch: list[tuple[Any, ...]] = []
            for record in folder_rows(task, text, people, seed, now):
                batch.append(record)
                if len(batch) >= COPY_BATCH:
                    await connection.copy_records_to_table(
                        "messages", records=batch, columns=COPY_COLUMNS
                    )
                    written += len(batch)
                    batch = []
            if batch:
                await connection.copy_records_to_table(
                    "messages", records=batch, columns=COPY_COLUMNS
                )
                written += len(batch)
    finally:
        await connection.close()
    return written


@dataclass
class Loaded:
    database: str
    url: str
    messages: int = 0
    seconds: float = 0.0
    steps: list[str] = field(default_factory=list)
    reused: bool = False


def _split_counts(total: int, weights: Sequence[float]) -> list[int]:
    raw = [total * w / sum(weights) for w in weights]
    counts = [int(x) for x in raw]
    for index in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)[
        : total - sum(counts)
    ]:
        counts[index] += 1
    return counts


async def _create_people(url: str, seed: int, total: int) -> list[FolderTask]:
    """Companies and users through the services; accounts and folders with SQL."""
    import asyncpg

    from core.db import create_engine, create_session_factory, session_scope
    from core.identity.service import create_user
    from core.models import Plan

    engine = create_engine(url, pool_size=1)
    owners: list[tuple[uuid.UUID, str, int, int]] = []  # (user id, name, company, user)
    try:
        factory = create_session_factory(engine)
        for company_index, company in enumerate(COMPANIES):
            for user_index in range(len(ACCOUNTS[company_index])):
                first = FIRST_NAMES[(company_index * 5 + user_index) % len(FIRST_NAMES)]
                email = (
                    VIEWER_EMAIL
                    if (company_index, user_index) == (0, 0)
                    else f"{first.lower()}{user_index}@{company.split()[1].lower()}.bench.example"
                )
                async with session_scope(factory) as session:
                    created = await create_user(
                        session,
                        company_name=company,
                        email=email,
                        name=f"{first} Bench",
                        plan=Plan.ENTERPRISE,
                        admin=user_index == 0,
                    )
                owners.append((created.user.id, created.user.name, company_index, user_index))
    finally:
        await engine.dispose()

    rng = random.Random(seed ^ 0xACC)  # noqa: S311
    accounts: list[tuple[uuid.UUID, uuid.UUID, str, str, str, float]] = []
    for user_id, name, company_index, user_index in owners:
        count, shared = ACCOUNTS[company_index][user_index]
        for number in range(count):
            address = f"{name.split()[0].lower()}.{number}@c{company_index}u{user_index}.example"
            sharing = "SHARED" if number >= count - shared else "PRIVATE"
            is_viewer = (company_index, user_index) == (0, 0)
            weight = (1.6, 1.3, 1.0, 0.8, 0.6)[number] if is_viewer else rng.uniform(0.5, 1.5)
            accounts.append((uuid.uuid4(), user_id, address, name, sharing, weight))

    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.executemany(
            """INSERT INTO mail_accounts (id, owner_id, email_address, display_name, status,
                   sharing, labels, past_sync, imap_host, imap_port, imap_security,
                   imap_username, imap_password_encrypted, last_synced_at)
               VALUES ($1, $2, $3, $4, 'ACTIVE', $5, '{INBOX,Sent,Archive}', 'ALL',
                   'imap.bench.invalid', 993, 'SSL', $3, $6, now())""",
            [
                (a[0], a[1], a[2], a[3], a[4], b"bench placeholder, never decrypted")
                for a in accounts
            ],
        )
        tasks: list[FolderTask] = []
        folder_rows_sql = []
        for index, (account_id, _, address, name, _, _) in enumerate(accounts):
            for role, folder_name, _ in FOLDERS:
                folder_id = uuid.uuid4()
                folder_rows_sql.append((folder_id, account_id, folder_name, role))
                tasks.append(FolderTask(index, account_id, address, name, folder_id, role, 0))
        await connection.executemany(
            """INSERT INTO folders (id, account_id, name, delimiter, role, selected, uidvalidity,
                   last_synced_at)
               VALUES ($1, $2, $3, '/', $4, true, 1, now())""",
            folder_rows_sql,
        )
    finally:
        await connection.close()
    weights = [a[5] * share for a in accounts for _, _, share in FOLDERS]
    return _assign_counts(tasks, weights, total)


def _assign_counts(tasks: list[FolderTask], weights: list[float], total: int) -> list[FolderTask]:
    for task, count in zip(tasks, _split_counts(total, weights), strict=True):
        task.count = count
    # The viewer's accounts are the first five; copies of some of the first INBOX go into
    # the second INBOX, which gets that many fewer messages of its own.
    first, second = tasks[0], tasks[len(FOLDERS)]
    first.duplicate_folder = (second.account_id, second.folder_id)
    second.count = max(0, second.count - round(first.count * DUPLICATE_SHARE))
    return tasks


async def _message_indexes(connection: Any) -> tuple[list[str], list[tuple[str, str]]]:
    """CREATE INDEX statements and (name, definition) of the constraints, except the key."""
    indexes = [
        r["definition"]
        for r in await connection.fetch(
            """SELECT pg_get_indexdef(i.indexrelid) AS definition
               FROM pg_index i
               WHERE i.indrelid = 'messages'::regclass AND NOT i.indisprimary
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"""
        )
    ]
    constraints = [
        (r["conname"], r["definition"])
        for r in await connection.fetch(
            """SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint
               WHERE conrelid = 'messages'::regclass AND contype IN ('u', 'f')"""
        )
    ]
    return indexes, constraints


async def _drop_indexes(url: str) -> tuple[list[str], list[tuple[str, str]]]:
    import asyncpg

    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        indexes, constraints = await _message_indexes(connection)
        for name, _ in constraints:
            await connection.execute(f'ALTER TABLE messages DROP CONSTRAINT "{name}"')
        for name in await connection.fetch(
            """SELECT indexrelid::regclass::text AS name FROM pg_index
               WHERE indrelid = 'messages'::regclass AND NOT indisprimary"""
        ):
            await connection.execute(f"DROP INDEX {name['name']}")
    finally:
        await connection.close()
    return indexes, constraints


async def _build_indexes(url: str, indexes: list[str], constraints: list[tuple[str, str]]) -> None:
    """The dropped indexes again, GIN on one connection and the rest on another."""
    import asyncpg

    async def run(statements: list[str]) -> None:
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await connection.execute("SET maintenance_work_mem = '512MB'")
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    gin = [s for s in indexes if " USING gin " in s]
    rest = [s for s in indexes if s not in gin] + [
        f'ALTER TABLE messages ADD CONSTRAINT "{name}" {definition}'
        for name, definition in sorted(constraints, key=lambda c: "FOREIGN" in c[1])
    ]
    await asyncio.gather(run(gin), run(rest))


async def _finish(url: str) -> int:
    import asyncpg

    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        # What core.sync.repository.refresh_folder_counts does, for every folder at once.
        await connection.execute(
            """UPDATE folders f SET message_count = c.total, unread_count = c.unread,
                   highest_uid = c.highest, server_message_count = c.total
               FROM (SELECT folder_id, count(*) AS total,
                            count(*) FILTER (WHERE NOT is_read) AS unread,
                            max(uid) AS highest
                     FROM messages WHERE uid > 0 GROUP BY folder_id) c
               WHERE f.id = c.folder_id"""
        )
        await connection.execute("VACUUM (ANALYZE) messages")
        await connection.execute("ANALYZE")
        return int(await connection.fetchval("SELECT count(*) FROM messages"))
    finally:
        await connection.close()


def load(url: str, name: str, total: int, seed: int) -> Loaded:
    loaded = Loaded(database=name, url=url)
    start = time.perf_counter()
    tasks = asyncio.run(_create_people(url, seed, total))
    indexes, constraints = asyncio.run(_drop_indexes(url))
    now = datetime.now(UTC)
    # Two loaders with about the same number of messages each.
    parts: list[list[FolderTask]] = [[] for _ in range(LOADERS)]
    sizes = [0] * LOADERS
    for task in sorted(tasks, key=lambda t: t.count, reverse=True):
        smallest = sizes.index(min(sizes))
        parts[smallest].append(task)
        sizes[smallest] += task.count
    copy_start = time.perf_counter()
    with ProcessPoolExecutor(LOADERS) as pool:
        futures = [pool.submit(load_part, url, part, seed, now) for part in parts]
        written = sum(f.result() for f in futures)
    copy_seconds = time.perf_counter() - copy_start
    index_start = time.perf_counter()
    asyncio.run(_build_indexes(url, indexes, constraints))
    index_seconds = time.perf_counter() - index_start
    finish_start = time.perf_counter()
    loaded.messages = asyncio.run(_finish(url))
    finish_seconds = time.perf_counter() - finish_start
    loaded.seconds = time.perf_counter() - start
    if loaded.messages != written:
        raise BenchError(f"wrote {written} messages but the table has {loaded.messages}")
    loaded.steps = [
        f"generate + COPY ({LOADERS} processes): {copy_seconds:.0f} s "
        f"({written / copy_seconds:,.0f} messages/s)",
        f"indexes ({len(indexes)} + {len(constraints)} constraints): {index_seconds:.0f} s",
        f"folder counts + VACUUM ANALYZE: {finish_seconds:.0f} s",
    ]
    return loaded


# -- what is measured --------------------------------------------------------------------


@dataclass
class Fixture:
    """The measured viewer in a loaded database."""

    token: str
    user_id: uuid.UUID
    company_id: uuid.UUID
    accounts: list[uuid.UUID]  # own accounts, largest INBOX first
    scope_folders: int
    scope_messages: int
    size_mb: float
    foreign_indexes: list[str]  # on messages, not from the models (someone's experiment?)
    message_key: bytes  # the installation's key of the API's message ids
    rare_word: str = ""
    rare_count: int = 0
    common_count: int = 0


def _model_indexes() -> set[str]:
    from core.models.base import Base

    table = Base.metadata.tables["messages"]
    names = {str(i.name) for i in table.indexes}
    return names | {str(c.name) for c in table.constraints if c.name is not None}


async def fixture(url: str, seed: int) -> Fixture:
    """A new token for the viewer, and the words to search for."""
    from core.db import create_engine, create_session_factory, session_scope
    from core.identity import repository as identity
    from core.identity.service import issue_token
    from core.inbox.search import to_tsquery_text

    engine = create_engine(url, pool_size=1)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            user = await identity.get_user_by_email(session, VIEWER_EMAIL)
            if user is None:
                raise BenchError(f"no {VIEWER_EMAIL} in this database: not a bench database")
            token = await issue_token(session, user)
            user_id, company_id = user.id, user.company_id
    finally:
        await engine.dispose()
    rows = await sql(
        url,
        """SELECT a.id FROM mail_accounts a JOIN folders f ON f.account_id = a.id
           WHERE a.owner_id = $1 AND f.role = 'INBOX' ORDER BY f.message_count DESC""",
        user_id,
    )
    scope = await sql(
        url,
        """SELECT f.id, f.message_count FROM folders f
           JOIN mail_accounts a ON a.id = f.account_id JOIN users u ON u.id = a.owner_id
           WHERE f.role = 'INBOX' AND u.company_id = $2
             AND (a.owner_id = $1 OR a.sharing = 'SHARED')""",
        user_id,
        company_id,
    )
    size = await sql(url, "SELECT pg_total_relation_size('messages')")
    indexes = await sql(
        url, "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'messages'::regclass"
    )
    key = await sql(url, "SELECT value FROM instance_secrets WHERE name = 'message_ids'")
    found = Fixture(
        message_key=bytes(key[0][0]),
        token=token,
        user_id=user_id,
        company_id=company_id,
        accounts=[r["id"] for r in rows],
        scope_folders=len(scope),
        scope_messages=sum(r["message_count"] for r in scope),
        size_mb=size[0][0] / 1e6,
        foreign_indexes=sorted(set(r[0] for r in indexes) - _model_indexes()),
    )
    folders = [r["id"] for r in scope]

    async def matches(word: str) -> int:
        result = await sql(
            url,
            """SELECT count(*) FROM messages WHERE folder_id = ANY($1::uuid[])
               AND search_vector @@ to_tsquery('simple', $2)""",
            folders,
            to_tsquery_text(word),
        )
        return int(result[0][0])

    found.common_count = await matches(COMMON_WORD)
    # A tail word of the vocabulary found 10-100 times (as a prefix) in the viewer's scope.
    words = vocabulary(seed)
    lowest = max(1, min(RARE_SCOPE_COUNT[0], found.scope_messages // 25_000))
    rng = random.Random(seed ^ 0x5A)  # noqa: S311
    for _ in range(400):
        word = words[rng.randrange(len(words) // 2, len(words))]
        count = await matches(word)
        if lowest <= count <= RARE_SCOPE_COUNT[1]:
            found.rare_word, found.rare_count = word, count
            break
    else:
        raise BenchError("no vocabulary word is rare enough in the viewer's scope")
    return found


INBOX_QUERY = """
query Inbox($filter: InboxFilter, $first: Int, $after: String) {
  inbox(filter: $filter, first: $first, after: $after) {
    edges {
      cursor
      node {
        id subject from { name address } to { name address } date snippet
        isRead isFlagged hasAttachments
        account { id emailAddress } folder { id name } threadId
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""


CONVERSATIONS_QUERY = """
query Conversations($filter: InboxFilter, $first: Int, $after: String) {
  conversations(filter: $filter, first: $first, after: $after) {
    edges {
      cursor
      node {
        id messageCount unreadCount isFlagged hasAttachments
        participants { name address }
        accounts { id emailAddress }
        latestMessage {
          id subject from { name address } date snippet isRead
          account { id emailAddress } folder { id name }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""


IDS_QUERY = """
query Inbox($filter: InboxFilter, $first: Int, $after: String) {
  inbox(filter: $filter, first: $first, after: $after) { edges { node { id } } }
}
"""


@dataclass
class Scenario:
    name: str
    filter: dict[str, Any]
    after: str | None = None
    # page, deep, search; conversations: no SQL floor; reference: no target; baseline:
    # no SQL either
    kind: str = "page"
    query: str = INBOX_QUERY
    graphql_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)  # prepared, as the app runs it
    custom_ms: list[float] = field(default_factory=list)  # the database's plan_cache_mode
    ids: list[str] = field(default_factory=list)  # what the API returned


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def api_server(env: dict[str, str], log: Path) -> Iterator[str]:
    """``mailsync api`` in a child process; its base URL once /readyz answers 200."""
    import httpx

    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603  # our own command
            [sys.executable, "-m", "cli.main", "api", "--host", "127.0.0.1", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if process.poll() is not None:
                raise BenchError(f"mailsync api exited ({process.returncode}); log:\n{tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise BenchError(
                    f"mailsync api not ready after {READY_TIMEOUT:.0f} s:\n{tail(log)}"
                )
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Api:
    def __init__(self, base: str, token: str) -> None:
        import httpx

        self.client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def post(self, query: str, variables: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """(milliseconds, the data) for one request."""
        start = time.perf_counter()
        response = self.client.post("/graphql", json={"query": query, "variables": variables})
        elapsed = (time.perf_counter() - start) * 1000
        body = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise BenchError(f"query {variables} failed ({response.status_code}): {body}")
        data: dict[str, Any] = body["data"]
        return elapsed, data

    def inbox(self, variables: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        elapsed, data = self.post(INBOX_QUERY, variables)
        return elapsed, data["inbox"]

    def close(self) -> None:
        self.client.close()


def _variables(scenario: Scenario) -> dict[str, Any]:
    if scenario.kind == "baseline":
        return {}
    return {"filter": scenario.filter, "first": PAGE_SIZE, "after": scenario.after}


def enough(times: list[float], requests: int, budget: float) -> bool:
    """``requests`` timings, or fewer (at least MIN_REQUESTS) once ``budget`` seconds went."""
    return len(times) >= requests or (len(times) >= MIN_REQUESTS and sum(times) / 1000 > budget)


def measure_http(api: Api, scenarios: list[Scenario], requests: int, budget: float) -> None:
    for scenario in scenarios:
        variables = _variables(scenario)
        for _ in range(WARMUP):
            api.post(scenario.query, variables)
        while not enough(scenario.graphql_ms, requests, budget):
            elapsed, data = api.post(scenario.query, variables)
            scenario.graphql_ms.append(elapsed)
        if scenario.kind == "baseline":
            continue
        listing = data["conversations" if scenario.kind == "conversations" else "inbox"]
        scenario.ids = [str(e["node"]["id"]) for e in listing["edges"]]
        if not scenario.ids:
            raise BenchError(f"{scenario.name}: the API returned no messages")


def deep_cursor(api: Api, filter: dict[str, Any]) -> tuple[str, float]:
    """Walk DEEP_PAGE - 1 pages; the last endCursor and the walk's mean per page (ms)."""
    after: str | None = None
    spent = 0.0
    for page in range(DEEP_PAGE - 1):
        elapsed, connection = api.inbox({"filter": filter, "first": PAGE_SIZE, "after": after})
        spent += elapsed
        after = connection["pageInfo"]["endCursor"]
        if not connection["pageInfo"]["hasNextPage"] or after is None:
            raise BenchError(f"the inbox ends at page {page + 1}; load more messages")
    assert after is not None
    return after, spent / (DEEP_PAGE - 1)


# -- the SQL floor -----------------------------------------------------------------------


class _Recorder:
    """Stands in for an AsyncSession to capture the statement scope_of executes, with the
    values it binds (the statement is built once, with bound parameters for the viewer)."""

    statement: Any = None
    values: dict[str, Any] = {}  # replaced per instance

    async def execute(self, statement: Any, values: Any = None, *args: Any, **kwargs: Any) -> Any:
        self.statement = statement
        self.values = dict(values or {})
        return self

    def all(self) -> list[Any]:
        return []


@dataclass
class Compiled:
    text: str
    names: list[str]
    values: dict[str, Any]

    def arguments(self, **given: Any) -> list[Any]:
        out = []
        for name in self.names:
            value = given[name] if name in given else self.values[name]
            out.append(value.value if isinstance(value, enum.Enum) else value)
        return out


def compile_statement(statement: Any) -> Compiled:
    """SQL text with $n placeholders exactly as SQLAlchemy's asyncpg dialect sends it."""
    from sqlalchemy.dialects.postgresql.asyncpg import dialect

    compiled = statement.compile(
        dialect=dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"render_postcompile": True},
    )
    names = list(compiled.positiontup or [])
    return Compiled(str(compiled), names, dict(compiled.params))


@dataclass
class FloorQuery:
    """A scenario's two statements as the app sends them, compiled once."""

    viewer: Any
    scope: Compiled
    page: Compiled
    page_filter: Any  # core.inbox.repository.PageFilter
    after: Any  # core.inbox.cursor.Cursor | None

    def page_arguments(self, scope_rows: Sequence[Any]) -> list[Any]:
        """The page query's parameters from the scope query's rows, the way scope_of and
        the repository bind them."""
        from core.inbox import repository

        accounts = sorted({r["account_id"] for r in scope_rows})
        own = sorted({r["account_id"] for r in scope_rows if r["owner_id"] == self.viewer.user_id})
        scope = repository.Scope([r["id"] for r in scope_rows], accounts, own)
        return self.page.arguments(
            **repository.page_parameters(scope, self.page_filter, self.after, PAGE_SIZE + 1)
        )


async def floor_query(viewer: Any, scenario: Scenario, ids: Any) -> FloorQuery:
    from core.inbox.cursor import decode_cursor
    from core.inbox.repository import PageFilter, page_statement, scope_of
    from core.inbox.search import to_tsquery_text
    from core.models import FolderRole

    account_ids = scenario.filter.get("accountIds")  # not `ids`: that decodes the cursor
    recorder = _Recorder()
    await scope_of(
        recorder,  # type: ignore[arg-type]
        viewer,
        FolderRole.INBOX,
        [uuid.UUID(i) for i in account_ids] if account_ids else None,
    )
    search = scenario.filter.get("search")
    page_filter = PageFilter(tsquery=to_tsquery_text(search) if search else None)
    after = decode_cursor(scenario.after, ids) if scenario.after else None
    scope = compile_statement(recorder.statement)
    scope.values.update(recorder.values)
    return FloorQuery(
        viewer,
        scope,
        compile_statement(page_statement(page_filter, after, PAGE_SIZE + 1)),
        page_filter,
        after,
    )


async def _sql_floor(
    connection: Any, viewer: Any, scenario: Scenario, requests: int, budget: float, ids: Any
) -> tuple[list[float], list[str]]:
    """(ms per iteration, the page's ids): the scope query and the page query through
    asyncpg's statement cache, which prepares each SQL text once per connection and keeps
    it, as SQLAlchemy's asyncpg dialect does. Scenarios with the same SQL text (the two
    searches) share one prepared statement and its plan cache, as they do in the app."""
    query = await floor_query(viewer, scenario, ids)

    async def once() -> list[Any]:
        rows = await connection.fetch(query.scope.text, *query.scope.arguments())
        return list(await connection.fetch(query.page.text, *query.page_arguments(rows)))

    for _ in range(WARMUP):
        await once()
    times: list[float] = []
    while not enough(times, requests, budget):
        start = time.perf_counter()
        rows = await once()
        times.append((time.perf_counter() - start) * 1000)
    return times, [ids.encode(r["id"]) for r in rows[:PAGE_SIZE]]


async def measure_sql(
    url: str, fx: Fixture, scenarios: list[Scenario], requests: int, budget: float
) -> None:
    """The floor twice: with the app's connection settings (``core.db.SERVER_SETTINGS``:
    custom plans, planned for the actual values every time), and with the database's own
    plan cache mode (PostgreSQL's default ``auto`` lets a prepared statement switch to a
    generic plan after five executions), for reference."""
    import asyncpg

    from core.db import SERVER_SETTINGS
    from core.identity.viewer import Viewer
    from core.ids import MessageIds
    from core.models import Plan, Role

    viewer = Viewer(fx.user_id, fx.company_id, Role.ADMIN, Plan.ENTERPRISE)
    for mode in ("default", "database"):
        settings = SERVER_SETTINGS if mode == "default" else {}
        connection = await asyncpg.connect(asyncpg_dsn(url), server_settings=settings)
        try:
            for scenario in scenarios:
                if scenario.kind in ("baseline", "conversations"):
                    continue
                times, got = await _sql_floor(
                    connection, viewer, scenario, requests, budget, MessageIds(fx.message_key)
                )
                if mode == "default":
                    scenario.sql_ms = times
                else:
                    scenario.custom_ms = times
                if got != scenario.ids:
                    raise BenchError(
                        f"{scenario.name}: the SQL floor ({mode}) returned other rows than "
                        f"the API ({got[:3]}... vs {scenario.ids[:3]}...)"
                    )
        finally:
            await connection.close()


def _literal(value: Any) -> str:
    """A parameter as an SQL literal, for EXECUTE of an SQL-level prepared statement."""
    if value is None:
        return "NULL"
    if isinstance(value, list):
        value = "{" + ",".join(str(v) for v in value) + "}"
    elif isinstance(value, datetime):
        value = value.isoformat()
    elif isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def explain(url: str, fx: Fixture, scenario: Scenario, generic: bool) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of a scenario's page query, with the plan for these values
    (custom) or the generic plan a prepared statement switches to."""
    import asyncpg

    from core.identity.viewer import Viewer
    from core.ids import MessageIds
    from core.models import Plan, Role

    viewer = Viewer(fx.user_id, fx.company_id, Role.ADMIN, Plan.ENTERPRISE)
    query = await floor_query(viewer, scenario, MessageIds(fx.message_key))
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await connection.fetch(query.scope.text, *query.scope.arguments())
        arguments = query.page_arguments(rows)
        if generic:
            await connection.execute("SET plan_cache_mode = force_generic_plan")
            await connection.execute("PREPARE bench_page AS " + query.page.text)
            values = ", ".join(_literal(a) for a in arguments)
            plan = await connection.fetch(
                f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_page({values})"
            )
        else:
            plan = await connection.fetch(
                "EXPLAIN (ANALYZE, BUFFERS) " + query.page.text, *arguments
            )
    finally:
        await connection.close()
    return [f"  {r[0]}"[:240] for r in plan]


# -- the profile -------------------------------------------------------------------------

COMPONENTS = (
    ("asyncpg", "asyncpg (driver, protocol)"),
    ("sqlalchemy", "SQLAlchemy (core, ORM, pool)"),
    ("strawberry/extensions", "strawberry extensions"),
    ("strawberry", "strawberry"),
    ("graphql/language", "graphql-core: parse"),
    ("graphql/validation", "graphql-core: validate"),
    ("graphql/", "graphql-core: execute"),
    ("starlette", "starlette"),
    ("httpx", "httpx (the in-process client)"),
    ("json", "JSON"),
    ("pydantic", "pydantic"),
    ("/core/", "mailsync core"),
    ("/api/", "mailsync api"),
    ("asyncio", "asyncio (futures, tasks)"),
)


def _component(filename: str, function: str) -> str:
    if "select.epoll" in function or "uvloop" in function or "run_until_complete" in function:
        return "event loop (uvloop) + waiting for PostgreSQL"
    if "_socket.socket" in function:
        return "socket send/recv (syscalls)"
    if "json" in function and filename == "~":
        return "JSON"
    for marker, name in COMPONENTS:
        if marker in filename:
            return name
    if filename == "~":
        return "builtins (C)"
    return "other Python"


@dataclass
class InProcess:
    """The first page served in-process: wall time, SQL and pool figures per request."""

    ms: float = 0.0
    profiled_ms: float = 0.0
    statements: float = 0.0
    sql_ms: float = 0.0  # sum over statements of execute -> rows fetched (driver included)
    checkouts: float = 0.0  # pool checkouts; with pool_pre_ping each costs a round trip


async def _profile(settings: Any, token: str, requests: int) -> tuple[pstats.Stats, InProcess]:
    import httpx
    from sqlalchemy import event

    from api.app import create_app
    from core.runtime import open_runtime

    app = create_app(settings)
    payload = {"query": INBOX_QUERY, "variables": {"filter": None, "first": PAGE_SIZE}}
    figures = InProcess()
    counts = {"statements": 0, "checkouts": 0, "sql": 0.0}
    async with open_runtime(settings) as runtime:
        app.state.runtime = runtime

        def before(connection: Any, *args: Any) -> None:
            counts["statements"] += 1
            connection.info["bench_started"] = time.perf_counter()

        def after(connection: Any, *args: Any) -> None:
            counts["sql"] += time.perf_counter() - connection.info.pop("bench_started")

        def checkout(*args: Any) -> None:
            counts["checkouts"] += 1

        event.listen(runtime.engine.sync_engine, "before_cursor_execute", before)
        event.listen(runtime.engine.sync_engine, "after_cursor_execute", after)
        event.listen(runtime.engine.sync_engine.pool, "checkout", checkout)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://bench",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            for _ in range(WARMUP):
                (await client.post("/graphql", json=payload)).raise_for_status()
            counts.update(statements=0, checkouts=0, sql=0.0)
            start = time.perf_counter()
            for _ in range(requests):
                await client.post("/graphql", json=payload)
            figures.ms = (time.perf_counter() - start) * 1000 / requests
            figures.statements = counts["statements"] / requests
            figures.checkouts = counts["checkouts"] / requests
            figures.sql_ms = counts["sql"] * 1000 / requests
            profiler = cProfile.Profile()
            start = time.perf_counter()
            profiler.enable()
            for _ in range(requests):
                response = await client.post("/graphql", json=payload)
            profiler.disable()
            figures.profiled_ms = (time.perf_counter() - start) * 1000 / requests
            if response.status_code != 200 or "errors" in response.json():
                raise BenchError(f"in-process inbox request failed: {response.text[:300]}")
    return pstats.Stats(profiler), figures


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def profile_summary(settings: Any, token: str, requests: int) -> list[str]:
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:  # uvicorn runs on uvloop
        stats, figures = runner.run(_profile(settings, token, requests))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    by_component: dict[str, float] = {}
    functions = []
    for (filename, line, function), (_, _, own, _, _) in raw.items():
        name = _component(filename, function)
        by_component[name] = by_component.get(name, 0.0) + own
        functions.append((own, f"{_short(filename)}:{line}({function})"))
    total = sum(by_component.values()) or 1.0
    per = 1000 / requests
    lines = [
        f"first page in-process (the app on httpx.ASGITransport, uvloop), {requests} requests: "
        f"{figures.ms:.1f} ms/request (client included), {figures.profiled_ms:.1f} under cProfile",
        f"  SQL: {figures.statements:.0f} statements/request, {figures.sql_ms:.1f} ms/request "
        f"from execute to rows fetched (summed; the two DataLoader queries overlap); "
        f"{figures.checkouts:.0f} pool checkouts/request, each with a pre-ping round trip",
        "  cProfile own time (greenlet switches charge some waiting for PostgreSQL to "
        "SQLAlchemy frames):",
    ]
    for name, own in sorted(by_component.items(), key=lambda kv: -kv[1])[:10]:
        lines.append(f"    {name:<40} {own * per:6.2f}  {100 * own / total:5.1f}%")
    lines.append("  top functions by own time (ms/request):")
    for own, where in sorted(functions, reverse=True)[:8]:
        lines.append(f"    {own * per:6.2f}  {where}")
    return lines


def _short(filename: str) -> str:
    for marker in ("site-packages/", str(REPO) + "/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# -- the report --------------------------------------------------------------------------


def percentile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass
class Report:
    environment: list[str] = field(default_factory=list)
    loaded: Loaded | None = None
    fixture: Fixture | None = None
    scenarios: list[Scenario] = field(default_factory=list)
    walk_ms: float = 0.0
    profile: list[str] = field(default_factory=list)
    explains: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _targets(scenario: Scenario, first_p50: float) -> list[tuple[str, float, float]]:
    """(what, value, limit) of the scenario's targets."""
    p50, p99 = percentile(scenario.graphql_ms, 50), percentile(scenario.graphql_ms, 99)
    if scenario.kind == "page":
        return [("p50 ms", p50, FIRST_PAGE_P50_MS), ("p99 ms", p99, FIRST_PAGE_P99_MS)]
    if scenario.kind == "conversations":
        return [("p50 ms", p50, FIRST_PAGE_P50_MS)]
    if scenario.kind == "deep":
        return [("p50 / first page p50", p50 / first_p50, DEEP_VS_FIRST)]
    if scenario.kind == "search":
        return [("p50 ms", p50, SEARCH_P50_MS)]
    return []


def _table(report: Report) -> tuple[list[str], list[Scenario]]:
    lines = [
        f"{'ms':<38}{'n':>4}{'GraphQL p50':>12}{'p90':>7}{'p99':>7}{'mean':>7} |"
        f"{'n':>4}{'SQL p50':>8}{'p99':>7}{'db mode':>8} |{'ratio':>6}"
    ]
    for s in report.scenarios:
        g = s.graphql_ms
        row = (
            f"{s.name:<38}{len(g):4}{percentile(g, 50):12.1f}{percentile(g, 90):7.1f}"
            f"{percentile(g, 99):7.1f}{statistics.fmean(g):7.1f} |"
        )
        if s.sql_ms and s.custom_ms:
            ratio = percentile(g, 50) / percentile(s.sql_ms, 50)
            row += (
                f"{len(s.sql_ms):4}{percentile(s.sql_ms, 50):8.1f}{percentile(s.sql_ms, 99):7.1f}"
                f"{percentile(s.custom_ms, 50):8.1f} |{ratio:6.1f}"
            )
        lines.append(row)
    lines += [
        "GraphQL: one HTTP request to `mailsync api` (auth, scope + page queries, DataLoaders, "
        "JSON).",
        "SQL: the scope + page queries prepared on asyncpg with the app's connection settings "
        "(custom plans);",
        "db mode: the same with the database's plan_cache_mode (PostgreSQL's default: auto); "
        "ratio: GraphQL p50 / SQL p50.",
    ]
    if report.walk_ms:
        lines.append(f"walking pages 1-{DEEP_PAGE - 1} took {report.walk_ms:.1f} ms per page")
    lines.append("targets:")
    missed: list[Scenario] = []
    first_p50 = percentile(report.scenarios[0].graphql_ms, 50)
    for s in report.scenarios:
        for what, value, limit in _targets(s, first_p50):
            ok = value <= limit
            lines.append(
                f"  {s.name + ', ' + what:<50} {value:8.2f} <= {limit:<6g} "
                f"{'ok' if ok else 'MISSED'}"
            )
            if not ok and s not in missed:
                missed.append(s)
    return lines, missed


def render(report: Report) -> tuple[list[str], list[Scenario]]:
    """The lines to print, and the scenarios that missed a target."""
    lines = ["=" * 100, "inbox benchmark", "-" * 100, *report.environment]
    if report.loaded:
        loaded = report.loaded
        how = "reused" if loaded.reused else f"loaded in {loaded.seconds:.0f} s"
        lines.append(f"database {loaded.database}: {loaded.messages:,} messages, {how}")
        lines.extend(f"  {step}" for step in loaded.steps)
    fx = report.fixture
    if fx:
        lines.append(
            f"messages table with indexes: {fx.size_mb / 1000:.1f} GB; viewer: 5 accounts, "
            f"all-accounts INBOX scope {fx.scope_folders} folders, {fx.scope_messages:,} messages"
        )
        if fx.foreign_indexes:
            lines.append(f"WARNING: indexes on messages not in the models: {fx.foreign_indexes}")
        lines.append(
            f"searches: rare word {fx.rare_word!r} ({fx.rare_count} in scope), common word "
            f"{COMMON_WORD!r} ({fx.common_count:,} in scope, "
            f"{100 * fx.common_count / max(fx.scope_messages, 1):.0f}%)"
        )
    missed: list[Scenario] = []
    if report.scenarios:
        lines.append("-" * 100)
        table, missed = _table(report)
        lines.extend(table)
    if report.profile:
        lines.append("-" * 100)
        lines.extend(report.profile)
    if report.explains:
        lines.append("-" * 100)
        lines.extend(report.explains)
    if report.problems:
        lines.append("-" * 100)
        lines.extend(f"PROBLEM: {p}" for p in report.problems)
    lines.append("=" * 100)
    return lines, missed


# -- the run -----------------------------------------------------------------------------


def scenarios_for(fx: Fixture) -> list[Scenario]:
    one = str(fx.accounts[0])
    return [
        Scenario("first page, all accounts", {}),
        Scenario("first page, one account", {"accountIds": [one]}),
        Scenario(f"page {DEEP_PAGE}, all accounts", {}, kind="deep"),
        Scenario("search, rare word", {"search": fx.rare_word}, kind="search"),
        Scenario("search, common word", {"search": COMMON_WORD}, kind="search"),
        Scenario(
            "conversations, first page, all accounts",
            {},
            kind="conversations",
            query=CONVERSATIONS_QUERY,
        ),
        Scenario(
            "conversations, first page, one account",
            {"accountIds": [one]},
            kind="conversations",
            query=CONVERSATIONS_QUERY,
        ),
        Scenario("reference: first page, only ids", {}, kind="reference", query=IDS_QUERY),
        Scenario("reference: {__typename} (HTTP+auth)", {}, kind="baseline", query="{__typename}"),
    ]


def _measure(report: Report, args: argparse.Namespace, url: str, redis_url: str) -> None:
    from core.crypto import generate_key
    from core.settings import Settings, load_settings

    fx = asyncio.run(fixture(url, args.seed))
    report.fixture = fx
    secret_keys = generate_key()
    env = {
        **os.environ,
        "MAILSYNC_DATABASE_URL": url,
        "MAILSYNC_REDIS_URL": redis_url,
        "MAILSYNC_SECRET_KEYS": secret_keys,
    }
    scenarios = scenarios_for(fx)
    with tempfile.TemporaryDirectory(prefix="mailsync-inbox-bench-") as workdir:
        say("starting mailsync api ...")
        with api_server(env, Path(workdir) / "api.log") as base:
            api = Api(base, fx.token)
            try:
                say(f"walking to page {DEEP_PAGE} ...")
                deep = next(s for s in scenarios if s.kind == "deep")
                deep.after, report.walk_ms = deep_cursor(api, deep.filter)
                say(f"timing {len(scenarios)} scenarios over HTTP, {args.requests} requests each")
                measure_http(api, scenarios, args.requests, args.budget)
            finally:
                api.close()
    report.scenarios = scenarios
    say("timing the SQL floor ...")
    asyncio.run(measure_sql(url, fx, scenarios, args.requests, args.budget))
    if args.profile_requests:
        say("profiling the first page in-process ...")
        settings = load_settings(
            Settings, database_url=url, redis_url=redis_url, secret_keys=secret_keys
        )
        report.profile = profile_summary(settings, fx.token, args.profile_requests)
    _, missed = render(report)
    # The plans of every scenario (--explain), else of the slowest query that missed.
    chosen: list[Scenario] = []
    if args.explain:
        chosen = [s for s in scenarios if s.sql_ms]
    elif missed:
        chosen = [max(missed, key=lambda s: percentile(s.sql_ms or [0.0], 50))]
    for scenario in chosen:
        for generic in (False, True):
            which = "generic plan" if generic else "custom plan"
            report.explains.append(f"EXPLAIN (ANALYZE, BUFFERS), {scenario.name}, {which}:")
            report.explains.extend(asyncio.run(explain(url, fx, scenario, generic)))


def run(args: argparse.Namespace) -> int:
    report = Report()
    report.environment = [
        f"machine: nproc {nproc()}, {cpu_model()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}",
        f"load average at start (1/5/15 min): {load_average()} "
        "(other work on the machine skews the figures)",
    ]
    with contextlib.ExitStack() as stack:
        say("PostgreSQL and Redis ...")
        server_url, server_from = stack.enter_context(database_server())
        redis_url, redis_from = stack.enter_context(redis_server())
        if args.reuse:
            url = database_url(server_url, args.reuse)
            try:
                count = asyncio.run(sql(url, "SELECT count(*) FROM messages"))[0][0]
            except Exception as exc:
                raise BenchError(f"cannot read the database {args.reuse}: {exc}") from exc
            report.loaded = Loaded(args.reuse, url, messages=count, reused=True)
        else:
            url = stack.enter_context(fresh_database(server_url, keep=args.keep))
            name = url.rsplit("/", 1)[1]
            say(f"loading {args.messages:,} messages into {name} ...")
            report.loaded = load(url, name, args.messages, args.seed)
            say(f"loaded in {report.loaded.seconds:.0f} s")
        version = asyncio.run(sql(url, "SHOW server_version"))[0][0]
        report.environment.append(f"PostgreSQL {version} ({server_from}); Redis ({redis_from})")
        if not args.load_only:
            name = report.loaded.database
            mode = args.plan_cache_mode
            report.environment.append(f"plan_cache_mode of the database: {mode}")
            try:
                if mode != "auto":  # for the app's connections too; undone below
                    asyncio.run(sql(url, f'ALTER DATABASE "{name}" SET plan_cache_mode = {mode}'))
                _measure(report, args, url, redis_url)
            except BenchError as exc:
                report.problems.append(str(exc))
            finally:
                if mode != "auto":
                    asyncio.run(sql(url, f'ALTER DATABASE "{name}" RESET plan_cache_mode'))
        lines, missed = render(report)
        for line in lines:
            say(line)
    if report.problems:
        return 1
    return 1 if args.strict and missed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.inbox_bench",
        description="The unified inbox over HTTP against `mailsync api`, with the raw SQL "
        "floor and a profile (prints figures).",
    )
    parser.add_argument("--messages", type=int, default=1_000_000, help="default 1000000")
    parser.add_argument(
        "--requests", type=int, default=200, help="timed requests per scenario (default 200)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=60.0,
        help=f"seconds per scenario after which fewer requests do (at least {MIN_REQUESTS}; "
        "default 60)",
    )
    parser.add_argument("--seed", type=int, default=1, help="data seed (default 1)")
    parser.add_argument(
        "--profile-requests",
        type=int,
        default=100,
        help="first-page requests run under cProfile in-process (default 100; 0: no profile)",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print EXPLAIN ANALYZE of every scenario (default: of those missing a target)",
    )
    parser.add_argument(
        "--plan-cache-mode",
        choices=("auto", "force_custom_plan", "force_generic_plan"),
        default="auto",
        help="PostgreSQL's plan_cache_mode for the bench database while it is measured "
        "(ALTER DATABASE; default auto, PostgreSQL's own default)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    reuse = parser.add_mutually_exclusive_group()
    reuse.add_argument("--keep", action="store_true", help="keep the loaded database")
    reuse.add_argument(
        "--reuse", metavar="DB", help="measure a database kept by an earlier --keep run"
    )
    parser.add_argument(
        "--load-only", action="store_true", help="load (use with --keep), measure nothing"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.messages < MIN_MESSAGES:
        print(f"error: --messages must be at least {MIN_MESSAGES}", file=sys.stderr)
        return 2
    if args.requests < 1:
        print("error: --requests must be at least 1", file=sys.stderr)
        return 2
    return run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

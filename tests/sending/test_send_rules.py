"""Who may send from which account, and what the mutations refuse (nothing is stored then)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import update

from core.db import session_scope
from core.models import AccountStatus, MailAccount, Plan, Sharing
from core.runtime import Runtime
from core.settings import Settings
from tests.sending.helpers import (
    OUTGOING_MESSAGES,
    add_sending_account,
    outgoing_rows,
    parse,
    run_worker,
    send,
    send_automated,
)
from tests.support.accounts import SET_DEFAULT, UPDATE_ACCOUNT
from tests.support.app import serve
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.inbox import api_id, seed_account, seed_messages
from tests.support.mailservers import ImapServer
from tests.support.smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401
from tests.support.statements import recorded_statements
from tests.support.sync import private_mailbox

NewUser = Callable[..., Awaitable[TestUser]]


def _errors(payload: dict[str, object]) -> list[tuple[object, object]]:
    assert payload["outgoing"] is None
    errors = payload["userErrors"]
    assert isinstance(errors, list)
    return [(e["code"], e["field"]) for e in errors]


async def test_default_other_own_account_and_a_teammates_shared_one(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    owner = await new_user(company="Sellers", plan=Plan.POWER)
    teammate = await new_user(company="Sellers")
    client, mate = gql.as_user(owner.token), gql.as_user(teammate.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await add_sending_account(client, box, smtp_server, address="one@example.com")
        second = await add_sending_account(
            client, box, smtp_server, address="two@example.com", own_mailbox=True
        )
        shared = await add_sending_account(mate, box, smtp_server, address="mate@example.com")
        made_shared = await mate.execute(
            UPDATE_ACCOUNT, {"input": {"accountId": shared["id"], "sharing": "SHARED"}}
        )
        assert made_shared["updateMailAccount"]["userErrors"] == []

        by_default = await send(client, subject="from the default")
        assert by_default["outgoing"]["fromAddress"] == "one@example.com"  # the first account
        by_choice = await send(client, fromAccountId=second["id"], subject="from the second")
        assert by_choice["outgoing"]["fromAddress"] == "two@example.com"
        # Readable (SHARED) is not sendable: it answers like an account that does not exist.
        assert _errors(await send(client, fromAccountId=shared["id"])) == [
            ("NOT_FOUND", "fromAccountId")
        ]
        assert _errors(await send(client, fromAccountId="not-an-id")) == [
            ("NOT_FOUND", "fromAccountId")
        ]
        assert len(await outgoing_rows(runtime)) == 2

        await run_worker(make_settings)
    senders = sorted(
        (r.mail_from, parse(r.data)["Subject"], parse(r.data)["From"]) for r in smtp_server.received
    )
    assert senders == [
        ("one@example.com", "from the default", "one@example.com"),
        ("two@example.com", "from the second", "two@example.com"),
    ]


async def test_automated_email_follows_the_default_and_needs_one(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    owner = await new_user(plan=Plan.POWER)
    client = gql.as_user(owner.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await add_sending_account(client, box, smtp_server, address="first@example.com")
        second = await add_sending_account(
            client, box, smtp_server, address="second@example.com", own_mailbox=True
        )

        before = await send_automated(client, subject="Follow-up 1")
        assert before["userErrors"] == []
        assert before["outgoing"]["fromAddress"] == "first@example.com"
        assert before["outgoing"]["automated"] is True

        changed = await client.execute(SET_DEFAULT, {"id": second["id"]})
        assert changed["setDefaultAccount"]["userErrors"] == []
        after = await send_automated(client, subject="Follow-up 2")
        assert after["outgoing"]["fromAddress"] == "second@example.com"

        cleared = await client.execute(SET_DEFAULT, {"id": None})
        assert cleared["setDefaultAccount"]["userErrors"] == []
        assert _errors(await send_automated(client)) == [("NO_DEFAULT_ACCOUNT", None)]
        assert _errors(await send(client)) == [("NO_DEFAULT_ACCOUNT", "fromAccountId")]
        # Naming the sender still works without a default.
        chosen = await send(client, fromAccountId=second["id"], subject="Manual")
        assert chosen["userErrors"] == []

        await run_worker(make_settings)
    delivered = sorted((parse(r.data)["Subject"], r.mail_from) for r in smtp_server.received)
    assert delivered == [
        ("Follow-up 1", "first@example.com"),
        ("Follow-up 2", "second@example.com"),
        ("Manual", "second@example.com"),
    ]
    rows = await outgoing_rows(runtime)
    assert [(r.subject, r.automated) for r in rows] == [
        ("Follow-up 1", True),
        ("Follow-up 2", True),
        ("Manual", False),
    ]


async def test_accounts_that_cannot_send(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    owner = await new_user(plan=Plan.POWER)
    client = gql.as_user(owner.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        imap_only = await add_sending_account(client, box, None)
        sending = await add_sending_account(client, box, smtp_server, own_mailbox=True)
    assert _errors(await send(client, fromAccountId=imap_only["id"])) == [
        ("ACCOUNT_NOT_SENDABLE", "fromAccountId")
    ]
    assert _errors(await send_automated(client)) == [("ACCOUNT_NOT_SENDABLE", None)]  # default
    for status in (AccountStatus.AUTH_FAILED, AccountStatus.PAUSED):
        async with session_scope(runtime.session_factory) as session:
            await session.execute(
                update(MailAccount).where(MailAccount.id == sending["id"]).values(status=status)
            )
        assert _errors(await send(client, fromAccountId=sending["id"])) == [
            ("ACCOUNT_NOT_READY", "fromAccountId")
        ]
    assert await outgoing_rows(runtime) == []


async def test_validation_errors_name_the_field(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    owner = await new_user()
    client = gql.as_user(owner.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await add_sending_account(client, box, smtp_server)
    cases = [
        ({"to": []}, ("INVALID_INPUT", "to")),
        ({"to": ["ok@example.org", "not an address"]}, ("INVALID_INPUT", "to[1]")),
        ({"cc": ["x@"]}, ("INVALID_INPUT", "cc[0]")),
        ({"bcc": ["Name <broken>"]}, ("INVALID_INPUT", "bcc[0]")),
        ({"subject": "  "}, ("INVALID_INPUT", "subject")),
        ({"bodyText": None}, ("INVALID_INPUT", "bodyText")),
        ({"bodyText": " ", "bodyHtml": ""}, ("INVALID_INPUT", "bodyText")),
        ({"inReplyToMessageId": "12345"}, ("NOT_FOUND", "inReplyToMessageId")),
    ]
    for fields, expected in cases:
        assert _errors(await send(client, **fields)) == [expected], fields
    assert _errors(await send_automated(client, to=["nope"])) == [("INVALID_INPUT", "to[0]")]
    assert await outgoing_rows(runtime) == []

    html_only = await send(
        client,
        bodyText=None,
        bodyHtml="<p>Hello <b>Ann</b>,</p><p>see <a href='https://example.org/q'>the quote</a>"
        "</p><script>alert(1)</script>",
    )
    assert html_only["userErrors"] == []
    [row] = await outgoing_rows(runtime)
    assert row.body_text == "Hello Ann,\n\nsee the quote (https://example.org/q)"
    assert row.body_html is not None


async def test_outgoing_messages_lists_the_viewers_own_newest_first(
    gql: GraphQLClient,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    owner = await new_user(company="Lister")
    other = await new_user(company="Lister")
    client = gql.as_user(owner.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await add_sending_account(client, box, smtp_server)
        await add_sending_account(gql.as_user(other.token), box, smtp_server)
    for subject in ("one", "two", "three"):
        assert (await send(client, subject=subject))["userErrors"] == []
    assert (await send(gql.as_user(other.token), subject="not yours"))["userErrors"] == []

    listed = await client.execute(OUTGOING_MESSAGES, {"first": 2})
    assert [m["subject"] for m in listed["outgoingMessages"]] == ["three", "two"]
    queued = await client.execute(OUTGOING_MESSAGES, {"first": 10, "status": "QUEUED"})
    assert [m["subject"] for m in queued["outgoingMessages"]] == ["three", "two", "one"]
    sent = await client.execute(OUTGOING_MESSAGES, {"first": 10, "status": "SENT"})
    assert sent["outgoingMessages"] == []
    [error] = await client.errors(OUTGOING_MESSAGES, {"first": 1000})
    assert error["extensions"]["code"] == "INVALID_INPUT"


async def test_rate_limit_per_account(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    owner = await new_user(plan=Plan.POWER)
    async with serve(make_settings(send_rate_per_hour=2)) as app:
        client = GraphQLClient(gql.http, app.graphql_url).as_user(owner.token)
        async with private_mailbox("dovecot", dovecot, tmp_path) as box:
            first = await add_sending_account(client, box, smtp_server)
            second = await add_sending_account(client, box, smtp_server, own_mailbox=True)
        for _ in range(2):
            assert (await send(client, fromAccountId=first["id"]))["userErrors"] == []
        assert _errors(await send(client, fromAccountId=first["id"])) == [("RATE_LIMITED", None)]
        assert _errors(await send_automated(client)) == [("RATE_LIMITED", None)]  # same account
        assert (await send(client, fromAccountId=second["id"]))["userErrors"] == []
    assert len(await outgoing_rows(runtime)) == 3


async def test_outgoing_messages_cost_the_same_statements_for_2_or_6(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    owner = await new_user(plan=Plan.POWER)
    client = gql.as_user(owner.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        accounts = [
            await add_sending_account(client, box, smtp_server, own_mailbox=index > 0)
            for index in range(2)
        ]
    query = """query($first: Int!) {
      outgoingMessages(first: $first) { id status account { id emailAddress owner { email } } }
    }"""
    counts = {}
    for first in (2, 6):
        while len(await outgoing_rows(runtime)) < first:
            account = accounts[len(await outgoing_rows(runtime)) % 2]
            assert (await send(client, fromAccountId=account["id"]))["userErrors"] == []
        with recorded_statements(runtime.engine) as statements:
            data = await client.execute(query, {"first": first})
        assert len(data["outgoingMessages"]) == first
        counts[first] = len(statements)
    # auth, the page, then one batch each: accounts, owners
    assert counts[2] == counts[6] <= 5, counts


async def test_replying_needs_a_message_the_viewer_may_read(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    owner = await new_user(company="Sellers")
    teammate = await new_user(company="Sellers")
    stranger = await new_user(company="Others")
    client = gql.as_user(owner.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await add_sending_account(client, box, smtp_server)
    private = await seed_account(runtime, teammate, sharing=Sharing.PRIVATE)
    shared = await seed_account(runtime, teammate, sharing=Sharing.SHARED)
    foreign = await seed_account(runtime, stranger, sharing=Sharing.SHARED)
    [hidden] = await seed_messages(runtime, private, [{"message_id": "hidden@x.example"}])
    [foreign_id] = await seed_messages(runtime, foreign, [{"message_id": "foreign@x.example"}])
    [readable] = await seed_messages(runtime, shared, [{"message_id": "shared@x.example"}])

    for message_id in (hidden, foreign_id):
        refused = await send(client, inReplyToMessageId=api_id(runtime, message_id))
        assert _errors(refused) == [("NOT_FOUND", "inReplyToMessageId")]
    assert await outgoing_rows(runtime) == []

    replied = await send(client, inReplyToMessageId=api_id(runtime, readable))
    assert replied["userErrors"] == []
    [row] = await outgoing_rows(runtime)
    assert row.in_reply_to == "shared@x.example"

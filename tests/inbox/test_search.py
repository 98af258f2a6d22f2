"""Full-text search: subject, addresses, body, phrases, prefixes; only readable mail."""

from __future__ import annotations

import pytest

from core.models import Sharing
from core.runtime import Runtime
from tests.support.accounts import NewUser
from tests.support.graphql import GraphQLClient
from tests.support.inbox import INBOX, seed_account, seed_messages

MAIL = [
    {
        "subject": "Quarterly report for Globex",
        "from_name": "Hank Scorpio",
        "from_address": "hank@globex.example",
        "body_text": "Please find the numbers attached. Revenue grew in every region.",
    },
    {
        "subject": "Lunch on Friday?",
        "from_name": "Marge Simpson",
        "from_address": "marge@springfield.example",
        "to_addresses": [{"name": "Jürgen Müller", "address": "juergen@kunde.example"}],
        "body_text": "The report can wait. Lunch at the usual place, noon.",
    },
    {
        "subject": "Invoice 2026-117",
        "from_name": "Billing",
        "from_address": "billing@initech.example",
        "cc_addresses": [{"name": "Bill Lumbergh", "address": "bill@initech.example"}],
        "body_text": "Your invoice is attached; payment is due in 30 days.",
    },
]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("quarterly", ["Quarterly report for Globex"]),  # subject word
        ("QUARTERLY", ["Quarterly report for Globex"]),  # any case
        ("report", ["Lunch on Friday?", "Quarterly report for Globex"]),  # subject or body
        ("revenue", ["Quarterly report for Globex"]),  # body word
        ("invoi", ["Invoice 2026-117"]),  # a prefix
        ('"report can wait"', ["Lunch on Friday?"]),  # a phrase
        ('"wait can report"', []),  # the phrase's words in another order
        ('"numbers attached" revenue', ["Quarterly report for Globex"]),  # phrase AND word
        ("hank@globex.example", ["Quarterly report for Globex"]),  # a whole address
        ("globex.example", ["Quarterly report for Globex"]),  # its domain
        ("marge", ["Lunch on Friday?"]),  # a local part / a name
        ("scorpio", ["Quarterly report for Globex"]),  # a display name
        ("müller", ["Lunch on Friday?"]),  # non-ASCII, in To
        ("lumbergh", ["Invoice 2026-117"]),  # in Cc
        ("2026-117", ["Invoice 2026-117"]),  # what the parser keeps together
        ("globex", ["Quarterly report for Globex"]),  # a prefix of a domain
        ("o'brien \\", []),  # quotes and backslashes are only text
        ("lunch invoice", []),  # every term must match
        ("nothing-like-this", []),
        ("'); DROP TABLE messages; --", []),  # only words reach the query
        ("!:* & | <-> ()", ["Invoice 2026-117", "Lunch on Friday?", "Quarterly report for Globex"]),
    ],
)
async def test_search_finds_by_subject_address_body_phrase_and_prefix(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime, search: str, expected: list[str]
) -> None:
    user = await new_user()
    account = await seed_account(runtime, user)
    await seed_messages(runtime, account, MAIL)
    data = await gql.as_user(user.token).execute(INBOX, {"filter": {"search": search}})
    found = sorted(e["node"]["subject"] for e in data["inbox"]["edges"])
    assert found == expected  # punctuation-only searches filter nothing


async def test_a_search_with_nul_is_a_client_error(gql: GraphQLClient, new_user: NewUser) -> None:
    """PostgreSQL cannot store or compare NUL: refused before the query, with its path."""
    user = await new_user()
    response = await gql.as_user(user.token).post(INBOX, {"filter": {"search": "revenue\x00"}})
    [error] = response.json()["errors"]
    assert response.status_code == 200
    assert error["extensions"] == {"code": "INVALID_INPUT", "path": "$filter.search"}


async def test_search_never_matches_mail_the_viewer_may_not_read(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    viewer = await new_user(company="Acme")
    teammate = await new_user(company="Acme")
    stranger = await new_user(company="Umbrella")
    mine = await seed_account(runtime, viewer)
    private = await seed_account(runtime, teammate, sharing=Sharing.PRIVATE)
    shared = await seed_account(runtime, teammate, sharing=Sharing.SHARED)
    other = await seed_account(runtime, stranger, sharing=Sharing.SHARED)
    for account, who in (
        (mine, "mine"),
        (private, "private"),
        (shared, "shared"),
        (other, "other"),
    ):
        await seed_messages(
            runtime, account, [{"subject": f"zanzibar {who}", "body_text": "zanzibar"}]
        )

    client = gql.as_user(viewer.token)
    data = await client.execute(INBOX, {"filter": {"search": "zanzibar"}})
    assert sorted(e["node"]["subject"] for e in data["inbox"]["edges"]) == [
        "zanzibar mine",
        "zanzibar shared",
    ]
    # Naming the ids the viewer may not read does not help.
    data = await client.execute(
        INBOX,
        {"filter": {"search": "zanzibar", "accountIds": [str(private.id), str(other.id)]}},
    )
    assert data["inbox"]["edges"] == []

"""Property: whatever strings a caller puts in a mutation's input, the answer is a client
error or a success, never a 5xx and never a masked internal error."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.accounts import NewUser
from tests.support.app import RunningApp
from tests.support.factories import TestUser
from tests.support.mailservers import ImapServer

# Every code point, lone surrogates and NUL included, and the line breaks of headers.
ANY_TEXT = st.text(
    alphabet=st.one_of(st.characters(exclude_categories=()), st.sampled_from('\r\n\x00<>@"\\')),
    max_size=300,
)
EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

MUTATIONS = {
    "addMailAccount": """mutation($input: AddMailAccountInput!) {
        addMailAccount(input: $input) { userErrors { code field } } }""",
    "updateMailAccount": """mutation($input: UpdateMailAccountInput!) {
        updateMailAccount(input: $input) { userErrors { code field } } }""",
    "sendEmail": """mutation($input: SendEmailInput!) {
        sendEmail(input: $input) { userErrors { code field } } }""",
    "markMessages": """mutation($ids: [ID!]!) {
        markMessages(ids: $ids, read: true) { userErrors { code field } } }""",
    "setDefaultAccount": """mutation($id: ID) {
        setDefaultAccount(accountId: $id) { userErrors { code field } } }""",
    "inbox": """query($filter: InboxFilter, $after: String) {
        inbox(filter: $filter, after: $after) { edges { cursor } } }""",
}


@pytest.fixture
async def user(new_user: NewUser) -> TestUser:
    return await new_user()


async def _post(
    http: httpx.AsyncClient, app: RunningApp, token: str, query: str, variables: dict[str, Any]
) -> None:
    response = await http.post(
        app.graphql_url,
        # JSON escapes: UTF-8 cannot carry a lone surrogate, a \\ud800 escape can.
        content=json.dumps({"query": query, "variables": variables}),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    assert response.status_code < 500, response.text
    for error in response.json().get("errors") or []:
        assert (error.get("extensions") or {}).get("code") != "INTERNAL", error
        assert error["message"] != "Unexpected error.", error


@EXAMPLES
@given(address=ANY_TEXT, name=ANY_TEXT, username=ANY_TEXT, password=ANY_TEXT, host=ANY_TEXT)
async def test_add_mail_account_never_fails_inside(
    http: httpx.AsyncClient,
    running_app: RunningApp,
    user: TestUser,
    dovecot: ImapServer,
    address: str,
    name: str,
    username: str,
    password: str,
    host: str,
) -> None:
    for imap_host in (host, dovecot.host):  # a hostile host, and one that answers
        imap = {
            "host": imap_host,
            "port": dovecot.port,
            "security": "NONE",
            "username": username,
            "password": password,
        }
        variables = {"input": {"emailAddress": address, "displayName": name, "imap": imap}}
        await _post(http, running_app, user.token, MUTATIONS["addMailAccount"], variables)


@EXAMPLES
@given(name=ANY_TEXT, account_id=ANY_TEXT, labels=st.lists(ANY_TEXT, max_size=5))
async def test_update_mail_account_never_fails_inside(
    http: httpx.AsyncClient,
    running_app: RunningApp,
    user: TestUser,
    name: str,
    account_id: str,
    labels: list[str],
) -> None:
    variables = {"input": {"accountId": account_id, "displayName": name, "labels": labels}}
    await _post(http, running_app, user.token, MUTATIONS["updateMailAccount"], variables)


@EXAMPLES
@given(
    to=st.lists(ANY_TEXT, max_size=4),
    cc=st.lists(ANY_TEXT, max_size=3),
    subject=ANY_TEXT,
    text=ANY_TEXT,
    html=ANY_TEXT,
    reply_to=ANY_TEXT,
)
async def test_send_email_never_fails_inside(
    http: httpx.AsyncClient,
    running_app: RunningApp,
    user: TestUser,
    to: list[str],
    cc: list[str],
    subject: str,
    text: str,
    html: str,
    reply_to: str,
) -> None:
    variables = {
        "input": {
            "to": to,
            "cc": cc,
            "subject": subject,
            "bodyText": text,
            "bodyHtml": html,
            "inReplyToMessageId": reply_to,
        }
    }
    await _post(http, running_app, user.token, MUTATIONS["sendEmail"], variables)


@EXAMPLES
@given(ids=st.lists(ANY_TEXT, max_size=5), search=ANY_TEXT, cursor=ANY_TEXT, one=ANY_TEXT)
async def test_ids_searches_and_cursors_never_fail_inside(
    http: httpx.AsyncClient,
    running_app: RunningApp,
    user: TestUser,
    ids: list[str],
    search: str,
    cursor: str,
    one: str,
) -> None:
    await _post(http, running_app, user.token, MUTATIONS["markMessages"], {"ids": ids})
    await _post(http, running_app, user.token, MUTATIONS["setDefaultAccount"], {"id": one})
    variables = {"filter": {"search": search, "accountIds": ids}, "after": cursor}
    await _post(http, running_app, user.token, MUTATIONS["inbox"], variables)

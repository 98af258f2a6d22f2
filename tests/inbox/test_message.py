"""One message: decoded bodies, sanitized HTML, attachments; folder counts."""

from __future__ import annotations

import pytest

from core.inbox.sanitize import sanitize_html
from core.runtime import Runtime
from tests.support.accounts import NewUser
from tests.support.graphql import GraphQLClient
from tests.support.inbox import MARK, MESSAGE, api_id, seed_account, seed_messages

# (hostile input, a fragment that must not survive)
HOSTILE = [
    ("<script>alert(1)</script>", "alert"),
    ("<SCRIPT SRC=//evil.example/x.js></SCRIPT>", "evil"),
    ('<img src="x" onerror="alert(1)">', "onerror"),
    ('<body onload="alert(1)">hi</body>', "onload"),
    ('<a href="javascript:alert(1)">click</a>', "javascript"),
    ('<a href="JaVaScRiPt:alert(1)">click</a>', "alert"),
    ('<a href="jav&#x09;ascript:alert(1)">click</a>', "alert"),
    ('<a href="vbscript:msgbox(1)">click</a>', "vbscript"),
    ('<a href="data:text/html;base64,PHNjcmlwdD4=">click</a>', "data:"),
    ('<img src="data:image/svg+xml;base64,PHN2Zz4=">', "data:"),
    ('<svg onload="alert(1)"><circle r="1"/></svg>', "svg"),
    ("<svg><script>alert(1)</script></svg>", "alert"),
    ('<math><mi xlink:href="javascript:alert(1)">x</mi></math>', "javascript"),
    ('<div style="background:url(javascript:alert(1))">x</div>', "style"),
    ('<div style="width: expression(alert(1))">x</div>', "expression"),
    ("<style>body { background: url(https://track.example/p) }</style>", "track.example"),
    ('<link rel="stylesheet" href="https://evil.example/x.css">', "evil"),
    ('<iframe src="https://evil.example"></iframe>', "iframe"),
    ('<object data="x.swf"></object><embed src="x.swf">', "swf"),
    ('<form action="https://evil.example"><input name="pw"></form>', "form"),
    ('<meta http-equiv="refresh" content="0;url=https://evil.example">', "refresh"),
    ('<base href="https://evil.example/">', "base"),
    ("<!--[if IE]><script>alert(1)</script><![endif]-->", "alert"),
    ("<scr<script>ipt>alert(1)</scr</script>ipt>", "<script"),
    ('<p title="&quot;><script>alert(1)</script>">x</p>', "<script"),
]


@pytest.mark.parametrize(("html", "forbidden"), HOSTILE)
def test_sanitizer_removes_active_content(html: str, forbidden: str) -> None:
    cleaned = sanitize_html(f"<p>before</p>{html}<p>after</p>")
    assert cleaned is not None
    assert forbidden.lower() not in cleaned.lower()
    assert "<p>before</p>" in cleaned and "<p>after</p>" in cleaned


def test_sanitizer_keeps_what_mail_needs() -> None:
    html = (
        '<table width="100%"><tr><td align="center"><b>Hi</b> <i>there</i></td></tr></table>'
        '<img src="cid:logo@acme.example" alt="Acme">'
        '<img src="https://cdn.example/pic.png">'
        '<a href="https://acme.example/offer">offer</a> <a href="mailto:sales@acme.example">'
        "mail us</a><ul><li>one</li></ul><blockquote>quoted</blockquote>"
    )
    cleaned = sanitize_html(html, allow_remote_images=True)
    assert cleaned is not None
    for kept in (
        'src="cid:logo@acme.example"',
        'src="https://cdn.example/pic.png"',
        'href="https://acme.example/offer"',
        'href="mailto:sales@acme.example"',
        'rel="noopener noreferrer nofollow"',
        "<b>Hi</b>",
        "<blockquote>quoted</blockquote>",
        'align="center"',
    ):
        assert kept in cleaned
    assert sanitize_html(None) is None


def test_remote_images_are_blocked_unless_asked_for() -> None:
    """A tracking pixel tells its sender when and where the mail was read."""
    html = '<img src="https://track.example/p.gif?u=42" alt="pixel"><img src="cid:logo@x">'
    blocked = sanitize_html(html)
    assert blocked == '<img alt="pixel"><img src="cid:logo@x">'
    allowed = sanitize_html(html, allow_remote_images=True)
    assert allowed is not None and 'src="https://track.example/p.gif?u=42"' in allowed


@pytest.mark.parametrize(
    "url", ["/account/delete", "//evil.example/x", "#top", "account", " //evil.example"]
)
def test_relative_and_protocol_relative_urls_are_dropped(url: str) -> None:
    """They would resolve against the API's (or the SPA's) own origin."""
    cleaned = sanitize_html(f'<a href="{url}">x</a><img src="{url}">', allow_remote_images=True)
    assert cleaned == '<a rel="noopener noreferrer nofollow">x</a><img>'


async def test_message_has_bodies_addresses_attachments_and_clean_html(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    user = await new_user()
    account = await seed_account(runtime, user)
    hostile = "".join(html for html, _ in HOSTILE)
    [message_id] = await seed_messages(
        runtime,
        account,
        [
            {
                "subject": "Proposal",
                "from_name": "Ann",
                "from_address": "ann@customer.example",
                "to_addresses": [{"name": "Me", "address": account.address}],
                "cc_addresses": [{"name": None, "address": "boss@customer.example"}],
                "snippet": "Here is the proposal",
                "body_text": "Here is the proposal.\nRegards, Ann",
                "body_html": f'<p>Here is the <b>proposal</b>.</p><img src="cid:sig@x">{hostile}',
                "has_attachments": True,
                "attachments": [
                    {"filename": "proposal.pdf", "contentType": "application/pdf", "size": 48213}
                ],
            }
        ],
    )
    message = (await gql.as_user(user.token).execute(MESSAGE, {"id": api_id(runtime, message_id)}))[
        "message"
    ]
    assert message["subject"] == "Proposal"
    assert message["from"] == {"name": "Ann", "address": "ann@customer.example"}
    assert message["to"] == [{"name": "Me", "address": account.address}]
    assert message["cc"] == [{"name": None, "address": "boss@customer.example"}]
    assert message["bodyText"] == "Here is the proposal.\nRegards, Ann"
    assert message["bodyHtml"].startswith("<p>Here is the <b>proposal</b>.</p>")
    assert '<img src="cid:sig@x">' in message["bodyHtml"]
    active = ("<script", "onerror", "onload", "javascript:", "<svg", "style", "<iframe", "<form")
    for forbidden in active:
        assert forbidden not in message["bodyHtml"].lower()
    assert message["hasAttachments"] is True
    assert message["attachments"] == [
        {"filename": "proposal.pdf", "contentType": "application/pdf", "size": 48213}
    ]


FOLDERS = """
query Account($id: ID!) {
  mailAccount(id: $id) { messageCount folders { name role messageCount unreadCount } }
}
"""


async def test_folder_counts_follow_marking(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    user = await new_user()
    account = await seed_account(runtime, user)
    ids = await seed_messages(runtime, account, [{"is_read": i < 2} for i in range(5)])
    client = gql.as_user(user.token)

    async def counts() -> tuple[int, dict[str, tuple[int, int]]]:
        data = (await client.execute(FOLDERS, {"id": str(account.id)}))["mailAccount"]
        folders = {f["name"]: (f["messageCount"], f["unreadCount"]) for f in data["folders"]}
        return data["messageCount"], folders

    assert await counts() == (5, {"INBOX": (5, 3), "Sent": (0, 0)})
    marked = await client.execute(MARK, {"ids": [api_id(runtime, i) for i in ids], "read": True})
    assert marked["markMessages"]["userErrors"] == []
    assert await counts() == (5, {"INBOX": (5, 0), "Sent": (0, 0)})
    await client.execute(MARK, {"ids": [api_id(runtime, ids[0])], "read": False, "flagged": True})
    assert await counts() == (5, {"INBOX": (5, 1), "Sent": (0, 0)})


@pytest.mark.parametrize(
    ("variables", "code", "field"),
    [
        ({"ids": ["1"]}, "INVALID_INPUT", "read"),
        ({"ids": [], "read": True}, "INVALID_INPUT", "ids"),
        ({"ids": ["1"] * 501, "read": True}, "INVALID_INPUT", "ids"),
    ],
)
async def test_mark_messages_rejects_bad_input(
    gql: GraphQLClient, new_user: NewUser, variables: dict[str, object], code: str, field: str
) -> None:
    user = await new_user()
    data = await gql.as_user(user.token).execute(MARK, variables)
    errors = data["markMessages"]["userErrors"]
    assert [(e["code"], e["field"]) for e in errors] == [(code, field)]


async def test_remote_images_through_the_api_only_when_asked_for(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    user = await new_user()
    account = await seed_account(runtime, user)
    html = '<p>Hi</p><img src="https://track.example/p.gif?u=1"><a href="/x">x</a>'
    [message_id] = await seed_messages(runtime, account, [{"body_html": html}])
    query = """query($id: ID!) { message(id: $id) {
        blocked: bodyHtml allowed: bodyHtml(allowRemoteImages: true) } }"""
    data = await gql.as_user(user.token).execute(query, {"id": api_id(runtime, message_id)})
    assert "track.example" not in data["message"]["blocked"]
    assert 'src="https://track.example/p.gif?u=1"' in data["message"]["allowed"]
    assert 'href="/x"' not in data["message"]["allowed"]


async def test_message_ids_are_opaque_stable_and_unforgeable(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    """A global sequence would tell any user how much mail every company receives."""
    user = await new_user()
    account = await seed_account(runtime, user)
    first, second = await seed_messages(runtime, account, [{"subject": "a"}, {"subject": "b"}])
    client = gql.as_user(user.token)
    listed = await client.execute("{ inbox { edges { node { id subject } } } }")
    ids = {e["node"]["subject"]: e["node"]["id"] for e in listed["inbox"]["edges"]}
    assert ids == {"a": api_id(runtime, first), "b": api_id(runtime, second)}
    assert not any(i.isdigit() or str(first) in i for i in ids.values())
    again = await client.execute("{ inbox { edges { node { id } } } }")
    assert {e["node"]["id"] for e in again["inbox"]["edges"]} == set(ids.values())
    forged = ids["a"][:-2] + ("AA" if not ids["a"].endswith("AA") else "BA")
    for bad in (forged, str(first), "", "x" * 22):
        found = await client.execute("query($id: ID!) { message(id: $id) { id } }", {"id": bad})
        assert found["message"] is None

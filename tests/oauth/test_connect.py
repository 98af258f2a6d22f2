"""Connecting an account through an OAuth2 sign-in, against the local identity provider,
Dovecot's oauth2 passdb and an XOAUTH2 SMTP server: the callback route, the SPA mutation,
and every way the flow must refuse (state, PKCE, denial, plan, duplicate)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlencode, urlsplit

from core.models import Plan
from tests.support.accounts import count_accounts, error_codes, owned_rows
from tests.support.factories import TestUser
from tests.support.mailservers import ImapServer
from tests.support.oauth import ACCOUNT, COMPLETE, OAuthWorld, query_of

NewUser = Callable[..., Awaitable[TestUser]]

PROVIDERS = "query { oauthProviders { provider name configured } }"


async def test_the_whole_flow_through_the_callback_stores_a_ready_account(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    user = await new_user()
    client = oauth.client(user.token)
    mailbox = oauth.new_mailbox("ann")
    introspections = oauth.provider.introspections

    started = await oauth.start(client, login_hint=mailbox.username)
    assert started["userErrors"] == []
    url = started["authorizationUrl"]
    params = query_of(url)
    assert url.startswith(oauth.provider.endpoint("authorize") + "?")
    assert params["response_type"] == "code"
    assert params["client_id"] == oauth.provider.client_id
    assert params["redirect_uri"] == oauth.settings.oauth_redirect_url
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43  # base64url of a SHA-256
    assert len(params["state"]) >= 43 and params["nonce"]
    assert params["login_hint"] == mailbox.username
    assert params["scope"].split() == ["openid", "email", "offline_access", "mail"]

    callback_url = await oauth.authorize(url)
    assert query_of(callback_url)["state"] == params["state"]
    result = await oauth.callback(callback_url)
    assert set(result) == {"accountId"}, result

    data = await client.execute(ACCOUNT, {"id": result["accountId"]})
    account = data["mailAccount"]
    assert account["emailAddress"] == mailbox.username
    assert account["displayName"] == "Ann"  # the provider's name for the user
    assert (account["status"], account["authMethod"]) == ("READY", "GENERIC")
    assert account["isDefault"] is True  # the user's first account
    assert account["imap"] == {
        "host": oauth.dovecot.host,
        "port": oauth.dovecot.port,
        "security": "NONE",
        "username": mailbox.username,
    }
    assert account["smtp"]["username"] == mailbox.username
    roles = {f["name"]: f["role"] for f in account["folders"]}
    assert roles["INBOX"] == "INBOX" and roles["Sent"] == "SENT" and roles["Trash"] == "TRASH"
    # The logins really were XOAUTH2 against servers that asked the provider.
    assert oauth.provider.introspections >= introspections + 2  # IMAP and SMTP
    assert [a for a in oauth.smtp.attempts if a.login == mailbox.username] == [
        type(oauth.smtp.attempts[0])("XOAUTH2", mailbox.username, True)
    ]
    [row] = await owned_rows(oauth.runtime, user.id)
    assert row.imap_password_encrypted is None and row.smtp_password_encrypted is None
    grant = await oauth.grant(row.id)
    assert grant.subject and grant.access_token_expires_at is not None


async def test_an_spa_completes_with_code_and_state_and_only_its_own_viewer_can(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    ann, bob = await new_user(), await new_user()
    mailbox = oauth.new_mailbox("ann")
    started = await oauth.start(oauth.client(ann.token), login_hint=mailbox.username)
    back = query_of(await oauth.authorize(started["authorizationUrl"]))

    # Bob got hold of Ann's code and state: the state is Ann's, so it is refused (and spent).
    stolen = await oauth.client(bob.token).execute(
        COMPLETE, {"input": {"state": back["state"], "code": back["code"]}}
    )
    assert error_codes(stolen["completeOAuthConnection"]) == ["INVALID_STATE"]
    assert await count_accounts(oauth.runtime) == 0

    # A fresh sign-in, completed by Ann's SPA.
    started = await oauth.start(oauth.client(ann.token), login_hint=mailbox.username)
    back = query_of(await oauth.authorize(started["authorizationUrl"]))
    done = await oauth.client(ann.token).execute(
        COMPLETE, {"input": {"state": back["state"], "code": back["code"]}}
    )
    payload = done["completeOAuthConnection"]
    assert payload["userErrors"] == []
    assert payload["account"]["emailAddress"] == mailbox.username
    assert payload["account"]["authMethod"] == "GENERIC"
    assert [r.email_address for r in await owned_rows(oauth.runtime, ann.id)] == [mailbox.username]


async def test_a_replayed_callback_is_refused(oauth: OAuthWorld, new_user: NewUser) -> None:
    user = await new_user()
    mailbox = oauth.new_mailbox()
    started = await oauth.start(oauth.client(user.token), login_hint=mailbox.username)
    callback_url = await oauth.authorize(started["authorizationUrl"])
    assert "accountId" in await oauth.callback(callback_url)

    assert await oauth.callback(callback_url) == {"error": "INVALID_STATE"}
    assert await count_accounts(oauth.runtime) == 1


async def test_a_tampered_state_is_refused_and_leaves_the_real_one_usable(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    user = await new_user()
    mailbox = oauth.new_mailbox()
    started = await oauth.start(oauth.client(user.token), login_hint=mailbox.username)
    back = query_of(await oauth.authorize(started["authorizationUrl"]))
    callback = oauth.settings.oauth_redirect_url

    for state in (back["state"][:-1] + ("A" if back["state"][-1] != "A" else "B"), "", "x" * 5000):
        forged = f"{callback}?{urlencode({'code': back['code'], 'state': state})}"
        assert await oauth.callback(forged) == {"error": "INVALID_STATE"}
    assert await count_accounts(oauth.runtime) == 0

    genuine = f"{callback}?{urlencode({'code': back['code'], 'state': back['state']})}"
    assert "accountId" in await oauth.callback(genuine)


async def test_pkce_a_code_from_another_sign_in_is_refused(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    """An attacker's code (issued for a sign-in with another PKCE challenge) pasted into the
    victim's callback with the victim's state: the verifier does not match, nothing is
    stored. So is a code whose challenge was rewritten on its way to the provider."""
    victim, attacker = await new_user(), await new_user()
    victim_box, attacker_box = oauth.new_mailbox("vic"), oauth.new_mailbox("mal")
    failures = oauth.provider.pkce_failures

    victims = await oauth.start(oauth.client(victim.token), login_hint=victim_box.username)
    attackers = await oauth.start(oauth.client(attacker.token), login_hint=attacker_box.username)
    victim_state = query_of(await oauth.authorize(victims["authorizationUrl"]))["state"]
    attacker_code = query_of(await oauth.authorize(attackers["authorizationUrl"]))["code"]
    callback = oauth.settings.oauth_redirect_url
    injected = f"{callback}?{urlencode({'code': attacker_code, 'state': victim_state})}"
    assert await oauth.callback(injected) == {"error": "OAUTH_FAILED"}

    started = await oauth.start(oauth.client(victim.token), login_hint=victim_box.username)
    url = urlsplit(started["authorizationUrl"])
    params = query_of(started["authorizationUrl"])
    params["code_challenge"] = "A" * 43  # not the challenge of our verifier
    rewritten = url._replace(query=urlencode(params)).geturl()
    assert await oauth.callback(await oauth.authorize(rewritten)) == {"error": "OAUTH_FAILED"}

    assert oauth.provider.pkce_failures == failures + 2
    assert await count_accounts(oauth.runtime) == 0


async def test_a_denied_sign_in_stores_nothing(oauth: OAuthWorld, new_user: NewUser) -> None:
    user = await new_user()
    mailbox = oauth.new_mailbox()
    started = await oauth.start(oauth.client(user.token), login_hint=mailbox.username)
    oauth.provider.deny_next()
    callback_url = await oauth.authorize(started["authorizationUrl"])
    assert query_of(callback_url)["error"] == "access_denied"

    assert await oauth.callback(callback_url) == {"error": "ACCESS_DENIED"}
    assert await count_accounts(oauth.runtime) == 0
    assert await oauth.callback(callback_url) == {"error": "INVALID_STATE"}  # spent


async def test_plan_limits_at_the_start_and_again_at_the_callback(
    oauth: OAuthWorld, new_user: NewUser, dovecot: ImapServer
) -> None:
    essential = await new_user(company="Tiny", plan=Plan.ESSENTIAL)
    refused = await oauth.start(oauth.client(essential.token))
    assert error_codes(refused) == ["SYNC_NOT_IN_PLAN"]
    assert refused["authorizationUrl"] is None

    user = await new_user(company="Solo", plan=Plan.ADVANCED)  # one account per user
    client = oauth.client(user.token)
    first, second = oauth.new_mailbox("one"), oauth.new_mailbox("two")
    pending = await oauth.start(client, login_hint=second.username)
    assert pending["userErrors"] == []
    await oauth.connect(client, first)  # meanwhile, the one allowed account

    assert error_codes(await oauth.start(client)) == ["PLAN_LIMIT_REACHED"]
    result = await oauth.callback(await oauth.authorize(pending["authorizationUrl"]))
    assert result == {"error": "PLAN_LIMIT_REACHED"}
    assert [r.email_address for r in await owned_rows(oauth.runtime, user.id)] == [first.username]


async def test_connecting_the_same_mailbox_twice_is_a_duplicate(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    user = await new_user(plan=Plan.POWER)
    client = oauth.client(user.token)
    mailbox = oauth.new_mailbox()
    await oauth.connect(client, mailbox)

    started = await oauth.start(client, login_hint=mailbox.username.upper())
    result = await oauth.callback(await oauth.authorize(started["authorizationUrl"]))
    assert result == {"error": "DUPLICATE_ACCOUNT"}
    assert await count_accounts(oauth.runtime) == 1


async def test_providers_without_a_client_are_not_configured(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    client = oauth.client((await new_user()).token)
    listed = (await client.execute(PROVIDERS))["oauthProviders"]
    assert listed == [
        {"provider": "GOOGLE", "name": "Google", "configured": False},
        {"provider": "MICROSOFT", "name": "Microsoft", "configured": False},
        {"provider": "GENERIC", "name": "Test SSO", "configured": True},
    ]
    for provider in ("GOOGLE", "MICROSOFT"):
        payload = await oauth.start(client, provider=provider)
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [
            ("PROVIDER_NOT_CONFIGURED", "provider")
        ]


async def test_starting_sign_ins_is_rate_limited(oauth: OAuthWorld, new_user: NewUser) -> None:
    client = oauth.client((await new_user()).token)
    limit = oauth.settings.credential_checks_per_minute
    for _ in range(limit):
        assert (await oauth.start(client))["userErrors"] == []
    assert error_codes(await oauth.start(client)) == ["RATE_LIMITED"]

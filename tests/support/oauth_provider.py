"""A local OAuth2 / OpenID Connect identity provider for tests, served over HTTP.

It plays Google's or Microsoft's part for mailsync's GENERIC provider and for the mail
servers: Dovecot's ``oauth2`` passdb and the test SMTP server check every XOAUTH2 token
against its introspection endpoint, so a token only works while the provider says so.

* ``GET /authorize``: the authorization-code flow. There is no login page: the "browser"
  is signed in as the account given by ``login_hint``, else as :meth:`sign_in_as`'s, and
  approves at once, unless :meth:`deny_next` asked for a refusal (``access_denied``).
  ``response_type=code``, a registered ``redirect_uri`` and a PKCE ``code_challenge``
  (S256 only) are required.
* ``POST /token``: client authentication (HTTP Basic or form fields); the
  ``authorization_code`` grant (single-use codes that expire in a minute, the same
  ``redirect_uri``, ``code_verifier`` checked against the challenge) and the
  ``refresh_token`` grant. Refresh tokens rotate (a new one with each refresh, as Microsoft
  does) unless ``rotate_refresh_tokens`` is off (as Google does); presenting a refresh token
  that was already used revokes the whole grant, as the OAuth 2.0 security BCP advises.
  Access tokens live ``access_token_seconds`` (a few seconds by default, to force
  refreshes). ``token_delay`` makes the endpoint slow (to widen races).
* ``GET /userinfo`` (bearer access token), ``POST /introspect`` (RFC 7662; HTTP Basic
  with the resource-server credentials, as Dovecot sends them from its URL), ``POST
  /revoke`` (RFC 7009: revokes the token's whole grant) and the discovery document.
* From the test: :meth:`add_user`, :meth:`revoke_user` (the user removes the app's access
  in their account settings), ``fail_token_endpoint`` (an outage: 503), counters
  (:meth:`refreshes`), and :meth:`issued_secrets`, every access, refresh and ID token
  handed out, to look for them where none may be.

It runs uvicorn in a thread with its own event loop, so Dovecot's auth process and the
SMTP server's thread can call it while a test's own loop waits on them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from joserfc import jwt
from joserfc.jwk import OctKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.app import free_port

LOOPBACK = "127.0.0.1"
CODE_SECONDS = 60.0
DEFAULT_ACCESS_TOKEN_SECONDS = 4.0  # short: tests that wait a few seconds need a refresh
# What Dovecot and the SMTP server authenticate with at the introspection endpoint.
RESOURCE_SERVER = ("mail-servers", "introspect-secret")


@dataclass(frozen=True)
class OAuthUser:
    email: str
    subject: str
    name: str


@dataclass
class _Grant:
    """One user's consent for one client: the refresh tokens and access tokens it bore."""

    id: str
    user: OAuthUser
    scope: str
    nonce: str | None
    refresh_token: str
    used_refresh_tokens: set[str] = field(default_factory=set)
    access_tokens: set[str] = field(default_factory=set)
    revoked: bool = False
    refreshes: int = 0


@dataclass(frozen=True)
class _Code:
    grant_id: str
    redirect_uri: str
    challenge: str
    expires_at: float


@dataclass(frozen=True)
class _Access:
    grant_id: str
    expires_at: float


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except ValueError:
        return None
    return urllib.parse.unquote(user), urllib.parse.unquote(password)


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (starlette needs python-multipart)."""
    body = await request.body()
    return dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _error(error: str, status: int = 400, description: str | None = None) -> JSONResponse:
    body = {"error": error}
    if description:
        body["error_description"] = description
    return JSONResponse(body, status, headers={"Cache-Control": "no-store"})


class IdentityProvider:
    """The provider's state; every method is safe to call from any thread."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.base_url = ""
        self.redirect_uris: set[str] = set()
        self.access_token_seconds = DEFAULT_ACCESS_TOKEN_SECONDS
        self.rotate_refresh_tokens = True
        self.token_delay = 0.0
        self.token_requests_waiting = 0  # token requests inside token_delay now
        self.fail_token_endpoint = False  # answer 503 (an outage)
        self._lock = threading.Lock()
        self._users: dict[str, OAuthUser] = {}
        self._signed_in: str | None = None
        self._deny = 0
        self._codes: dict[str, _Code] = {}
        self._grants: dict[str, _Grant] = {}
        self._refresh_index: dict[str, str] = {}  # every refresh token ever issued -> grant
        self._access: dict[str, _Access] = {}
        self._issued: list[str] = []
        self._introspections = 0
        self._pkce_failures = 0

    # -- what tests call ------------------------------------------------------------------

    def reset(self) -> None:
        """Undo a test's knobs (delays, outages, refusals); users and grants stay."""
        with self._lock:
            self.token_delay = 0.0
            self.fail_token_endpoint = False
            self.access_token_seconds = DEFAULT_ACCESS_TOKEN_SECONDS
            self.rotate_refresh_tokens = True
            self._deny = 0
            self._signed_in = None

    @property
    def issuer(self) -> str:
        return self.base_url

    def endpoint(self, path: str) -> str:
        return f"{self.base_url}/{path}"

    def add_user(self, email: str, name: str | None = None) -> OAuthUser:
        user = OAuthUser(email.lower(), f"sub-{secrets.token_hex(8)}", name or email.split("@")[0])
        with self._lock:
            self._users[user.email] = user
        return user

    def sign_in_as(self, email: str | None) -> None:
        """The account the "browser" is signed in to when no login_hint names one."""
        with self._lock:
            self._signed_in = email.lower() if email else None

    def deny_next(self, times: int = 1) -> None:
        """The next ``times`` authorizations are refused by the user (access_denied)."""
        with self._lock:
            self._deny += times

    def revoke_user(self, email: str) -> None:
        """The user removes the app's access: every grant, refresh and access token dies."""
        with self._lock:
            for grant in self._grants.values():
                if grant.user.email == email.lower():
                    self._revoke(grant)

    def expire_access_tokens(self, email: str) -> None:
        """The user's access tokens stop working now (as after a password change)."""
        with self._lock:
            for grant in self._grants.values():
                if grant.user.email == email.lower():
                    for token in grant.access_tokens:
                        self._access.pop(token, None)

    def refreshes(self, email: str) -> int:
        """Successful refresh-token grants for the user, across all grants."""
        with self._lock:
            return sum(g.refreshes for g in self._grants.values() if g.user.email == email.lower())

    def live_grants(self, email: str) -> int:
        with self._lock:
            return sum(
                1 for g in self._grants.values() if g.user.email == email.lower() and not g.revoked
            )

    @property
    def introspections(self) -> int:
        with self._lock:
            return self._introspections

    @property
    def pkce_failures(self) -> int:
        with self._lock:
            return self._pkce_failures

    def issued_secrets(self) -> list[str]:
        """Every access, refresh and ID token this provider has handed out."""
        with self._lock:
            return list(self._issued)

    def introspect(self, token: str) -> dict[str, Any]:
        """What the introspection endpoint answers for ``token`` (also used in-process)."""
        with self._lock:
            self._introspections += 1
            access = self._access.get(token)
            grant = self._grants.get(access.grant_id) if access else None
            if access is None or grant is None or grant.revoked or access.expires_at < time.time():
                return {"active": False}
            return {
                "active": True,
                "username": grant.user.email,
                "email": grant.user.email,
                "sub": grant.user.subject,
                "scope": grant.scope,
                "client_id": self.client_id,
                "token_type": "Bearer",
                "exp": int(access.expires_at),
            }

    # -- internals (call with the lock held) ----------------------------------------------

    def _new_secret(self, prefix: str) -> str:
        value = f"{prefix}-{secrets.token_urlsafe(24)}"
        self._issued.append(value)
        return value

    def _revoke(self, grant: _Grant) -> None:
        grant.revoked = True
        for token in grant.access_tokens:
            self._access.pop(token, None)

    def _token_response(self, grant: _Grant, *, with_id_token: bool) -> dict[str, Any]:
        access = self._new_secret("at")
        expires_in = self.access_token_seconds
        self._access[access] = _Access(grant.id, time.time() + expires_in)
        grant.access_tokens.add(access)
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": max(int(expires_in), 1),
            "scope": grant.scope,
            "refresh_token": grant.refresh_token,
        }
        if with_id_token and "openid" in grant.scope.split():
            now = int(time.time())
            claims = {
                "iss": self.issuer,
                "sub": grant.user.subject,
                "aud": self.client_id,
                "iat": now,
                "exp": now + 300,
                "email": grant.user.email,
                "email_verified": True,
                "preferred_username": grant.user.email,
                "name": grant.user.name,
            }
            if grant.nonce:
                claims["nonce"] = grant.nonce
            key = OctKey.import_key(self.client_secret.encode())
            id_token = jwt.encode({"alg": "HS256"}, claims, key)
            self._issued.append(id_token)
            body["id_token"] = id_token
        return body

    def _client_ok(self, request: Request, form: dict[str, str]) -> bool:
        basic = _basic(request)
        if basic is not None:
            client_id, secret = basic
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        return secrets.compare_digest(client_id, self.client_id) and secrets.compare_digest(
            secret, self.client_secret
        )

    # -- endpoints -------------------------------------------------------------------------

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": self.endpoint("authorize"),
                "token_endpoint": self.endpoint("token"),
                "userinfo_endpoint": self.endpoint("userinfo"),
                "introspection_endpoint": self.endpoint("introspect"),
                "revocation_endpoint": self.endpoint("revoke"),
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
            }
        )

    async def authorize(self, request: Request) -> Response:
        query = request.query_params
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or redirect_uri not in self.redirect_uris:
            # Never redirect to an unregistered URI: answer the browser directly.
            return Response("unknown client or redirect_uri", status_code=400)
        state = query.get("state")

        def back(**params: str) -> Response:
            if state is not None:
                params["state"] = state
            params["iss"] = self.issuer
            separator = "&" if "?" in redirect_uri else "?"
            target = redirect_uri + separator + urllib.parse.urlencode(params)
            return RedirectResponse(target, status_code=302)

        if query.get("response_type") != "code":
            return back(error="unsupported_response_type")
        challenge = query.get("code_challenge", "")
        if query.get("code_challenge_method") != "S256" or len(challenge) < 43:
            return back(error="invalid_request", error_description="PKCE S256 is required")
        with self._lock:
            if self._deny:
                self._deny -= 1
                return back(error="access_denied", error_description="The user said no.")
            email = (query.get("login_hint") or self._signed_in or "").lower()
            user = self._users.get(email)
            if user is None:
                return back(error="access_denied", error_description="Nobody signed in.")
            grant = _Grant(
                id=secrets.token_hex(8),
                user=user,
                scope=query.get("scope", ""),
                nonce=query.get("nonce"),
                refresh_token=self._new_secret("rt"),
            )
            self._grants[grant.id] = grant
            self._refresh_index[grant.refresh_token] = grant.id
            code = secrets.token_urlsafe(24)
            self._codes[code] = _Code(grant.id, redirect_uri, challenge, time.time() + CODE_SECONDS)
        return back(code=code)

    async def token(self, request: Request) -> Response:
        form = await _form(request)
        if self.token_delay:
            self.token_requests_waiting += 1
            try:
                await asyncio.sleep(self.token_delay)
            finally:
                self.token_requests_waiting -= 1
        if self.fail_token_endpoint:
            return Response("temporarily unavailable", status_code=503)
        if not self._client_ok(request, form):
            return _error("invalid_client", 401)
        grant_type = form.get("grant_type")
        with self._lock:
            if grant_type == "authorization_code":
                return self._exchange_code(form)
            if grant_type == "refresh_token":
                return self._refresh(form)
        return _error("unsupported_grant_type")

    def _exchange_code(self, form: dict[str, str]) -> Response:
        code = self._codes.pop(form.get("code", ""), None)  # single use, whatever follows
        if code is None or code.expires_at < time.time():
            return _error("invalid_grant", description="unknown, used or expired code")
        grant = self._grants[code.grant_id]
        if form.get("redirect_uri") != code.redirect_uri:
            self._revoke(grant)
            return _error("invalid_grant", description="redirect_uri does not match")
        verifier = form.get("code_verifier", "")
        if not 43 <= len(verifier) <= 128 or not secrets.compare_digest(
            _s256(verifier), code.challenge
        ):
            self._pkce_failures += 1
            self._revoke(grant)
            return _error("invalid_grant", description="PKCE verification failed")
        return JSONResponse(
            self._token_response(grant, with_id_token=True), headers={"Cache-Control": "no-store"}
        )

    def _refresh(self, form: dict[str, str]) -> Response:
        presented = form.get("refresh_token", "")
        grant = self._grants.get(self._refresh_index.get(presented, ""))
        if grant is None or grant.revoked:
            return _error("invalid_grant", description="unknown or revoked refresh token")
        if presented != grant.refresh_token:
            # A rotated-out token came back: someone holds a copy. Kill the grant.
            self._revoke(grant)
            return _error("invalid_grant", description="refresh token reused")
        if self.rotate_refresh_tokens:
            grant.used_refresh_tokens.add(presented)
            grant.refresh_token = self._new_secret("rt")
            self._refresh_index[grant.refresh_token] = grant.id
        grant.refreshes += 1
        body = self._token_response(grant, with_id_token=False)
        if not self.rotate_refresh_tokens:
            body.pop("refresh_token")  # Google: the refresh token stays as it was
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def userinfo(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        info = self.introspect(token.strip()) if scheme.lower() == "bearer" else {}
        if not info.get("active"):
            return JSONResponse({"error": "invalid_token"}, 401)
        with self._lock:
            user = self._users[info["email"]]
        return JSONResponse(
            {"sub": user.subject, "email": user.email, "email_verified": True, "name": user.name}
        )

    async def introspection(self, request: Request) -> Response:
        if _basic(request) != RESOURCE_SERVER:
            return _error("invalid_client", 401)
        form = await _form(request)
        return JSONResponse(self.introspect(form.get("token", "")))

    async def revocation(self, request: Request) -> Response:
        form = await _form(request)
        if not self._client_ok(request, form):
            return _error("invalid_client", 401)
        token = form.get("token", "")
        with self._lock:
            grant_id = self._refresh_index.get(token) or getattr(
                self._access.get(token), "grant_id", None
            )
            if grant_id in self._grants:
                self._revoke(self._grants[grant_id])
        return Response(status_code=200)  # RFC 7009: also for tokens it does not know

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/userinfo", self.userinfo),
                Route("/introspect", self.introspection, methods=["POST"]),
                Route("/revoke", self.revocation, methods=["POST"]),
            ]
        )

    @property
    def introspection_url_with_credentials(self) -> str:
        """The introspection URL with the resource servers' Basic credentials in it."""
        user, password = RESOURCE_SERVER
        return f"http://{user}:{password}@{self.base_url.removeprefix('http://')}/introspect"


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test runner owns the signals
        pass


@contextmanager
def running_identity_provider(
    client_id: str = "mailsync-test-client", client_secret: str | None = None
) -> Iterator[IdentityProvider]:
    """Serve an :class:`IdentityProvider` on a free loopback port until the block ends."""
    provider = IdentityProvider(client_id, client_secret or secrets.token_urlsafe(32))
    port = free_port()
    provider.base_url = f"http://{LOOPBACK}:{port}"
    config = uvicorn.Config(
        provider.app(), host=LOOPBACK, port=port, log_level="warning", access_log=False
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run, name="identity-provider", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test identity provider did not start")
        time.sleep(0.01)
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(timeout=10)

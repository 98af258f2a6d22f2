"""GET /oauth/callback: where OAuth2 providers send the browser back after a sign-in.

It completes the sign-in for the user who started it (the single-use state says who),
then redirects to ``MAILSYNC_OAUTH_APP_URL`` with ``?accountId=<id>`` or ``?error=<CODE>``
(codes only: nothing the provider sent is echoed). Without that setting it answers a
short text page. PostgreSQL or Redis being down is ``UNAVAILABLE`` (the state may still be
unused: the user can try the same link again).
"""

from __future__ import annotations

import logging
import urllib.parse

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from api.graphql.errors import UNAVAILABLE, UNAVAILABLE_MESSAGE, is_unavailable
from core.db import session_scope
from core.errors import ServiceError
from core.oauth.flow import OAuthConnections
from core.runtime import Runtime

log = logging.getLogger(__name__)

# The URL held a single-use code: keep it out of caches and of the next page's Referer.
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _app_redirect(app_url: str, params: dict[str, str]) -> str:
    parts = urllib.parse.urlsplit(app_url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _failure(runtime: Runtime, code: str, message: str, status: int) -> Response:
    app_url = runtime.settings.oauth_app_url
    if app_url is None:
        text = f"The account was not connected ({code}): {message}"
        return PlainTextResponse(text, status, headers=_HEADERS)
    return RedirectResponse(_app_redirect(app_url, {"error": code}), 303, headers=_HEADERS)


async def oauth_callback(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    query = request.query_params
    try:
        async with session_scope(runtime.session_factory) as session:
            account = await OAuthConnections(session, runtime).complete(
                None, query.get("state"), query.get("code"), query.get("error")
            )
            account_id, address = str(account.id), account.email_address
    except ServiceError as error:
        return _failure(runtime, error.code.value, error.message, 400)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        log.warning("oauth callback refused: %s", type(exc).__name__)
        return _failure(runtime, UNAVAILABLE, UNAVAILABLE_MESSAGE, 503)
    app_url = runtime.settings.oauth_app_url
    if app_url is None:
        return PlainTextResponse(
            f"{address} is connected. You can close this window.", headers=_HEADERS
        )
    return RedirectResponse(
        _app_redirect(app_url, {"accountId": account_id}), 303, headers=_HEADERS
    )

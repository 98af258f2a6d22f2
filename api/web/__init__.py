"""The Sales Inbox web app: the product's own front end, served by the API at ``/``.

No build step: plain ES modules (``static/js``) and one small vendored library
(``static/vendor``: the graphql-ws client, pinned, with its licence), so `make run` needs
no Node.js and the page loads nothing from outside this origin. The page talks to the
same origin's ``/graphql`` over HTTP and websockets; its API token lives in the tab's
sessionStorage and travels in the Authorization header and the websocket's
``connection_init``, never in a URL.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).with_name("static")
ASSETS_PATH = "/app"

# Scripts only from this origin, no inline script, no eval. A message is shown in a
# sandboxed iframe (no scripts, an opaque origin) whose document inherits this policy:
# mail's own inline styles are allowed there, and remote images, http: ones too (much mail
# still links them), only once the user asks: bodyHtml(allowRemoteImages) then keeps them;
# the sanitizer drops them otherwise. Images are passive content; nothing else may load.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: https: http:",
        "font-src 'self'",
        "connect-src 'self'",
        "frame-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cross-origin-opener-policy": "same-origin",
}


@lru_cache(maxsize=1)
def _page() -> bytes:
    return (STATIC_DIR / "index.html").read_bytes()


def web_app_response() -> HTMLResponse:
    return HTMLResponse(_page(), headers={**SECURITY_HEADERS, "cache-control": "no-cache"})


class WebAssets(StaticFiles):
    """The app's modules and styles, with the same headers as the page."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update({**SECURITY_HEADERS, "cache-control": "no-cache"})
        return response


def web_assets() -> WebAssets:
    return WebAssets(directory=STATIC_DIR)

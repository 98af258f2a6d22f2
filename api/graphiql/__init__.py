"""GraphiQL from the package itself: the page, its script and the pinned vendored assets
(``static/vendor/README.md``), so that the IDE works offline and nothing comes from a CDN."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS_DIR = Path(__file__).with_name("static")
ASSETS_PATH = "/graphiql"  # where index.html expects them

# The page may load and talk to this origin only; GraphiQL's editors set inline styles.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


@lru_cache(maxsize=1)
def _page() -> bytes:
    return (ASSETS_DIR / "index.html").read_bytes()


def graphiql_page() -> HTMLResponse:
    return HTMLResponse(
        _page(),
        headers={
            "content-security-policy": CONTENT_SECURITY_POLICY,
            "referrer-policy": "no-referrer",
            "x-content-type-options": "nosniff",
        },
    )


def graphiql_assets() -> StaticFiles:
    return StaticFiles(directory=ASSETS_DIR)

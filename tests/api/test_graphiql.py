"""GraphiQL comes from the API itself: it renders and runs a query in a real browser that
cannot reach anything beyond loopback, and its assets are the pinned, vendored ones."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

import httpx
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from api.graphiql import ASSETS_DIR
from core.settings import Settings
from tests.support.app import RunningApp, serve
from tests.support.browser import offline_page
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient

NewUser = Callable[..., Awaitable[TestUser]]

HTML = {"accept": "text/html"}
ASSET = re.compile(r'(?:src|href)="(?P<url>[^"]+)"(?:\s+integrity="(?P<integrity>[^"]+)")?')


def _sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


async def test_graphiql_renders_and_runs_a_query_with_no_network_beyond_loopback(
    gql: GraphQLClient, new_user: NewUser, running_app: RunningApp, tmp_path: Path
) -> None:
    user = await new_user()
    query = "{ me { email company { name } } }"
    headers = json.dumps({"Authorization": f"Bearer {user.token}"})
    url = f"{running_app.graphql_url}?{urlencode({'q': query, 'headers': headers})}"

    async with offline_page(tmp_path / "chromium-profile") as (page, traffic):
        await page.goto(url)
        editor = page.locator(".graphiql-query-editor .CodeMirror")
        try:
            await editor.wait_for()  # React and GraphiQL loaded and rendered the editor
        except PlaywrightTimeoutError:
            raise AssertionError(f"GraphiQL did not render; {traffic}") from None
        assert "me" in await editor.inner_text()
        await page.locator(".graphiql-execute-button").click()
        response = page.locator(".graphiql-response")
        await response.get_by_text(user.email).wait_for()
        result = await response.inner_text()

    assert user.company in result
    assert traffic.outside_loopback() == []
    assert traffic.refused == []
    assert traffic.page_errors == []
    # The page, its own script, the vendored assets and the API: all from this server.
    origin = running_app.base_url
    assert any(u.startswith(f"{origin}/graphiql/vendor/graphiql-3.8.3/") for u in traffic.requested)
    assert any(u.startswith(f"{origin}/graphql") for u in traffic.requested)


async def test_the_page_names_only_local_assets_that_match_their_pinned_hashes(
    running_app: RunningApp, http: httpx.AsyncClient
) -> None:
    page = await http.get(running_app.graphql_url, headers=HTML)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "connect-src 'self'" in policy

    assets = [(m["url"], m["integrity"]) for m in ASSET.finditer(page.text)]
    assert len(assets) >= 7
    for url, integrity in assets:
        assert url.startswith("/graphiql/") or url == "data:,", url
        if url == "data:,":
            continue
        served = await http.get(running_app.base_url + url)
        assert served.status_code == 200, url
        on_disk = (ASSETS_DIR / url.removeprefix("/graphiql/")).read_bytes()
        assert served.content == on_disk
        if url.startswith("/graphiql/vendor/"):
            assert integrity == _sri(on_disk), f"{url} differs from its pinned hash"
    vendored = {p.parent.name for p in (ASSETS_DIR / "vendor").glob("*/*.js")}
    assert vendored == {
        "react-18.2.0",
        "react-dom-18.2.0",
        "graphiql-3.8.3",
        "graphiql-plugin-explorer-1.0.2",
    }
    assert all((ASSETS_DIR / "vendor" / name / "LICENSE").is_file() for name in vendored)


async def test_without_graphiql_neither_the_page_nor_its_assets_are_served(
    make_settings: Callable[..., Settings], http: httpx.AsyncClient
) -> None:
    async with serve(make_settings(graphiql=False)) as app:
        page = await http.get(app.graphql_url, headers=HTML)
        asset = await http.get(f"{app.base_url}/graphiql/mailsync-graphiql.js")
    assert "text/html" not in page.headers.get("content-type", "")
    assert asset.status_code == 404

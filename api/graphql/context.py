from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from api.graphql.loaders import Loaders
from core.attachments.links import DownloadLinks
from core.attachments.service import download_links
from core.db import SessionFactory, autocommit, session_scope
from core.identity.viewer import Viewer
from core.runtime import Runtime

_READERS: weakref.WeakKeyDictionary[AsyncEngine, SessionFactory] = weakref.WeakKeyDictionary()


def read_sessions(engine: AsyncEngine) -> SessionFactory:
    """Sessions for reads, on the engine's pool without a transaction (``autocommit``:
    a quarter of an inbox page's statements were BEGIN and ROLLBACK). Writes keep
    ``session_scope`` and its transaction."""
    factory = _READERS.get(engine)
    if factory is None:
        factory = async_sessionmaker(autocommit(engine), expire_on_commit=False)
        _READERS[engine] = factory
    return factory


@dataclass
class Context:
    """Per request (or per websocket connection): the viewer and the DataLoaders.

    Reads use short sessions (one per loader batch), so no connection stays checked out
    while a response is built or a websocket waits for its next event.
    """

    runtime: Runtime
    request: Request | WebSocket
    response: Response | WebSocket | None
    viewer: Viewer | None
    connection_params: dict[str, Any] | None = None
    token: str | None = field(default=None, repr=False)  # the bearer token, to re-check it
    _loaders: Loaders | None = field(default=None, repr=False)
    _links: DownloadLinks | None = field(default=None, repr=False)

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(read_sessions(self.runtime.engine), self.viewer)
        return self._loaders

    def attachment_url(self, message_key: int, index: int) -> str | None:
        """The signed download URL of a message's attachment, for this viewer."""
        if self.viewer is None:
            return None
        if self._links is None:
            self._links = download_links(self.runtime)
        base = str(self.request.base_url).rstrip("/")
        if base.startswith("ws"):  # a subscription's: the download is plain HTTP
            base = "http" + base[2:]
        return base + self._links.path(message_key, index, self.viewer.user_id)

    def reset_loaders(self) -> None:
        """Forget cached rows: a mutation has changed them, or a new event arrived."""
        self._loaders = None

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        async with read_sessions(self.runtime.engine)() as session:
            yield session

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """One transaction for one mutation: committed on success, rolled back on error."""
        try:
            async with session_scope(self.runtime.session_factory) as session:
                yield session
        finally:
            self.reset_loaders()


Info = strawberry.Info[Context, None]

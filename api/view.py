"""Strawberry's ASGI view: our context, bearer-token auth, JSON errors, websocket limits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.types.unset import UNSET, UnsetType

from api.body_limit import PAYLOAD_TOO_LARGE, json_error
from api.graphiql import graphiql_page
from api.graphql.context import Context
from api.graphql.errors import UNAVAILABLE, UNAVAILABLE_MESSAGE, is_unavailable
from core import metrics
from core.events import CredentialsRevoked, Resubscribed
from core.identity.service import authenticate_request
from core.identity.viewer import Viewer
from core.runtime import Runtime

log = logging.getLogger(__name__)

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
WS_FORBIDDEN = 4403
WS_TRY_AGAIN_LATER = 1013  # RFC 6455 registry: "Try Again Later"
RETRY_AFTER_SECONDS = 5  # what a 503 (UNAVAILABLE) tells a client to wait
WS_UNAVAILABLE_REASON = "The service cannot reach its database; try again later."
WS_TOO_MANY = 4429
_HTTP_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: PAYLOAD_TOO_LARGE,
}


def bearer_token(header: object) -> str | None:
    if not isinstance(header, str):
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def viewer_for(runtime: Runtime, authorization: object) -> Viewer | None:
    token = bearer_token(authorization)
    if token is None:
        return None
    return await authenticate_request(runtime.engine, token)


def prefers_graphql_response_json(accept: str) -> bool:
    """GraphQL over HTTP: a client that lists application/graphql-response+json before
    application/json gets that media type back."""
    ranked = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    if GRAPHQL_RESPONSE_JSON not in ranked:
        return False
    return "application/json" not in ranked or ranked.index(GRAPHQL_RESPONSE_JSON) < ranked.index(
        "application/json"
    )


class SocketRegistry:
    """Open, authenticated websockets of this process, per user (for the per-user cap)."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._open: dict[uuid.UUID, int] = {}

    def add(self, user_id: uuid.UUID) -> bool:
        if self._open.get(user_id, 0) >= self.per_user:
            return False
        self._open[user_id] = self._open.get(user_id, 0) + 1
        metrics.WEBSOCKETS_OPEN.inc()
        return True

    def remove(self, user_id: uuid.UUID) -> None:
        if user_id in self._open:
            metrics.WEBSOCKETS_OPEN.dec()
        left = self._open.get(user_id, 0) - 1
        if left > 0:
            self._open[user_id] = left
        else:
            self._open.pop(user_id, None)

    def count(self, user_id: uuid.UUID) -> int:
        return self._open.get(user_id, 0)


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with a cap on sockets per user and a socket that closes (4403)
    once its token is revoked, expires or its user is removed."""

    view: MailsyncGraphQL
    _registered: uuid.UUID | None = None
    _watcher: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except Exception as exc:  # the token lookup: PostgreSQL may be unreachable
            if not is_unavailable(exc):
                raise
            log.warning("websocket refused: %s", type(exc).__name__)
            await self.websocket.close(code=WS_TRY_AGAIN_LATER, reason=WS_UNAVAILABLE_REASON)
            return
        viewer = self.context.viewer
        if not self.connection_acknowledged or viewer is None or self._registered:
            return
        if not self.view.sockets.add(viewer.user_id):
            await self.websocket.close(
                code=WS_TOO_MANY,
                reason=f"At most {self.view.sockets.per_user} open websockets per user.",
            )
            return
        self._registered = viewer.user_id
        self._watcher = asyncio.create_task(self._watch_credentials(viewer))

    async def shutdown(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._registered is not None:
            self.view.sockets.remove(self._registered)
            self._registered = None
        await super().shutdown()

    async def _watch_credentials(self, viewer: Viewer) -> None:
        runtime = self.context.runtime
        listener = runtime.events.hub.register(viewer.user_id)
        token = self.context.token
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(runtime.settings.websocket_auth_recheck_seconds):
                        while not isinstance(
                            await listener.get(), CredentialsRevoked | Resubscribed
                        ):
                            pass
                try:
                    still = await authenticate_request(runtime.engine, token or "")
                except Exception as exc:
                    if not is_unavailable(exc):
                        raise
                    continue  # cannot tell now: check again at the next interval
                if still is None or still.user_id != viewer.user_id:
                    await self.websocket.close(code=WS_FORBIDDEN, reason="Token revoked")
                    return
        except Exception:  # the socket is going away: nothing to close
            log.debug("websocket credential watcher stopped", exc_info=True)
        finally:
            listener.close()


class MailsyncGraphQL(GraphQL[Context, None]):
    """The runtime comes from ``app.state.runtime``, built by the app's lifespan."""

    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(
        self,
        schema: BaseSchema,
        *,
        graphiql: bool,
        subscriptions_per_socket: int = 20,
        websockets_per_user: int = 10,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql else None,
            # Strawberry never runs mutations over GET; without GraphiQL, GET runs nothing.
            allow_queries_via_get=graphiql,
            # The legacy graphql-ws protocol (subscriptions-transport-ws) is refused at the
            # handshake: one protocol, fully supported.
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=subscriptions_per_socket,
            # sendEmail's attachments (the GraphQL multipart request spec). Bearer tokens,
            # never cookies: a cross-site form cannot post as a user.
            multipart_uploads_enabled=True,
        )
        self.sockets = SocketRegistry(websockets_per_user)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        try:
            response = await self.run(request)
        except HTTPException as exc:  # strawberry's own refusals, as JSON like the rest
            code = _HTTP_CODES.get(exc.status_code, "BAD_REQUEST")
            status, body = json_error(exc.status_code, code, exc.reason)
            response = Response(body, status_code=status, media_type="application/json")
        except Exception as exc:  # before GraphQL ran: authenticating the token
            if not is_unavailable(exc):
                raise
            log.warning("request refused: %s", type(exc).__name__)
            status, body = json_error(503, UNAVAILABLE, UNAVAILABLE_MESSAGE)
            response = Response(body, status_code=status, media_type="application/json")
        if prefers_graphql_response_json(request.headers.get("accept", "")) and (
            response.media_type == "application/json"
            or response.headers.get("content-type", "").startswith("application/json")
        ):
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
        if response.status_code == 401:
            response.headers["www-authenticate"] = "Bearer"
        if response.status_code == 503:
            response.headers["retry-after"] = str(RETRY_AFTER_SECONDS)
        await response(scope, receive, send)

    async def run(
        self,
        request: Request | WebSocket,
        context: Context | UnsetType = UNSET,
        root_value: UnsetType | None = UNSET,
    ) -> Any:
        if self.is_websocket_request(request) and not await self.pick_websocket_subprotocol(
            request
        ):
            return await self.reject_websocket(request)  # 403 at the handshake
        return await super().run(request, context, root_value)  # type: ignore[arg-type]

    def decode_json(self, data: str | bytes) -> object:
        """Bodies that are not UTF-8, or nest deeper than the decoder recurses, are the
        client's error (400), like any other malformed JSON."""
        try:
            return json.loads(data)
        except (UnicodeDecodeError, RecursionError):
            raise HTTPException(400, "Unable to parse request body as JSON") from None

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        results = response_data if isinstance(response_data, list) else [response_data]
        codes = {
            (error.get("extensions") or {}).get("code")
            for result in results
            for error in (result.get("errors") or [])
            if isinstance(error, dict)
        }
        if UNAVAILABLE in codes:
            response.status_code = 503
        return response

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        runtime: Runtime = request.app.state.runtime
        context = Context(runtime=runtime, request=request, response=response, viewer=None)
        if isinstance(request, Request):
            context.token = bearer_token(request.headers.get("authorization"))
            if context.token is not None:
                context.viewer = await authenticate_request(runtime.engine, context.token)
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """graphql-transport-ws: authenticate ``connection_init``, or close with 4403."""
        params = context.connection_params or {}
        header = params.get("authorization") or params.get("Authorization")
        context.token = bearer_token(header)
        viewer = await viewer_for(context.runtime, header)
        if viewer is None:
            raise ConnectionRejectionError({"message": "invalid or missing bearer token"})
        context.viewer = viewer
        return UnsetType()  # the default: acknowledge with no payload

    async def render_graphql_ide(self, request: Request) -> Response:
        """Our GraphiQL page: every asset from this server (see api/graphiql)."""
        return graphiql_page()

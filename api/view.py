"""Strawberry's ASGI view with our context, bearer-token auth and websocket rejection."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.schema import BaseSchema
from strawberry.types.unset import UnsetType

from api.graphiql import graphiql_page
from api.graphql.context import Context
from core.identity.service import authenticate
from core.identity.viewer import Viewer
from core.runtime import Runtime


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
    async with runtime.session_factory() as session:
        return await authenticate(session, token)


class MailsyncGraphQL(GraphQL[Context, None]):
    """The runtime comes from ``app.state.runtime``, built by the app's lifespan."""

    def __init__(self, schema: BaseSchema, *, graphiql: bool) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql else None,
            # Strawberry never runs mutations over GET; without GraphiQL, GET runs nothing.
            allow_queries_via_get=graphiql,
        )

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        runtime: Runtime = request.app.state.runtime
        viewer = None
        if isinstance(request, Request):
            viewer = await viewer_for(runtime, request.headers.get("authorization"))
        return Context(runtime=runtime, request=request, response=response, viewer=viewer)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """graphql-transport-ws: authenticate ``connection_init``, or close with 4403."""
        params = context.connection_params or {}
        header = params.get("authorization") or params.get("Authorization")
        viewer = await viewer_for(context.runtime, header)
        if viewer is None:
            raise ConnectionRejectionError({"message": "invalid or missing bearer token"})
        context.viewer = viewer
        return UnsetType()  # the default: acknowledge with no payload

    async def render_graphql_ide(self, request: Request) -> Response:
        """Our GraphiQL page: every asset from this server (see api/graphiql)."""
        return graphiql_page()

"""The HTTP/websocket API: Starlette app, auth, and the GraphQL schema."""

"""Request bodies larger than the limit are refused with 413 before the app reads them."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"


def json_error(status: int, code: str, message: str) -> tuple[int, bytes]:
    """A GraphQL-shaped error body, for failures that happen before GraphQL runs."""
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return status, json.dumps(body, separators=(",", ":")).encode()


async def send_json_error(send: Send, status: int, code: str, message: str) -> None:
    status, body = json_error(status, code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """Reads an HTTP body up to ``max_bytes`` (by Content-Length when declared, by what
    arrives otherwise) and hands it on whole; one byte more and the answer is 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"The request body is larger than {self.max_bytes} bytes."
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await send_json_error(send, 413, PAYLOAD_TOO_LARGE, message)
                return
        body = bytearray()
        more = True
        while more:
            received = await receive()
            if received["type"] == "http.disconnect":
                return
            body += received.get("body", b"")
            more = received.get("more_body", False)
            if len(body) > self.max_bytes:
                await send_json_error(send, 413, PAYLOAD_TOO_LARGE, message)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: the client's disconnect

        await self.app(scope, replay, send)

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
    arrives otherwise) and hands it on whole; one byte more and the answer is 413.

    A multipart body (file uploads, the GraphQL multipart request spec) may be up to
    ``max_upload_bytes``: it is passed on as it arrives (the form parser spools files to
    disk), counted, and refused with 413 the moment it passes the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_bytes: int = 0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data")
        limit = max(self.max_upload_bytes, self.max_bytes) if multipart else self.max_bytes
        message = f"The request body is larger than {limit} bytes."
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await send_json_error(send, 413, PAYLOAD_TOO_LARGE, message)
            return
        if multipart:
            await _streamed(self.app, scope, receive, send, limit, message)
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


async def _streamed(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, limit: int, message: str
) -> None:
    """Pass the body on as it arrives; past ``limit`` bytes the app is told the client left
    (it stops reading), its answer is dropped and the client gets 413."""
    received_bytes = 0
    refused = False
    started = False

    async def counted() -> Message:
        nonlocal received_bytes, refused
        if refused:
            return {"type": "http.disconnect"}
        received = await receive()
        received_bytes += len(received.get("body", b""))
        if received_bytes > limit:
            refused = True
            return {"type": "http.disconnect"}
        return received

    async def guarded(reply: Message) -> None:
        nonlocal started
        if refused:
            return
        started = True
        await send(reply)

    try:
        await app(scope, counted, guarded)
    except Exception:
        if not refused:
            raise
    if refused and not started:
        await send_json_error(send, 413, PAYLOAD_TOO_LARGE, message)

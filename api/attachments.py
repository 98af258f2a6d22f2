"""GET /attachments/{token}: an attachment's bytes, for a signed downloadUrl.

No Authorization header (an ``<img src>`` cannot send one): the token is the credential
(core.attachments.links). Refusals are plain text with the same safety headers.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from core.attachments.headers import SAFETY_HEADERS, download_headers
from core.attachments.service import DownloadRefused, open_download
from core.runtime import Runtime


async def download_attachment(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    try:
        found = await open_download(runtime, str(request.path_params["token"]))
    except DownloadRefused as refused:
        return PlainTextResponse(
            refused.message,
            status_code=refused.refusal.value,
            headers={**SAFETY_HEADERS, "Cache-Control": "no-store"},
        )
    headers = download_headers(found.filename, found.content_type, inline=found.inline)
    media_type = headers.pop("Content-Type")
    return StreamingResponse(found.body, media_type=media_type, headers=headers)

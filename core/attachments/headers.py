"""How a downloaded part is served: never as active content of the API's origin.

Everything is ``Content-Disposition: attachment`` (RFC 6266, with an ASCII fallback and
the UTF-8 ``filename*``), except raster images that the message shows inline; every
response has ``X-Content-Type-Options: nosniff`` and a ``sandbox`` Content-Security-Policy,
so an HTML or SVG part opened directly runs no script and reaches no cookie.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

# Shown inline when the message shows them so: images a browser renders without scripts.
INLINE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/avif"}
)
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_UNSAFE_IN_NAME = re.compile(r'[\x00-\x1f\x7f/\\"]')
_MAX_NAME = 200

SAFETY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self' data:",
    "Referrer-Policy": "no-referrer",
}


def media_type(content_type: str) -> str:
    """The stored type if it is a well-formed one, else application/octet-stream."""
    lowered = content_type.strip().lower()
    return lowered if _MEDIA_TYPE.match(lowered) else "application/octet-stream"


def safe_filename(filename: str | None, fallback: str = "attachment") -> str:
    """The file name without path parts, control characters or quotes; never empty."""
    name = unicodedata.normalize("NFC", filename or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_IN_NAME.sub("_", name).strip(" .")
    return name[:_MAX_NAME] or fallback


def content_disposition(filename: str | None, *, inline: bool) -> str:
    name = safe_filename(filename)
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    value = f'{"inline" if inline else "attachment"}; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


def download_headers(filename: str | None, content_type: str, *, inline: bool) -> dict[str, str]:
    """Headers for serving one part; ``inline``: the message shows it within the body."""
    kind = media_type(content_type)
    shown = inline and kind in INLINE_TYPES
    return {
        "Content-Type": kind,
        "Content-Disposition": content_disposition(filename, inline=shown),
        "Cache-Control": "private, max-age=300",
        **SAFETY_HEADERS,
    }

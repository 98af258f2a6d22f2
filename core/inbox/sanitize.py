"""Message HTML made safe to render in the SPA, with nh3 (ammonia's allow-list).

What survives: formatting tags, tables, links (http, https, mailto) and images (http,
https, and cid: references to inline parts, which the client resolves). What does not:
script and style elements, event handler attributes, style attributes (CSS expressions,
url() tracking), forms, iframes, SVG/MathML, and any other URL scheme (javascript:,
data:, vbscript:), and relative or protocol-relative URLs (``/x``, ``//host/x``), which
would resolve against the API's own origin. Links open with rel="noopener noreferrer
nofollow". Remote images (http, https) are blocked unless the reader asks for them: a
tracking pixel tells its sender when and where the mail was read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote

import nh3

_URL_SCHEMES = frozenset({"http", "https", "mailto", "cid"})
_TAGS = frozenset(nh3.ALLOWED_TAGS) | {"font", "center"}
_ATTRIBUTES: dict[str, set[str]] = {
    tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()
}
_ATTRIBUTES.setdefault("font", set()).update({"color", "face", "size"})
for _tag in ("table", "td", "th", "tr", "div", "p", "span", "img"):
    _ATTRIBUTES.setdefault(_tag, set()).update({"align", "width", "height", "bgcolor"})
_ATTRIBUTES.setdefault("img", set()).update({"src", "alt", "title"})


_URL_ATTRIBUTES = frozenset({"href", "src", "cite", "longdesc", "action", "background"})
_ABSOLUTE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_REMOTE = ("http:", "https:")


def _url_filter(
    allow_remote_images: bool, inline_image: Callable[[str], str | None] | None = None
) -> Callable[[str, str, str], str | None]:
    def keep(tag: str, attribute: str, value: str) -> str | None:
        if attribute not in _URL_ATTRIBUTES:
            return value
        url = value.strip()
        if inline_image is not None and tag == "img" and url[:4].lower() == "cid:":
            return inline_image(unquote(url[4:])) or value
        if not _ABSOLUTE.match(url):
            return None  # relative, protocol-relative (//host) or a bare fragment
        if tag == "img" and not allow_remote_images and url.lower().startswith(_REMOTE):
            return None
        return value

    return keep


_FILTERS = {allow: _url_filter(allow) for allow in (False, True)}


def sanitize_html(
    html: str | None,
    *,
    allow_remote_images: bool = False,
    inline_image: Callable[[str], str | None] | None = None,
) -> str | None:
    """``inline_image``: the URL of an inline part by its Content-ID (``cid:`` images are
    rewritten to it; ids it does not know stay ``cid:`` references)."""
    if html is None:
        return None
    url_filter = _FILTERS[allow_remote_images]
    if inline_image is not None:
        url_filter = _url_filter(allow_remote_images, inline_image)
    return nh3.clean(
        html,
        tags=set(_TAGS),
        attributes=_ATTRIBUTES,
        url_schemes=set(_URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
        attribute_filter=url_filter,
    )

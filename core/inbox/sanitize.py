"""Message HTML made safe to render in the SPA, with nh3 (ammonia's allow-list).

What survives: formatting tags, tables, links (http, https, mailto) and images (http,
https, and cid: references to inline parts, which the client resolves). What does not:
script and style elements, event handler attributes, style attributes (CSS expressions,
url() tracking), forms, iframes, SVG/MathML, and any other URL scheme (javascript:,
data:, vbscript:). Links open with rel="noopener noreferrer nofollow".
"""

from __future__ import annotations

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


def sanitize_html(html: str | None) -> str | None:
    if html is None:
        return None
    return nh3.clean(
        html,
        tags=set(_TAGS),
        attributes=_ATTRIBUTES,
        url_schemes=set(_URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )

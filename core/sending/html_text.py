"""A plain-text part from an HTML body, for mail composed as HTML only.

The stdlib's HTMLParser is enough: the input is what our own users compose, and the text
only has to read well in a plain-text client (paragraphs, line breaks, list bullets, link
targets). html2text and inscriptis were considered: the first writes Markdown (``**``,
escaped punctuation) into what should read as plain mail, the second pulls in lxml.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCKS = frozenset(
    {"p", "div", "section", "article", "header", "footer", "blockquote", "table", "tr"}
    | {"ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "pre", "address", "center"}
)
_HIDDEN = frozenset({"script", "style", "head", "title", "template"})
_BLANK_LINES = re.compile(r"\n{3,}")
_SPACES = re.compile(r"[ \t\r\f\v]+")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hidden = 0
        self.pre = 0
        self.links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.out.append(alt)
        elif tag == "a":
            self.links.append(dict(attrs).get("href"))
        if tag in _BLOCKS:
            self.out.append("\n\n")
        if tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag == "a" and self.links:
            href = self.links.pop()
            if href and href.startswith(("http://", "https://")) and href not in self.out[-1:]:
                self.out.append(f" ({href})")
        if tag in _BLOCKS:
            self.out.append("\n\n")
        if tag == "pre":
            self.pre = max(0, self.pre - 1)

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        self.out.append(data if self.pre else _SPACES.sub(" ", data.replace("\n", " ")))


def html_to_text(markup: str) -> str:
    """Readable plain text: blocks become paragraphs, <br> a line break, links "text (url)"."""
    collector = _TextCollector()
    collector.feed(markup)
    collector.close()
    lines = (line.strip(" ") for line in "".join(collector.out).split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()

"""From what a user types in the search box to a PostgreSQL tsquery (the 'simple' config).

- a bare word matches as a prefix: ``inv`` finds "invoice";
- a "quoted phrase" matches those words in that order;
- every word or phrase must match (AND).

Words are cut at anything that is not a letter or digit, the way the indexed text is
(addresses are indexed whole and split at "@" and "."), so ``bob@acme.com`` is the phrase
bob, acme, com. Only word characters reach the tsquery, so no input can break its syntax.
"""

from __future__ import annotations

import re

_PHRASE = re.compile(r'"([^"]*)"')
_WORD = re.compile(r"[^\W_]+")
MAX_TERMS = 16


def _lexemes(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def to_tsquery_text(search: str) -> str | None:
    """A tsquery for ``to_tsquery('simple', ...)``; None when nothing searchable is left."""
    terms: list[str] = []
    for phrase in _PHRASE.findall(search):
        words = _lexemes(phrase)
        if words:
            terms.append(" <-> ".join(f"'{w}'" for w in words))
    for word in _PHRASE.sub(" ", search).split():
        words = _lexemes(word)
        if words:
            *head, last = words
            terms.append(" <-> ".join([*(f"'{w}'" for w in head), f"'{last}':*"]))
    if not terms:
        return None
    return " & ".join(f"({t})" for t in terms[:MAX_TERMS])

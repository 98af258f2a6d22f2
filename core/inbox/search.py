"""From what a user types in the search box to a PostgreSQL tsquery (the 'simple' config).

- a bare word matches as a prefix: ``inv`` finds "invoice";
- a "quoted phrase" matches those words in that order;
- every word or phrase must match (AND).

Each term goes to ``to_tsquery`` as one quoted string, so PostgreSQL's own parser splits
it exactly as it split the indexed text (``2026-117``, ``v1.2.3``, ``bob@acme.com`` stay
what they were there) and no input can change the query's syntax: inside the quotes only
``'`` and ``\\`` are special, and both are escaped.
"""

from __future__ import annotations

import re

_PHRASE = re.compile(r'"([^"]*)"')
_SEARCHABLE = re.compile(r"[^\W_]")  # a term without a letter or digit is left out
MAX_TERMS = 16


def _quoted(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def to_tsquery_text(search: str) -> str | None:
    """A tsquery for ``to_tsquery('simple', ...)``; None when nothing searchable is left
    (then the search filters nothing). Terms after the 16th are ignored."""
    search = search.replace("\x00", " ")  # PostgreSQL text cannot hold NUL
    terms = [_quoted(p) for p in _PHRASE.findall(search) if _SEARCHABLE.search(p)]
    terms += [_quoted(w) + ":*" for w in _PHRASE.sub(" ", search).split() if _SEARCHABLE.search(w)]
    if not terms:
        return None
    return " & ".join(terms[:MAX_TERMS])

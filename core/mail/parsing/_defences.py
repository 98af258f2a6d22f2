"""Defences against inputs that make the stdlib parser slow."""

from __future__ import annotations

import re

# --- defences against inputs that make the stdlib slow -------------------------------------

# email.message._parseparam (Content-Type/-Disposition parameters; the parser itself calls it
# for every multipart boundary) is quadratic in the number of ';' in a field (CPython
# gh-136063): 200 KB of ';' inside quotes takes 45 s. Real fields have a handful of
# parameters; a field with more than _MAX_PARAMETERS is cut before the one too many. The
# parser takes a lone CR as a line break too, hence [\r\n] rather than ^.
_PARAM_FIELD = re.compile(
    rb"(?i)(?:^|[\r\n])content-(?:type|disposition)[ \t]*:[^\r\n]*(?:(?:\r\n|\r|\n)[ \t][^\r\n]*)*"
)
_MAX_PARAMETERS = 64
_PARAM_WORK_LIMIT = 10_000_000  # ';' count * message length: below it nothing can be slow

# The stdlib parser checks every line against every enclosing boundary, so it costs
# lines * nesting depth: 900 nested multiparts around 10,000 lines take 1.3 s. Every
# boundary parameter has "boundary" in its name, so their count bounds the depth.
_MAX_BOUNDARIES = 100
_NESTING_WORK_LIMIT = 5_000_000


def _defuse_parameters(raw: bytes) -> bytes:
    if raw.count(b";") * len(raw) < _PARAM_WORK_LIMIT:
        return raw
    pieces: list[bytes] = []
    done = 0
    for match in _PARAM_FIELD.finditer(raw):
        start, end = match.span()
        cut = start
        for _ in range(_MAX_PARAMETERS + 1):
            cut = raw.find(b";", cut + 1, end)
            if cut == -1:
                break
        else:
            pieces.append(raw[done:cut])
            done = end
    if not pieces:
        return raw
    pieces.append(raw[done:])
    return b"".join(pieces)


# An RFC 2231 parameter: name*=..., name*0=..., name*1*=...; the value quoted or a token.
_RFC2231_PARAMETER = re.compile(
    rb';\s*([^\s=;*"]+)\*([0-9]*)\*?\s*=\s*(?:"(?:[^"\\]|\\.)*(?:"|$)|[^;]*)'
)


def _without_mixed_sections(field: re.Match[bytes]) -> bytes:
    """The field without the numbered sections of a parameter that also has name*=.

    name*= is what _parameter prefers too, so the file name does not change.
    """
    text = field.group()
    kinds: dict[bytes, set[bool]] = {}
    for match in _RFC2231_PARAMETER.finditer(text):
        kinds.setdefault(match.group(1).lower(), set()).add(bool(match.group(2)))
    mixed = {name for name, numbered in kinds.items() if len(numbered) == 2}
    if not mixed:
        return text
    return _RFC2231_PARAMETER.sub(
        lambda m: b"" if m.group(2) and m.group(1).lower() in mixed else m.group(), text
    )


def _too_deep(raw: bytes) -> bool:
    boundaries = raw.lower().count(b"boundary")
    if boundaries < _MAX_BOUNDARIES:  # real mail has a few
        return False
    lines = max(raw.count(b"\n"), raw.count(b"\r"))
    return boundaries * lines > _NESTING_WORK_LIMIT

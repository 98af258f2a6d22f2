"""IMAP's modified UTF-7 for mailbox names (RFC 3501 section 5.1.3)."""

from __future__ import annotations

import base64


def decode_mailbox_name(name: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(name):
        char = name[i]
        end = name.find("-", i + 1) if char == "&" else -1
        if char != "&" or end == -1:
            out.append(char)
            i += 1
            continue
        chunk = name[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
            try:
                out.append(base64.b64decode(padded).decode("utf-16-be"))
            except ValueError:  # not valid modified UTF-7: keep the text as the server sent it
                out.append(name[i : end + 1])
        i = end + 1
    return "".join(out)


def encode_mailbox_name(name: str) -> str:
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)

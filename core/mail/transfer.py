"""Content-Transfer-Encodings decoded a chunk at a time, for streaming a MIME part.

Lenient like the parser (core.mail.parsing): base64 ignores characters outside its
alphabet and padding, and a truncated last quantum is kept as far as it goes;
quoted-printable decodes whole lines, so an ``=XX`` split across chunks is never lost.
Anything else (7bit, 8bit, binary, unknown) passes through unchanged.
"""

from __future__ import annotations

import binascii
import re

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
# A quoted-printable line longer than this (hostile: RFC 2045 says 76) is decoded in
# pieces, keeping the last two bytes back in case they start an "=XX".
_MAX_QP_PENDING = 64 * 1024


class TransferDecoder:
    """Feed encoded chunks in order, then call ``finish`` once."""

    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""


class _Base64(TransferDecoder):
    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + _NOT_BASE64.sub(b"", chunk)
        whole = len(data) - len(data) % 4
        self._pending = data[whole:]
        return binascii.a2b_base64(data[:whole]) if whole else b""

    def finish(self) -> bytes:
        rest, self._pending = self._pending, b""
        if len(rest) < 2:  # one character is not a byte
            return b""
        return binascii.a2b_base64(rest + b"=" * (-len(rest) % 4))


class _QuotedPrintable(TransferDecoder):
    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk
        end = data.rfind(b"\n") + 1
        if end == 0 and len(data) > _MAX_QP_PENDING:
            end = len(data) - 2
        self._pending = data[end:]
        return binascii.a2b_qp(data[:end]) if end else b""

    def finish(self) -> bytes:
        rest, self._pending = self._pending, b""
        return binascii.a2b_qp(rest) if rest else b""


def decoder_for(encoding: str) -> TransferDecoder:
    """A decoder for a Content-Transfer-Encoding as the parser stored it (lower-cased)."""
    if encoding == "base64":
        return _Base64()
    if encoding == "quoted-printable":
        return _QuotedPrintable()
    return TransferDecoder()

"""Deterministic, realistic RFC 5322 messages for parser, sync and benchmark tests.

`corpus(count, seed)` always returns the same bytes for the same arguments (no clock, no
hash randomisation, no global random state). The mix is modelled on a sales inbox:

* about half multipart/alternative (text + HTML, a few with an inline image in
  multipart/related), the rest plain text;
* about 10% multipart/mixed with one or two 10-40 KB base64 attachments, some with RFC 2231
  or RFC 2047 encoded non-ASCII file names;
* charsets us-ascii, utf-8, iso-8859-1, windows-1252 and iso-2022-jp, with 7bit, 8bit,
  quoted-printable and base64 transfer encodings; non-ASCII subjects and display names are
  RFC 2047 encoded (long ones as several adjacent encoded words), a few are raw 8-bit;
* about a third are replies: In-Reply-To names an earlier message of the corpus and
  References lists the thread root, then the earlier messages of that thread, oldest first;
  the body quotes a history;
* realistic header blocks (Received, DKIM-Signature, ...), CRLF line endings as IMAP
  delivers them; about 8 KB per message on average (10,000 are about 80 MB).

Every message has a unique Message-ID and a Date in the two years before `now`.

Also a benchmark of the parser (`python -m tests.support.mail_corpus --help`).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import html
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

REFERENCE_NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
"""The default `now`: fixed so that a seed always gives the same corpus."""

DATE_SPAN = timedelta(days=730)
"""Dates are spread over this span before `now`."""

_CRLF = b"\r\n"


@dataclass(frozen=True, slots=True)
class _Person:
    name: str
    address: str
    lang: str


_PEOPLE = (
    _Person("Alice Martin", "alice.martin@northwind.example", "en"),
    _Person("Bob Smith", "bob@contoso.example", "en"),
    _Person("Carol O'Neil", "carol.oneil@fabrikam.example", "en"),
    _Person("Smith, David", "d.smith@tailspin.example", "en"),
    _Person("Jörg Müller", "joerg.mueller@beispiel.example", "de"),
    _Person("Anna Schäfer", "a.schaefer@handel-gmbh.example", "de"),
    _Person("Émilie Dubois", "emilie.dubois@exemple.example", "fr"),
    _Person("François Lefèvre", "f.lefevre@societe.example", "fr"),
    _Person("José Álvarez", "jalvarez@empresa.example", "es"),
    _Person("Zoë Ångström", "zoe@nordic.example", "de"),
    _Person("田中 太郎", "tanaka@kaisha.example", "ja"),
    _Person("佐藤 花子", "h.sato@shoji.example", "ja"),
    _Person("", "noreply@billing.example", "en"),
)

_SENTENCES = {
    "en": (
        "Thanks for the quick turnaround on the proposal.",
        "Could you send over the updated pricing for the enterprise tier?",
        "We reviewed the contract with our legal team yesterday.",
        "Let's schedule a call next week to go through the remaining open points.",
        "The pilot went well and the team is keen to expand the rollout.",
        "I've attached the signed order form for your records.",
        "Please find our feedback on the onboarding plan below.",
        "Our budget for the next quarter has been approved.",
        "Can we move the demo to Thursday afternoon?",
        "I'll loop in our procurement lead so we can finalise the paperwork.",
    ),
    "de": (
        "Vielen Dank für das Angebot, wir prüfen es gerade intern.",
        "Können Sie uns die Preise für 50 Lizenzen schicken?",
        "Die Geschäftsführung möchte das Projekt im nächsten Quartal starten.",
        "Anbei finden Sie die unterschriebene Bestellung.",
        "Wir würden gerne einen Termin für nächste Woche vereinbaren.",
        "Bitte beachten Sie die geänderten Lieferbedingungen.",
        "Die Schulung für unsere Mitarbeiter war sehr hilfreich.",
        "Grüße aus München und ein schönes Wochenende!",
    ),
    "fr": (
        "Merci pour votre réponse rapide concernant le devis.",
        "Pourriez-vous nous envoyer la proposition révisée avant vendredi ?",
        "Nous avons validé le budget avec la direction générale.",
        "Je vous propose un appel mardi prochain à 14 h.",
        "Les équipes ont apprécié la démonstration de la semaine dernière.",
        "Veuillez trouver ci-joint le bon de commande signé.",
        "Nous attendons encore le retour du service juridique.",
    ),
    "es": (
        "Gracias por la propuesta, la estamos revisando con el equipo.",
        "¿Podría enviarnos la cotización actualizada antes del lunes?",
        "La reunión de ayer fue muy productiva.",
        "Adjunto encontrará el contrato firmado.",
        "Nos gustaría ampliar el piloto a otras dos oficinas.",
    ),
    "ja": (
        "お世話になっております。",
        "見積書の件、社内で検討させていただきます。",
        "来週の打ち合わせの日程をご調整いただけますでしょうか。",
        "契約書を添付いたしましたので、ご確認ください。",
        "引き続きよろしくお願いいたします。",
        "導入スケジュールについてご相談させてください。",
    ),
}
# windows-1252 mail is where "smart" punctuation and the euro sign show up.
_CP1252_EXTRAS = (
    "That’s the “final” number: €12,500 per year – VAT excluded.",  # noqa: RUF001
    "Der Preis liegt bei 4.200 € – zzgl. MwSt. „wie besprochen“.",  # noqa: RUF001
    "Le tarif est de 3 900 € par an — hors taxes.",
)
_SUBJECTS = (
    "Proposal for Q3",
    "Pricing question",
    "Contract renewal 2026",
    "Follow-up from our call",
    "Invoice #48213",
    "Angebot für Müller GmbH – Lizenzen",  # noqa: RUF001
    "Rückfrage zur Bestellung",
    "Devis révisé – société Lefèvre",  # noqa: RUF001
    "Réunion de lancement",
    "Propuesta de colaboración",
    "お見積りの件",
    "契約更新のご案内",
    "Very long subject line about the onboarding plan, the training schedule and the "
    "rollout to the remaining regional offices",
    "Demo next week?",
)
_REPLY_PREFIX = {"en": "Re: ", "de": "AW: ", "fr": "RE : ", "es": "RE: ", "ja": "Re: "}
_GREETING = {
    "en": ("Hi {first},", "Hello {first},", "Dear {first},"),
    "de": ("Hallo {first},", "Sehr geehrte Damen und Herren,", "Liebe/r {first},"),
    "fr": ("Bonjour {first},", "Madame, Monsieur,"),
    "es": ("Hola {first},", "Estimado/a {first}:"),
    "ja": ("{first}様",),
}
_CLOSING = {
    "en": ("Best regards,", "Thanks,", "Cheers,"),
    "de": ("Viele Grüße", "Mit freundlichen Grüßen"),
    "fr": ("Cordialement,", "Bien à vous,"),
    "es": ("Saludos,", "Un saludo,"),
    "ja": ("よろしくお願いいたします。",),
}
_WROTE = {
    "en": "On {date}, {who} wrote:",
    "de": "Am {date} schrieb {who}:",
    "fr": "Le {date}, {who} a écrit :",
    "es": "El {date}, {who} escribió:",
    "ja": "{date} {who}:",
}
# Charsets a sender of each language might use, with weights; utf-8 is the fallback whenever
# the text does not fit the chosen one (for example a quoted Japanese history).
_CHARSETS = {
    "en": (("us-ascii", 4), ("utf-8", 6)),
    "de": (("utf-8", 6), ("iso-8859-1", 2), ("windows-1252", 2)),
    "fr": (("utf-8", 6), ("iso-8859-1", 2), ("windows-1252", 2)),
    "es": (("utf-8", 7), ("iso-8859-1", 3)),
    "ja": (("utf-8", 6), ("iso-2022-jp", 4)),
}
_MAILERS = (
    "Microsoft Outlook 16.0",
    "Apple Mail (2.3774.600.62)",
    "Mozilla Thunderbird 128.5.0",
    "Roundcube Webmail/1.6.9",
)
_ID_HOSTS = (
    "mail.gmail.com",
    "AM9PR07MB7123.eurprd07.prod.outlook.com",
    "northwind.example",
    "mx.beispiel.example",
    "smtp.kaisha.example",
)
_ZONES = tuple(timezone(timedelta(minutes=m)) for m in (0, 60, 120, -300, -480, 540, 330))
_ATTACHMENTS = (
    ("application/pdf", "Proposal Q3.pdf"),
    ("application/pdf", "Angebot Müller GmbH.pdf"),
    ("application/pdf", "Devis révisé n°4471.pdf"),
    ("image/png", "screenshot.png"),
    ("image/jpeg", "IMG_2041.JPG"),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "Forecast 2026.xlsx"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "契約書.docx"),
)
_HTML_STYLE = (
    '<style type="text/css">body{font-family:Calibri,Arial,sans-serif;font-size:11pt}'
    "p{margin:0 0 8px 0}.quote{border-left:2px solid #ccc;padding-left:8px;color:#555}"
    "table.sig td{font-size:9pt;color:#777}</style>"
)
# "<token>.<root index>.<index>@host": the thread root's Message-ID can be rebuilt from any
# member's, which is how a reply finds it without more state than `thread_pool`.
_OWN_ID = re.compile(r"^(?P<token>[0-9a-f]{12})\.(?P<root>\d+)\.\d+@")
_WINDOW = 300  # replies go to recent messages; only these are scanned for thread members


def realistic_message(
    rng: random.Random,
    index: int,
    *,
    thread_pool: list[str],
    now: datetime = REFERENCE_NOW,
) -> bytes:
    """One message, CRLF line endings, drawn from `rng`.

    `index` must be unique within a corpus (it is part of the Message-ID). `thread_pool`
    holds earlier Message-IDs (without angle brackets), oldest first: a reply picks its
    parent among the recent ones, and the new message's Message-ID is appended to it. Pool
    entries not made by this module are fine (a reply to one references only it).
    """
    sender = rng.choice(_PEOPLE)
    recipients = rng.sample([p for p in _PEOPLE if p is not sender and p.name], rng.randint(1, 3))
    cc = rng.sample(_PEOPLE[:-1], rng.randint(1, 2)) if rng.random() < 0.3 else []
    date = (now - DATE_SPAN * rng.random()).astimezone(rng.choice(_ZONES)).replace(microsecond=0)

    parent: str | None = None
    references: list[str] = []
    token, root = f"{rng.getrandbits(48):012x}", index
    if thread_pool and rng.random() < 0.35:
        position = len(thread_pool) - 1 - min(int(rng.expovariate(1 / 20)), len(thread_pool) - 1)
        parent = thread_pool[position]
        references = _thread_references(thread_pool, position)
        if match := _OWN_ID.match(parent):
            token, root = match["token"], int(match["root"])
    if parent is None:
        own_host = _ID_HOSTS[int(token, 16) % len(_ID_HOSTS)]
    else:
        own_host = rng.choice(_ID_HOSTS)
    message_id = f"{token}.{root}.{index}@{own_host}"
    thread_pool.append(message_id)

    subject = random.Random(token).choice(_SUBJECTS)
    if parent is not None:
        subject = _REPLY_PREFIX[sender.lang] + subject
    lang = sender.lang
    paragraphs = _paragraphs(rng, lang)
    quoted = _quoted_history(rng, date) if parent is not None else []
    greeting = rng.choice(_GREETING[lang]).format(first=recipients[0].name.split()[0].rstrip(","))
    signature = [rng.choice(_CLOSING[lang]), sender.name or "Billing"]

    charsets, weights = zip(*_CHARSETS[lang], strict=True)
    charset = rng.choices(charsets, weights)[0]
    if charset == "windows-1252" and rng.random() < 0.7:
        paragraphs.insert(rng.randint(0, len(paragraphs)), rng.choice(_CP1252_EXTRAS))
    text = _plain_text(greeting, paragraphs, signature, quoted)
    if not _fits(text, charset):
        charset = "utf-8"

    headers = _trace_headers(rng, sender, recipients[0], date)
    headers += [
        b"MIME-Version: 1.0",
        b"From: " + _address(rng, sender, charset),
        b"To: " + b",\r\n ".join(_address(rng, p, charset) for p in recipients),
    ]
    if cc:
        headers.append(b"Cc: " + b", ".join(_address(rng, p, charset) for p in cc))
    headers += [
        b"Subject: " + _header_text(rng, subject, charset),
        b"Date: " + format_datetime(date).encode(),
        f"Message-ID: <{message_id}>".encode(),
    ]
    if parent is not None:
        headers.append(f"In-Reply-To: <{parent}>".encode())
        headers.append(b"References: " + b"\r\n ".join(f"<{r}>".encode() for r in references))
    if rng.random() < 0.6:
        headers.append(b"X-Mailer: " + rng.choice(_MAILERS).encode())
    if rng.random() < 0.15:
        headers.append(b"List-Unsubscribe: <mailto:unsubscribe@lists.example?subject=unsub>")

    text_part = _text_part(rng, "plain", text, charset)
    shape = rng.random()
    if shape < 0.10:
        if rng.random() < 0.4:
            body = text_part
        else:
            body = _alternative(rng, text, paragraphs, charset, greeting, signature, quoted)
        files = [_attachment(rng) for _ in range(1 if rng.random() < 0.9 else 2)]
        entity = _multipart(rng, "mixed", [body, *files])
    elif shape < 0.55:
        entity = _alternative(rng, text, paragraphs, charset, greeting, signature, quoted)
    else:
        entity = text_part
    return _CRLF.join(headers) + _CRLF + entity


def corpus(count: int, seed: int, *, now: datetime = REFERENCE_NOW) -> list[bytes]:
    """`count` messages from `realistic_message`; the same arguments give the same bytes."""
    rng = random.Random(seed)
    pool: list[str] = []
    return [realistic_message(rng, i, thread_pool=pool, now=now) for i in range(count)]


def _thread_references(pool: Sequence[str], position: int) -> list[str]:
    """Root first, then the earlier thread members in the recent window, ending at the parent."""
    parent = pool[position]
    match = _OWN_ID.match(parent)
    if match is None:
        return [parent]
    token, root = match["token"], match["root"]
    prefix = f"{token}.{root}."
    members = [m for m in pool[max(0, position - _WINDOW) : position] if m.startswith(prefix)]
    root_id = f"{token}.{root}.{root}@{_ID_HOSTS[int(token, 16) % len(_ID_HOSTS)]}"
    chain = [root_id, *members[-8:], parent]
    return list(dict.fromkeys(chain))


def _paragraphs(rng: random.Random, lang: str) -> list[str]:
    sentences = _SENTENCES[lang]
    glue = "" if lang == "ja" else " "
    return [
        glue.join(rng.choice(sentences) for _ in range(rng.randint(2, 5)))
        for _ in range(rng.randint(1, 4))
    ]


def _quoted_history(rng: random.Random, date: datetime) -> list[str]:
    """A quoted history a few levels deep, in the languages of earlier (made-up) senders."""
    lines: list[str] = []
    when = date
    for depth in range(1, rng.randint(1, 4) + 1):
        who = rng.choice(_PEOPLE[:-1])
        when -= timedelta(hours=rng.randint(1, 96))
        prefix = "> " * depth
        wrote = _WROTE[who.lang].format(date=format_datetime(when), who=who.name)
        lines.append("> " * (depth - 1) + wrote)
        for paragraph in _paragraphs(rng, who.lang):
            lines.extend(prefix + line for line in _wrap(paragraph, 72))
            lines.append(prefix.rstrip())
    return lines


def _wrap(text: str, width: int) -> list[str]:
    if " " not in text:  # Japanese: no spaces; cut by characters
        return [text[i : i + width // 2] for i in range(0, len(text), width // 2)] or [""]
    lines, current = [], ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return [*lines, current]


def _plain_text(
    greeting: str, paragraphs: list[str], signature: list[str], quoted: list[str]
) -> str:
    lines = [greeting, ""]
    for paragraph in paragraphs:
        lines += [*_wrap(paragraph, 72), ""]
    lines += [*signature, ""]
    if quoted:
        lines += [*quoted, ""]
    return "\n".join(lines)


def _html(
    greeting: str,
    paragraphs: list[str],
    signature: list[str],
    quoted: list[str],
    image: str,
    charset: str,
) -> str:
    e = html.escape
    body = [f"<p>{e(greeting)}</p>", *(f"<p>{e(p)}</p>" for p in paragraphs)]
    body.append("<p>" + "<br>\n".join(e(s) for s in signature) + "</p>")
    if image:
        body.append(f'<p><img src="cid:{image}" alt="logo" width="120" height="40"></p>')
    if quoted:
        inner = "<br>\n".join(e(line.lstrip("> ")) for line in quoted)
        body.append(f'<div class="quote"><blockquote type="cite">{inner}</blockquote></div>')
    return (
        "<!DOCTYPE html>\n<html><head>"
        f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">'
        f'{_HTML_STYLE}</head>\n<body>\n<div dir="ltr">\n' + "\n".join(body) + "\n</div>\n"
        '<table class="sig"><tr><td>Sent from the CRM</td></tr></table>\n</body></html>\n'
    )


def _fits(text: str, charset: str) -> bool:
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        return False
    return True


def _text_part(rng: random.Random, subtype: str, text: str, charset: str) -> bytes:
    data = text.encode(charset, "xmlcharrefreplace")
    if charset in ("us-ascii", "iso-2022-jp"):
        cte = "7bit"
    elif charset == "utf-8":
        cte = rng.choice(("8bit", "quoted-printable", "base64"))
    else:
        cte = rng.choice(("8bit", "quoted-printable"))
    content_type = f"text/{subtype}; charset={_maybe_quoted(rng, charset)}"
    if subtype == "plain" and rng.random() < 0.2:
        content_type += "; format=flowed"
    return _leaf(content_type, cte, data)


def _maybe_quoted(rng: random.Random, value: str) -> str:
    return f'"{value}"' if rng.random() < 0.5 else value


def _leaf(content_type: str, cte: str, data: bytes, extra: Sequence[str] = ()) -> bytes:
    if cte == "base64":
        payload = base64.encodebytes(data)
    elif cte == "quoted-printable":
        payload = binascii.b2a_qp(data, istext=True)
    else:
        payload = data
    payload = payload.replace(b"\r\n", b"\n").replace(b"\n", _CRLF)
    headers = [f"Content-Type: {content_type}", f"Content-Transfer-Encoding: {cte}", *extra]
    return _CRLF.join(h.encode() for h in headers) + _CRLF + _CRLF + payload


def _alternative(
    rng: random.Random,
    text: str,
    paragraphs: list[str],
    charset: str,
    greeting: str = "",
    signature: Sequence[str] = (),
    quoted: Sequence[str] = (),
) -> bytes:
    related = rng.random() < 0.1
    image = f"logo.{rng.getrandbits(32):08x}@crm.example" if related else ""
    markup = _html(greeting, paragraphs, list(signature), list(quoted), image, charset)
    html_part = _text_part(rng, "html", markup, charset)
    if related:
        logo = _leaf(
            'image/png; name="logo.png"',
            "base64",
            rng.randbytes(rng.randint(1_000, 3_000)),
            (f"Content-ID: <{image}>", 'Content-Disposition: inline; filename="logo.png"'),
        )
        html_part = _multipart(rng, "related", [html_part, logo], '; type="text/html"')
    return _multipart(rng, "alternative", [_text_part(rng, "plain", text, charset), html_part])


def _attachment(rng: random.Random) -> bytes:
    content_type, filename = rng.choice(_ATTACHMENTS)
    data = rng.randbytes(rng.randint(10_000, 40_000))
    if filename.isascii():
        params = f'; name="{filename}"', f'attachment; filename="{filename}"'
    elif rng.random() < 0.5:  # RFC 2231, what Thunderbird and Apple Mail send
        quoted = "".join(
            chr(b) if b < 0x80 and (chr(b).isalnum() or chr(b) in ".-_") else f"%{b:02X}"
            for b in filename.encode()
        )
        params = "", f"attachment; filename*=utf-8''{quoted}"
    else:  # RFC 2047 inside a quoted parameter: not allowed, but Outlook and Gmail do it
        word = "=?utf-8?B?" + base64.b64encode(filename.encode()).decode() + "?="
        params = f'; name="{word}"', f'attachment; filename="{word}"'
    return _leaf(content_type + params[0], "base64", data, (f"Content-Disposition: {params[1]}",))


def _multipart(rng: random.Random, subtype: str, parts: Sequence[bytes], params: str = "") -> bytes:
    boundary = f"----=_Part_{rng.getrandbits(64):016x}"
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"{params}'.encode()
    delimiter = f"--{boundary}".encode()
    out = [head, b"", b"This is a multi-part message in MIME format."]
    for part in parts:
        out += [delimiter, part]
    out += [delimiter + b"--", b""]
    return _CRLF.join(out)


def _address(rng: random.Random, person: _Person, charset: str) -> bytes:
    if not person.name:
        return person.address.encode()
    name = person.name
    if name.isascii():
        shown = f'"{name}"' if any(c in name for c in ',.;:"()<>@[]') else name
        return f"{shown} <{person.address}>".encode()
    return _header_text(rng, name, charset, phrase=True) + f" <{person.address}>".encode()


def _header_text(rng: random.Random, text: str, charset: str, *, phrase: bool = False) -> bytes:
    """RFC 2047 encoded words for non-ASCII text; now and then raw UTF-8 (broken mailers)."""
    if text.isascii():
        return text.encode()
    if not phrase and rng.random() < 0.03:
        return text.encode("utf-8")
    if not _fits(text, charset) or charset == "us-ascii":
        charset = "utf-8"
    b_encoding = charset == "iso-2022-jp" or rng.random() < 0.5
    # Short chunks make long text several adjacent encoded words, as real encoders do.
    step = 12 if charset == "iso-2022-jp" else 24
    words = []
    for start in range(0, len(text), step):
        data = text[start : start + step].encode(charset)
        if b_encoding:
            words.append(f"=?{charset}?B?{base64.b64encode(data).decode()}?=")
        else:
            words.append(f"=?{charset}?Q?{_q_encode(data)}?=")
    return "\r\n ".join(words).encode()


def _q_encode(data: bytes) -> str:
    safe = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/")
    return "".join(chr(b) if b in safe else "_" if b == 0x20 else f"={b:02X}" for b in data)


def _trace_headers(
    rng: random.Random, sender: _Person, rcpt: _Person, date: datetime
) -> list[bytes]:
    domain = sender.address.rpartition("@")[2]
    rcpt_domain = rcpt.address.rpartition("@")[2]
    lines = [f"Return-Path: <{sender.address}>"]
    when = date
    for hop in range(rng.randint(2, 4)):
        when += timedelta(seconds=rng.randint(1, 30))
        ip = ".".join(str(rng.randint(1, 254)) for _ in range(4))
        lines.append(
            f"Received: from mail-{hop}.{domain} (mail-{hop}.{domain} [{ip}])\r\n"
            f"\tby mx{hop}.{rcpt_domain} with ESMTPS id {rng.getrandbits(40):010x}\r\n"
            f"\tfor <{rcpt.address}>; {format_datetime(when)}"
        )
    signature = base64.b64encode(rng.randbytes(256)).decode()
    folded = "\r\n\t".join(signature[i : i + 72] for i in range(0, len(signature), 72))
    body_hash = base64.b64encode(rng.randbytes(32)).decode()
    lines.append(
        f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=s1;\r\n"
        f"\th=from:to:subject:date:message-id:mime-version;\r\n\tbh={body_hash};\r\n"
        f"\tb={folded}"
    )
    return [line.encode() for line in lines]


def _benchmark(count: int, seed: int, repeat: int) -> None:
    """Parse the corpus with each approach; print the best of `repeat` runs."""
    import email
    import email.policy
    from email.message import EmailMessage, Message
    from email.parser import BytesParser

    from core.mail.parsing import parse_message

    messages = corpus(count, seed)
    megabytes = sum(map(len, messages)) / 1e6

    def stdlib_compat32() -> None:
        for raw in messages:
            email.message_from_bytes(raw, policy=email.policy.compat32)

    def stdlib_default() -> None:
        parser = BytesParser(policy=email.policy.default)
        for raw in messages:
            parser.parsebytes(raw)

    def modern_fields() -> None:
        # What parse_message extracts, the way the modern API would get it.
        parser = BytesParser(policy=email.policy.default)
        for raw in messages:
            msg = parser.parsebytes(raw)
            assert isinstance(msg, EmailMessage)
            for name in ("message-id", "in-reply-to", "references", "subject", "from", "to", "cc"):
                str(msg.get(name, ""))
            date = msg.get("date")
            getattr(date, "datetime", None)
            for kind in ("plain", "html"):
                part = msg.get_body((kind,))
                if isinstance(part, EmailMessage):
                    part.get_content()
            for attachment in msg.iter_attachments():
                assert isinstance(attachment, Message)
                attachment.get_filename()
                len(attachment.get_payload(decode=True) or b"")

    def full_parse_message() -> None:
        for raw in messages:
            parse_message(raw)

    runs: list[tuple[str, Callable[[], None]]] = [
        ("email.message_from_bytes(policy=compat32), parse only", stdlib_compat32),
        ("BytesParser(policy=default), parse only", stdlib_default),
        ("BytesParser(policy=default) + field extraction", modern_fields),
        ("parse_message (compat32 + extraction)", full_parse_message),
    ]
    print(f"{count} messages, {megabytes:.1f} MB, best of {repeat}")
    for label, run in runs:
        best = min(_timed(run) for _ in range(repeat))
        print(f"  {label:50s} {count / best:8.0f} msg/s {megabytes / best:7.1f} MB/s")


def _timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description="Benchmark the message parser on a corpus.")
    cli.add_argument("--count", type=int, default=2000)
    cli.add_argument("--seed", type=int, default=1)
    cli.add_argument("--repeat", type=int, default=3)
    args = cli.parse_args()
    _benchmark(args.count, args.seed, args.repeat)

"""Deterministic RFC 5322 mail for the server benchmarks: a realistic Inbox.

``message(i)`` is the ``i``-th message of a fixed sequence (same bytes on every run):
bodies of about ``BODY_SIZE`` characters; 45% plain text only, 35% text and HTML
(multipart/alternative), 12% HTML only, 8% with a small PDF attached; 70% ASCII, 20% with
Latin-1 words, 10% with wider characters (Polish, Cyrillic, CJK, emoji), which go as
UTF-8 in quoted-printable or 8bit, with RFC 2047 subjects; one in four is a reply
(References, "Re:"). Dates go back one per ten minutes from a fixed day.
"""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime

BODY_SIZE = 4096
SEED = 20241123
START = datetime(2024, 11, 23, 9, 0, tzinfo=UTC)

WORDS = [
    "the", "quarterly", "report", "meeting", "budget", "review", "project", "deadline", "customer", "proposal",
    "update", "schedule", "please", "find", "attached", "let", "me", "know", "thanks", "regards", "team",
    "office", "contract", "invoice", "delivery", "status", "server", "migration", "calendar", "agenda",
    "minutes", "action", "items", "follow", "up", "tomorrow", "week", "friday", "monday", "discussion",
    "draft", "final", "version", "approval", "signature", "marketing", "campaign", "launch", "product",
    "roadmap", "release", "notes", "feedback", "survey", "results", "analysis", "forecast", "revenue",
    "growth", "costs", "travel", "booking", "hotel", "flight", "conference", "workshop", "training",
    "onboarding", "policy", "security", "compliance", "audit", "backup", "network", "outage", "maintenance",
    "window", "ticket",
]
LATIN1 = ["Grüße", "Müller", "Zürich", "réunion", "café", "naïve", "São", "évaluation", "señor", "déjà", "Straße"]
WIDE = [*LATIN1, "Łódź", "東京", "会議", "Привет", "встреча", "😀", "€100", "✓"]
NAMES = ["Anna Schmidt", "Ben Smith", "Chloé Dubois", "David García", "Elif Yılmaz", "Frank Novak", "Grace Wong",
         "Hiro Tanaka", "Ines Silva", "Jonas Andersen", "Katarzyna Kowalski", "María Rossi", "Søren Johansson"]


def _encoded(text: str) -> str:
    """A header value: as it is in ASCII, else RFC 2047 (UTF-8)."""
    return text if text.isascii() else Header(text, "utf-8").encode()


def _address(name: str) -> str:
    local = name.split()[0].lower().encode("ascii", "ignore").decode() or "user"
    return f"{local}@example.org"


def _sentence(r: random.Random, extra: list[str]) -> str:
    words = [r.choice(extra) if extra and r.random() < 0.12 else r.choice(WORDS) for _ in range(r.randint(6, 16))]
    return words[0].capitalize() + " " + " ".join(words[1:]) + "."


def _paragraphs(r: random.Random, extra: list[str], size: int) -> list[str]:
    out: list[str] = []
    total = 0
    while total < size:
        para = " ".join(_sentence(r, extra) for _ in range(r.randint(2, 6)))
        out.append(para)
        total += len(para) + 2
    return out


def _html(paragraphs: list[str]) -> str:
    body = "\n".join(f"<p style=\"margin:0 0 8px 0\">{p}</p>" for p in paragraphs)
    return ("<html><head><meta charset=\"utf-8\"><style>p{font-family:Calibri,sans-serif}</style></head>"
            f"<body><div dir=\"ltr\">\n{body}\n<p>--<br>Sent from the office</p></div></body></html>")


def _qp_or_8bit(text: str, r: random.Random) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, encoded body) for UTF-8 text."""
    raw = text.encode("utf-8")
    if raw.isascii():
        return "7bit", raw.replace(b"\n", b"\r\n")
    if r.random() < 0.5:
        import quopri

        return "quoted-printable", quopri.encodestring(raw.replace(b"\n", b"\r\n"))
    return "8bit", raw.replace(b"\n", b"\r\n")


def _part(content_type: str, text: str, r: random.Random) -> bytes:
    cte, data = _qp_or_8bit(text, r)
    return (f"Content-Type: {content_type}; charset=\"utf-8\"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
            .encode() + data)


def message(i: int) -> bytes:
    """The ``i``-th message (bytes, CRLF line ends)."""
    r = random.Random(SEED * 100003 + i)
    script = r.random()
    extra = [] if script < 0.7 else (LATIN1 if script < 0.9 else WIDE)
    sender = r.choice(NAMES)
    to = r.sample(NAMES, r.randint(1, 3))
    topic = " ".join(r.choice(extra or WORDS) if k == 1 else r.choice(WORDS) for k in range(r.randint(3, 8)))
    reply = r.random() < 0.25
    subject = ("Re: " if reply else "") + topic.capitalize()
    date = START - timedelta(minutes=10 * i)
    paragraphs = _paragraphs(r, extra, BODY_SIZE)
    text = "\n\n".join(paragraphs) + f"\n\n-- \n{sender}\n"
    kind = r.random()
    head = [
        f"From: {_encoded(sender)} <{_address(sender)}>",
        "To: " + ", ".join(f"{_encoded(n)} <{_address(n)}>" for n in to),
        f"Subject: {_encoded(subject)}",
        f"Date: {format_datetime(date)}",
        f"Message-ID: <bench.{i}.{r.getrandbits(40):x}@example.org>",
        "MIME-Version: 1.0",
    ]
    if reply:
        head.append(f"References: <bench.thread.{r.randint(0, 500)}@example.org>")
    if r.random() < 0.3:
        head.append(f"Cc: {_address(r.choice(NAMES))}")
    boundary = f"=_bench_{i}_{r.getrandbits(32):08x}"
    if kind < 0.45:
        body = _part("text/plain", text, r)
        return ("\r\n".join(head) + "\r\n").encode() + body
    if kind < 0.80:
        parts = [_part("text/plain", text, r), _part("text/html", _html(paragraphs), r)]
        ctype = f"multipart/alternative; boundary=\"{boundary}\""
    elif kind < 0.92:
        return ("\r\n".join(head) + "\r\n").encode() + _part("text/html", _html(paragraphs), r)
    else:
        pdf = b"%PDF-1.4\n" + bytes(r.getrandbits(8) for _ in range(1500)) + b"\n%%EOF\n"
        attachment = (f"Content-Type: application/pdf; name=\"report-{i}.pdf\"\r\n"
                      f"Content-Disposition: attachment; filename=\"report-{i}.pdf\"\r\n"
                      "Content-Transfer-Encoding: base64\r\n\r\n").encode() + base64.encodebytes(pdf)
        parts = [_part("text/plain", text, r), attachment]
        ctype = f"multipart/mixed; boundary=\"{boundary}\""
    head.append(f"Content-Type: {ctype}")
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts) + f"--{boundary}--\r\n".encode()
    return ("\r\n".join(head) + "\r\n\r\n").encode() + b"This is a multi-part message in MIME format.\r\n" + body


if __name__ == "__main__":
    import sys

    sys.stdout.buffer.write(message(int(sys.argv[1]) if len(sys.argv) > 1 else 0))

"""Body text for devices (MS-ASAIRS 2.2.2.9 Body, 2.2.2.12 BodyPreference): turning HTML
into plain text and back, truncating at a UTF-8 character boundary, and the preview.

Owned here so that Sync, ItemOperations and Search give a device the same body for the
same preference. Only the standard library is used (``html.parser``).
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

# AirSyncBase Type (MS-ASAIRS 2.2.2.41.4).
PLAIN = 1
HTML = 2
RTF = 3
MIME = 4

PREVIEW_MAX = 255  # MS-ASAIRS 2.2.2.34.2: Preview is 0..255 characters

_BLOCK = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset", "figcaption",
    "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol",
    "p", "pre", "section", "table", "tr", "ul",
})
_SKIP = frozenset({"head", "script", "style", "title", "template", "noscript"})
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*(?:\n\s*)+")
_WS = re.compile(r"\s+")


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML document, a line break for each block element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag in _BLOCK:
            self.parts.append("\n")
        elif tag == "td" or tag == "th":
            self.parts.append("\t")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK and tag != "br":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(source: str) -> str:
    """Readable plain text of an HTML body: tags dropped, block elements as line breaks,
    runs of spaces and blank lines collapsed. Never raises on broken markup."""
    parser = _TextExtractor()
    try:
        parser.feed(source)
        parser.close()
    except (AssertionError, ValueError):  # html.parser gives up on some malformed declarations
        pass
    text = "".join(parser.parts)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")


def text_to_html(text: str) -> str:
    """An HTML body showing plain text as it is (for clients that asked for HTML only)."""
    escaped = html.escape(text, quote=False).replace("\r\n", "\n").replace("\n", "<br>\n")
    return f"<html><body><div>{escaped}</div></body></html>"


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (bytes that came in undecodable count as one each)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogateescape"))


def truncate_utf8(text: str, size: int) -> tuple[str, int, bool]:
    """``(data, full_size, truncated)``: at most ``size`` bytes of UTF-8, never splitting a
    character (MS-ASAIRS TruncationSize counts bytes)."""
    if text.isascii():
        full = len(text)
        return (text, full, False) if full <= size else (text[:size], full, True)
    raw = text.encode("utf-8", "surrogateescape")
    full = len(raw)
    if full <= size:
        return text, full, False
    cut = size
    # Back up over continuation bytes (10xxxxxx) to the start of the split character.
    while cut > 0 and (raw[cut] & 0xC0) == 0x80:
        cut -= 1
    return raw[:cut].decode("utf-8", "surrogateescape"), full, True


def preview(text: str, length: int) -> str:
    """The first ``length`` characters of plain text, whitespace collapsed (Preview)."""
    length = min(length, PREVIEW_MAX)
    head = text[: length * 4 + 64]  # enough to survive collapsing without scanning a long body
    return _WS.sub(" ", head).strip()[:length]

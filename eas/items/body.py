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
_SPACES_TO_FOLD = re.compile(r" [ \t\r\f\v\u00a0]+|[\t\r\f\v\u00a0][ \t\r\f\v\u00a0]*")  # _SPACES but " "
_FOLD_NEEDED = ("  ", "\t", "\r", "\f", "\v", "\u00a0")
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
    parts = _fast_parts(source)
    if parts is None:
        parser = _TextExtractor()
        try:
            parser.feed(source)
            parser.close()
        except (AssertionError, ValueError):  # html.parser gives up on some malformed declarations
            pass
        parts = parser.parts
    # What the per-line "_SPACES.sub, strip" did, faster: _SPACES holds no line break, so
    # one pass over the whole text is one per line; a CR before a line break would be
    # stripped with the line's end anyway; and single spaces need no substitution.
    text = "".join(parts).replace("\r\n", "\n")
    if any(blank in text for blank in _FOLD_NEEDED):  # str.find is a far faster scan than a regex
        text = _SPACES_TO_FOLD.sub(" ", text)
    lines = [line.strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")


# The fast path of html_to_text. ``html.parser`` costs about 0.2 ms per 5 KB of mail HTML,
# which was a third of an initial Sync's server time when one mail in eight is HTML only.
# Well-formed markup, as mail programs write it, is read here with a few regular
# expressions into the same parts _TextExtractor collects; anything this strict grammar
# does not cover (a bare "<", an unquoted value holding "/", a processing instruction,
# a CDATA section, an unterminated tag, script or comment ...) returns None and goes to
# html.parser, so the two never disagree (tests/test_html_text.py compares them).
_TAG_WS = "[ \t\n\r\f]"
_START_TAG = re.compile(
    rf"<([a-zA-Z][-.a-zA-Z0-9:_]*)"  # the name, as html.parser reads it when it ends here
    rf"(?:{_TAG_WS}+[^\s/>\"'=<]+"  # an attribute name after blanks
    rf"(?:{_TAG_WS}*={_TAG_WS}*(?:\"[^\"]*\"|'[^']*'|[^\s>\"'/=<`]+(?=[ \t\n\r\f>])))?)*"  # its value
    rf"{_TAG_WS}*(/?)>")
_END_TAG = re.compile(rf"</([a-zA-Z][-.a-zA-Z0-9:_]*){_TAG_WS}*>")
_COMMENT = re.compile(r"<!--.*?--\s*>", re.DOTALL)  # html.parser ends a comment at the first --\s*>
_DOCTYPE = re.compile(r"<![dD][oO][cC][tT][yY][pP][eE][^>]*>")
_CDATA_END = {name: re.compile(rf"</\s*{name}\s*>", re.IGNORECASE) for name in ("script", "style")}


def _fast_parts(source: str) -> list[str] | None:
    """What _TextExtractor collects from ``source``, or None where it is not sure."""
    parts: list[str] = []
    append = parts.append
    skip = 0
    pos = 0
    end = len(source)
    find = source.find
    while pos < end:
        lt = find("<", pos)
        if lt < 0:
            lt = end
        if lt > pos:
            if not skip:
                text = source[pos:lt]
                append(html.unescape(text) if "&" in text else text)
            if lt == end:
                break
        nxt = source[lt + 1:lt + 2]
        if nxt == "/":
            m = _END_TAG.match(source, lt)
            if m is None:
                return None
            tag = m.group(1).lower()
            if tag in _SKIP:
                skip = max(0, skip - 1)
            elif tag in _BLOCK and tag != "br":
                append("\n")
        elif nxt == "!":
            m = _COMMENT.match(source, lt) if source.startswith("<!--", lt) else _DOCTYPE.match(source, lt)
            if m is None:
                return None
        else:
            m = _START_TAG.match(source, lt)
            if m is None:
                return None
            tag = m.group(1).lower()
            if m.group(2):  # <tag ... />
                if tag in _BLOCK:
                    append("\n")
            else:
                if tag in _SKIP:
                    skip += 1
                elif tag in _BLOCK:
                    append("\n")
                elif tag == "td" or tag == "th":
                    append("\t")
                closing = _CDATA_END.get(tag)
                if closing is not None:  # script and style hold raw text up to their end tag
                    c = closing.search(source, m.end())
                    if c is None:
                        return None
                    skip = max(0, skip - 1)
                    pos = c.end()
                    continue
        pos = m.end()
    return parts


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

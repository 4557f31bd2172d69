"""Hostile and unusual WBXML: each malformed input is a ``WBXMLError`` naming the exact
byte offset at fault, decoded in bounded time and memory; each unusual but valid input
decodes to the expected tree; each bad Writer/encode input is refused.

The offsets are those ``_wbxml.c`` names: a token's own offset for what is wrong with the
token (and for an overflowing or unbacked length it carries), the end of the data for a
truncation inside the header, an mb_u_int32 or a SWITCH_PAGE, the start of the header
field for a header value.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import NamedTuple

import pytest

from eas import tags
from eas.tags import AirSync, Contacts, Email, ItemOperations, Ping
from eas.wbxml import Limits, Node, WBXMLError, Writer, decode, encode
from eas.wbxml._pure import mb_u_int32 as mb

H = b"\x03\x01\x6a\x00"  # WBXML 1.3, unknown public id, UTF-8, no string table
MB100 = 100 * 1024 * 1024
SYNC, SYNCKEY = 0x45, 0x4B  # AirSync Sync and SyncKey, with the content flag

TRUNCATED = "unexpected end of data"
VERSION = "unsupported WBXML version"
OVERFLOW = "multi-byte integer overflows 32 bits"
CHARSET = "unsupported charset"
STRTBL_LENGTH = "string table longer than the message"
PAGE = "unknown code page"
TAG = "unknown tag on this code page"
ATTRIBUTES = "attributes are not used"
LITERAL = "LITERAL tokens are not used"
EXT = "EXT tokens are not used"
PI = "processing instructions are not used"
END = "END without a start tag"
OUTSIDE = "content outside the root element"
MIXED = "mixed content"
DEPTH = "elements nested deeper than the limit"
TOKENS = "more tokens than the limit"
LENGTH = "string or opaque data longer than the limit"
UNTERMINATED = "string without its terminating NUL"
STRTBL_REF = "string table reference out of range"
OPAQUE_LENGTH = "opaque length exceeds the message"
ENTITY = "entity is not a valid character"
TRAILING = "data after the root element"
MESSAGE_SIZE = "message larger than the limit"


class Case(NamedTuple):
    id: str
    data: bytes
    fragment: str
    offset: int
    limits: Limits | None = None
    heavy: bool = False  # too slow under tracemalloc in the pure twin: time it only


def _c(id: str, data: bytes, fragment: str, offset: int, limits: Limits | None = None, heavy: bool = False) -> Case:
    return Case(id, data, fragment, offset, limits, heavy)


OVER = b"\x90\x80\x80\x80\x00"  # 2**32: overflows on its fifth byte
CONT6 = b"\x81\x80\x80\x80\x80\x00"  # six bytes: continuation bit still set on the fifth
MAX32 = b"\x8f\xff\xff\xff\x7f"  # 2**32 - 1, the largest that fits

ERROR_CASES: list[Case] = [
    # Header.
    _c("empty", b"", TRUNCATED, 0),
    _c("version-only", b"\x03", TRUNCATED, 1),
    _c("header-only", H, TRUNCATED, 4),
    _c("version-0", b"\x00\x01\x6a\x00\x05", VERSION, 0),
    _c("version-4", b"\x04\x01\x6a\x00\x05", VERSION, 0),
    _c("version-0x13", b"\x13\x01\x6a\x00\x05", VERSION, 0),
    _c("version-ff", b"\xff\x01\x6a\x00\x05", VERSION, 0),
    _c("charset-utf16", b"\x03\x01" + mb(1015) + b"\x00\x05", CHARSET, 2),
    _c("charset-utf16be", b"\x03\x01" + mb(1013) + b"\x00\x05", CHARSET, 2),
    _c("charset-1", b"\x03\x01\x01\x00\x05", CHARSET, 2),
    _c("charset-105", b"\x03\x01\x69\x00\x05", CHARSET, 2),
    _c("charset-107", b"\x03\x01\x6b\x00\x05", CHARSET, 2),
    _c("charset-utf16-after-publicid-index", b"\x03\x00\x00" + mb(1015) + b"\x02a\x00\x05", CHARSET, 3),
    _c("publicid-overflow", b"\x03" + OVER + b"\x6a\x00\x05", OVERFLOW, 1),
    _c("publicid-6-byte", b"\x03" + CONT6 + b"\x6a\x00\x05", OVERFLOW, 1),
    _c("publicid-index-overflow", b"\x03\x00" + OVER + b"\x6a\x00\x05", OVERFLOW, 2),
    _c("charset-overflow", b"\x03\x01" + OVER + b"\x00\x05", OVERFLOW, 2),
    _c("charset-6-byte", b"\x03\x01" + CONT6 + b"\x00\x05", OVERFLOW, 2),
    _c("strtbl-length-overflow", b"\x03\x01\x6a" + OVER + b"\x05", OVERFLOW, 3),
    _c("strtbl-length-6-byte", b"\x03\x01\x6a" + CONT6 + b"\x05", OVERFLOW, 3),
    _c("publicid-truncated-mb", b"\x03\x81\x80", TRUNCATED, 3),
    _c("strtbl-longer-than-message", b"\x03\x01\x6a\x10abc\x00\x05", STRTBL_LENGTH, 3),
    _c("strtbl-one-too-long", b"\x03\x01\x6a\x03ab", STRTBL_LENGTH, 3),
    _c("strtbl-100MB", b"\x03\x01\x6a" + mb(MB100) + b"\x05" + b"x" * 4096, STRTBL_LENGTH, 3),
    _c("strtbl-max32", b"\x03\x01\x6a" + MAX32 + b"\x05", STRTBL_LENGTH, 3),
    _c("publicid-index-past-table", b"\x03\x00\x05\x6a\x02a\x00\x05", STRTBL_REF, 2),
    _c("publicid-index-at-table-end", b"\x03\x00\x02\x6a\x02a\x00\x05", STRTBL_REF, 2),
    _c("publicid-index-empty-table", b"\x03\x00\x00\x6a\x00\x05", STRTBL_REF, 2),
    # Code pages and tokens.
    _c("page-26", H + b"\x00\x1a\x05", PAGE, 4),
    _c("page-255", H + b"\x00\xff\x05", PAGE, 4),
    _c("page-26-inside-root", H + b"\x45\x00\x1a\x05\x01", PAGE, 5),
    _c("page-255-after-root-start", H + b"\x45\x0b\x00\xff\x01", PAGE, 6),
    _c("switch-page-truncated", H + b"\x45\x00", TRUNCATED, 6),
    _c("airsync-0x11", H + b"\x11", TAG, 4),
    _c("airsync-0x11-content", H + b"\x51\x01", TAG, 4),
    _c("airsync-0x11-inside", H + b"\x45\x51\x01\x01", TAG, 5),
    _c("airsync-0x2a", H + b"\x45\x2a\x01", TAG, 5),
    _c("airsync-0x3f", H + b"\x45\x3f\x01", TAG, 5),
    _c("page-3-token-5", H + b"\x00\x03\x05", TAG, 6),
    _c("contacts-0x3f", H + b"\x00\x01\x3f", TAG, 6),
    _c("page-switched-back", H + b"\x00\x02\x7f\x00\x00\x3f\x01", TAG, 9),  # Email 0x3F valid, AirSync 0x3F not
    _c("end-without-start", H + b"\x01", END, 4),
    _c("end-without-start-after-switch", H + b"\x00\x01\x01", END, 6),
    _c("attributes-root", H + b"\x85", ATTRIBUTES, 4),
    _c("attributes-and-content-root", H + b"\xc5\x01\x01", ATTRIBUTES, 4),
    _c("attributes-inside", H + b"\x45\x8b\x01", ATTRIBUTES, 5),
    _c("attributes-on-unknown-token", H + b"\x91\x01", ATTRIBUTES, 4),
    *[_c(f"literal-{b:#04x}", H + bytes((SYNC, b)) + b"\x01", LITERAL, 5) for b in (0x04, 0x44, 0x84, 0xC4)],
    *[_c(f"ext-{b:#04x}", H + bytes((SYNC, b)) + b"\x00\x01", EXT, 5)
      for b in (0x40, 0x41, 0x42, 0x80, 0x81, 0x82, 0xC0, 0xC1, 0xC2)],
    _c("pi", H + b"\x45\x43\x01", PI, 5),
    _c("literal-before-root", H + b"\x04\x00\x05", LITERAL, 4),
    _c("pi-before-root", H + b"\x43\x01", PI, 4),
    _c("ext-before-root", H + b"\xc0\x05", EXT, 4),
    # Depth and token bombs.
    _c("depth-bomb-default", H + b"\x45" * 100_000, DEPTH, 4 + 64),
    _c("depth-bomb-max-depth-3", H + b"\x45" * 100_000, DEPTH, 4 + 3, Limits(max_depth=3)),
    _c("depth-bomb-max-depth-1", H + b"\x45" * 100_000, DEPTH, 5, Limits(max_depth=1)),
    _c("depth-bomb-max-depth-256", H + b"\x45" * 100_000, DEPTH, 4 + 256, Limits(max_depth=256)),
    _c("depth-empty-leaf-past-limit", H + b"\x45\x45\x05\x01\x01", DEPTH, 6, Limits(max_depth=2)),
    _c("depth-closed-bomb", H + b"\x45" * 65 + b"\x01" * 65, DEPTH, 4 + 64),
    _c("token-bomb-max-tokens", H + b"\x45" + b"\x0b" * 1_000_000 + b"\x01", TOKENS, 4 + 1000,
       Limits(max_tokens=1000)),
    _c("token-bomb-switch-pages", H + b"\x45" + b"\x00\x00" * 500_000 + b"\x01", TOKENS, 4 + 1 + 2 * 99,
       Limits(max_tokens=100)),
    _c("token-bomb-default", H + b"\x45" + b"\x0b" * 1_000_005 + b"\x01", TOKENS, 4 + 1_000_000, heavy=True),
    _c("tokens-count-switch-and-end", H + b"\x45\x00\x00\x01", TOKENS, 7, Limits(max_tokens=2)),
    _c("tokens-count-pieces", H + b"\x4b\x03a\x00\x02\x41\x03b\x00\x01", TOKENS, 10, Limits(max_tokens=3)),
    # mb_u_int32 overflow in the body: the token is blamed.
    _c("opaque-length-overflow", H + b"\x4b\xc3" + OVER + b"\x01", OVERFLOW, 5),
    _c("opaque-length-6-byte", H + b"\x4b\xc3" + CONT6 + b"\x01", OVERFLOW, 5),
    _c("entity-overflow", H + b"\x4b\x02" + OVER + b"\x01", OVERFLOW, 5),
    _c("entity-6-byte", H + b"\x4b\x02" + CONT6 + b"\x01", OVERFLOW, 5),
    _c("str_t-overflow", b"\x03\x01\x6a\x02a\x00\x4b\x83" + OVER + b"\x01", OVERFLOW, 7),
    _c("str_t-6-byte", b"\x03\x01\x6a\x02a\x00\x4b\x83" + CONT6 + b"\x01", OVERFLOW, 7),
    _c("opaque-length-truncated-mb", H + b"\x4b\xc3\x80\x80", TRUNCATED, 8),
    _c("entity-truncated-mb", H + b"\x4b\x02\x81", TRUNCATED, 7),
    _c("str_t-truncated-mb", b"\x03\x01\x6a\x02a\x00\x4b\x83\x80", TRUNCATED, 9),
    # Strings, string table references, opaque lengths.
    _c("str_t-past-table", b"\x03\x01\x6a\x03ab\x00\x4b\x83\x03\x01", STRTBL_REF, 8),
    _c("str_t-far-past-table", b"\x03\x01\x6a\x03ab\x00\x4b\x83" + MAX32 + b"\x01", STRTBL_REF, 8),
    _c("str_t-empty-table", H + b"\x4b\x83\x00\x01", STRTBL_REF, 5),
    _c("str_t-unterminated-in-table", b"\x03\x01\x6a\x02ab\x4b\x83\x00\x01", UNTERMINATED, 7),
    _c("str_t-unterminated-tail", b"\x03\x01\x6a\x04a\x00bc\x4b\x83\x02\x01", UNTERMINATED, 9),
    _c("str_i-unterminated", H + b"\x4b\x03abc", UNTERMINATED, 5),
    _c("str_i-unterminated-empty", H + b"\x4b\x03", UNTERMINATED, 5),
    _c("str_i-unterminated-100k", H + b"\x4b\x03" + b"a" * 100_000, UNTERMINATED, 5),
    _c("opaque-longer-than-message", H + b"\x4b\xc3\x05abc\x01", OPAQUE_LENGTH, 5),
    _c("opaque-one-too-long", H + b"\x4b\xc3\x02a", OPAQUE_LENGTH, 5),
    _c("opaque-100MB", H + b"\x4b\xc3" + mb(MB100) + b"x" * 65536 + b"\x01", OPAQUE_LENGTH, 5),
    _c("opaque-max32", H + b"\x4b\xc3" + MAX32 + b"x\x01", OPAQUE_LENGTH, 5),
    _c("opaque-exact-then-truncated", H + b"\x4b\xc3\x03abc", TRUNCATED, 10),
    _c("opaque-100MB-small-limit", H + b"\x4b\xc3" + mb(MB100) + b"\x01", OPAQUE_LENGTH, 5,
       Limits(max_string_length=10)),
    # ENTITY values.
    _c("entity-0", H + b"\x4b\x02\x00\x01", ENTITY, 5),
    _c("entity-0-long-form", H + b"\x4b\x02\x80\x80\x00\x01", ENTITY, 5),
    _c("entity-d800", H + b"\x4b\x02" + mb(0xD800) + b"\x01", ENTITY, 5),
    _c("entity-dc80", H + b"\x4b\x02" + mb(0xDC80) + b"\x01", ENTITY, 5),
    _c("entity-dfff", H + b"\x4b\x02" + mb(0xDFFF) + b"\x01", ENTITY, 5),
    _c("entity-110000", H + b"\x4b\x02" + mb(0x110000) + b"\x01", ENTITY, 5),
    _c("entity-max32", H + b"\x4b\x02" + MAX32 + b"\x01", ENTITY, 5),
    # Content outside the root, data after it, mixed content.
    _c("str_i-before-root", H + b"\x03a\x00\x05", OUTSIDE, 4),
    _c("entity-before-root", H + b"\x02\x41\x05", OUTSIDE, 4),
    _c("opaque-before-root", H + b"\xc3\x00\x05", OUTSIDE, 4),
    _c("str_t-before-root", b"\x03\x01\x6a\x02a\x00\x83\x00\x05", OUTSIDE, 6),
    _c("str_i-before-root-after-switch", H + b"\x00\x01\x03a\x00\x05", OUTSIDE, 6),
    _c("second-root", H + b"\x05\x05", TRAILING, 5),
    _c("second-root-after-content", H + b"\x45\x0b\x01\x45\x01", TRAILING, 7),
    _c("text-after-root", H + b"\x45\x01\x03a\x00", TRAILING, 6),
    _c("switch-page-after-root", H + b"\x05\x00\x00", TRAILING, 5),
    _c("nul-after-root", H + b"\x05\x00", TRAILING, 5),
    _c("end-after-root", H + b"\x05\x01", TRAILING, 5),
    _c("junk-after-root", H + b"\x05\xff\xff", TRAILING, 5),
    _c("str_i-then-child", H + b"\x45\x03a\x00\x0b\x01", MIXED, 8),
    _c("child-then-str_i", H + b"\x45\x0b\x03a\x00\x01", MIXED, 6),
    _c("opaque-then-child", H + b"\x45\xc3\x01x\x0b\x01", MIXED, 8),
    _c("child-then-opaque", H + b"\x45\x0b\xc3\x01x\x01", MIXED, 6),
    _c("str_i-then-opaque", H + b"\x4b\x03a\x00\xc3\x00\x01", MIXED, 8),
    _c("opaque-then-str_i", H + b"\x4b\xc3\x00\x03a\x00\x01", MIXED, 7),
    _c("entity-then-opaque", H + b"\x4b\x02\x41\xc3\x00\x01", MIXED, 7),
    _c("opaque-then-entity", H + b"\x4b\xc3\x00\x02\x41\x01", MIXED, 7),
    _c("child-then-entity", H + b"\x45\x0b\x02\x41\x01", MIXED, 6),
    _c("child-then-str_t", b"\x03\x01\x6a\x02a\x00\x45\x0b\x83\x00\x01", MIXED, 8),
    _c("entity-then-child", H + b"\x45\x02\x41\x4b\x01\x01", MIXED, 7),
    _c("empty-str_i-then-child", H + b"\x45\x03\x00\x0b\x01", MIXED, 7),
    # Limits.
    _c("message-size", H + b"\x4b\x03" + b"a" * 9 + b"\x00\x01", MESSAGE_SIZE, 16, Limits(max_message_size=16)),
    _c("message-size-1", H, MESSAGE_SIZE, 1, Limits(max_message_size=1)),
    _c("str_i-over-limit", H + b"\x4b\x03abcd\x00\x01", LENGTH, 5, Limits(max_string_length=3)),
    _c("str_t-over-limit", b"\x03\x01\x6a\x05abcd\x00\x4b\x83\x00\x01", LENGTH, 10, Limits(max_string_length=3)),
    _c("opaque-over-limit", H + b"\x4b\xc3\x04abcd\x01", LENGTH, 5, Limits(max_string_length=3)),
    _c("str_i-over-default-limit-unterminated", H + b"\x4b\x03" + b"a" * 1000, UNTERMINATED, 5,
       Limits(max_string_length=10)),
]


def _measure(fn: Callable[[], object], memory: bool) -> tuple[object, float, int]:
    """(result or exception, seconds, peak bytes traced)."""
    if memory:
        tracemalloc.start()
    start = time.perf_counter()
    try:
        result: object = fn()
    except Exception as e:  # noqa: BLE001  # compared by the caller
        result = e
    elapsed = time.perf_counter() - start
    peak = 0
    if memory:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, elapsed, peak


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c.id for c in ERROR_CASES])
def test_refused_at_offset(case: Case) -> None:
    result, elapsed, peak = _measure(lambda: decode(case.data, limits=case.limits), memory=not case.heavy)
    assert isinstance(result, WBXMLError), f"expected WBXMLError, got {result!r}"
    assert case.fragment in str(result)
    assert result.offset == case.offset, str(result)
    assert str(result).endswith(f" at offset {case.offset}")
    if case.heavy:
        assert elapsed < 20.0
    else:
        assert elapsed < 1.0, f"{elapsed:.3f} s"
        # What Python allocates (the pure twin's tape, the error; tracemalloc does not see
        # the C kernel's tape, which is 3 words per 4 input bytes at first).
        assert peak <= 2 * len(case.data) + 64 * 1024, f"peak {peak} bytes for {len(case.data)} bytes"


def test_100MB_claims_are_cheap() -> None:
    for data in (H + b"\x4b\xc3" + mb(MB100) + b"\x01", b"\x03\x01\x6a" + mb(MB100) + b"\x05"):
        result, elapsed, peak = _measure(lambda: decode(data), memory=True)  # noqa: B023
        assert isinstance(result, WBXMLError)
        assert elapsed < 0.25
        assert peak < 64 * 1024


def test_page_3_has_no_tokens() -> None:
    for token in range(0x05, 0x40):
        for flag in (0x00, 0x40):
            with pytest.raises(WBXMLError, match=TAG) as info:
                decode(H + b"\x45\x00\x03" + bytes((token | flag,)) + b"\x01\x01")
            assert info.value.offset == 7


def test_every_unknown_token_on_every_page() -> None:
    for page in tags.PAGES:
        known = {t.token for t in page.tags}
        for token in range(0x05, 0x40):
            data = H + b"\x00" + bytes((page.page, token)) if page.page else H + bytes((token,))
            if token in known:
                assert decode(data) == Node(page.page << 8 | token)
            else:
                with pytest.raises(WBXMLError, match=TAG) as info:
                    decode(data)
                assert info.value.offset == len(data) - 1


def test_every_unknown_page() -> None:
    for page in range(len(tags.PAGES), 256):
        with pytest.raises(WBXMLError, match=PAGE) as info:
            decode(H + b"\x00" + bytes((page,)) + b"\x05")
        assert info.value.offset == 4


def test_every_version_byte() -> None:
    for version in range(256):
        data = bytes((version,)) + b"\x01\x6a\x00\x05"
        if 1 <= version <= 3:
            assert decode(data) == Node(AirSync.Sync)
        else:
            with pytest.raises(WBXMLError, match=VERSION) as info:
                decode(data)
            assert info.value.offset == 0


def test_every_global_token_in_the_root() -> None:
    expected = {0x04: LITERAL, 0x44: LITERAL, 0x84: LITERAL, 0xC4: LITERAL, 0x43: PI}
    for b in range(256):
        if b & 0x3F >= 5 or b in (0x00, 0x01, 0x02, 0x03, 0x83, 0xC3):
            continue
        with pytest.raises(WBXMLError, match=expected.get(b, EXT)) as info:
            decode(H + bytes((SYNC, b)) + b"\x01")
        assert info.value.offset == 5


# --- Truncation at every byte ------------------------------------------------------------


Cut = Callable[[int, int], tuple[str, int]]  # (segment start, cut position) -> (fragment, offset)


def _truncated(s: int, p: int) -> tuple[str, int]:
    return TRUNCATED, p


class Seg(NamedTuple):
    data: bytes
    cut: Cut = _truncated


def header(version: int = 3, publicid: bytes = b"\x01", charset: int = 106, table: bytes = b"") -> Seg:
    """A header; cut inside an mb_u_int32 it is truncated, cut inside the string table the
    table's length is blamed."""
    head = bytes((version,)) + publicid + mb(charset)
    length = mb(len(table))
    table_at = len(head) + len(length)

    def cut(s: int, p: int) -> tuple[str, int]:
        return (TRUNCATED, p) if p < table_at else (STRTBL_LENGTH, len(head))

    return Seg(head + length + table, cut)


def tok(*b: int) -> Seg:
    return Seg(bytes(b))


def str_i(raw: bytes) -> Seg:
    return Seg(b"\x03" + raw + b"\x00", lambda s, p: (UNTERMINATED, s))


def str_t(index: int) -> Seg:
    return Seg(b"\x83" + mb(index))


def entity(cp: int) -> Seg:
    return Seg(b"\x02" + mb(cp))


def opaque(blob: bytes) -> Seg:
    length = mb(len(blob))
    return Seg(b"\xc3" + length + blob, lambda s, p: (TRUNCATED, p) if p < s + 1 + len(length) else (OPAQUE_LENGTH, s))


def _sync_tree() -> Node:
    return Node(AirSync.Sync, None, [
        Node(AirSync.Collections, None, [
            Node(AirSync.Collection, None, [
                Node(AirSync.SyncKey, "{2b1e7a0c-1234}"),
                Node(AirSync.CollectionId, "7"),
                Node(AirSync.GetChanges),
                Node(AirSync.Commands, None, [
                    Node(AirSync.Add, None, [
                        Node(AirSync.ServerId, "7:1"),
                        Node(AirSync.ApplicationData, None, [
                            Node(Email.Subject, "Grüße ✉ \U0001f600"),
                            Node(Email.Read, ""),
                            Node(Email.MIMEData, b"\x00\x01\xff" * 50),
                            Node(Contacts.FileAs, "x" * 200),
                        ]),
                    ]),
                ]),
            ]),
        ]),
    ])


def _segments_of_encoded() -> tuple[list[Seg], Node]:
    """encode's bytes of a Sync tree, as segments (checked against encode below)."""
    tree = _sync_tree()
    data = encode(tree)
    # Re-read the encoder's simple output into segments: tags, SWITCH_PAGE, STR_I, OPAQUE, END.
    segs = [header()]
    pos = 4
    while pos < len(data):
        b = data[pos]
        if b == 0x00:
            segs.append(tok(0x00, data[pos + 1]))
            pos += 2
        elif b == 0x03:
            end = data.index(0, pos + 1)
            segs.append(str_i(data[pos + 1 : end]))
            pos = end + 1
        elif b == 0xC3:
            length, p = _read_mb(data, pos + 1)
            segs.append(opaque(data[p : p + length]))
            pos = p + length
        else:
            segs.append(tok(b))
            pos += 1
    assert b"".join(s.data for s in segs) == data
    return segs, tree


def _read_mb(data: bytes, pos: int) -> tuple[int, int]:
    v = 0
    while True:
        v = v << 7 | data[pos] & 0x7F
        pos += 1
        if not data[pos - 1] & 0x80:
            return v, pos


def _rich() -> tuple[list[Seg], Node]:
    table = b"-//AIRSYNC//DTD AirSync//EN\x00" + b"t" * 150 + b"\x00hello\x00" + "wörld".encode() + b"\x00"
    world = table.index("wörld".encode())
    long_at = table.index(b"ttt")
    segs = [
        header(version=2, publicid=b"\x00\x00", table=table),
        tok(SYNC),
        tok(0x00, 0x02), tok(0x40 | (Email.Subject & 0x3F)),  # Email:Subject, four pieces
        str_i(b"a"), entity(0xE9), str_t(world), entity(0x1F600), str_i(b""), tok(0x01),
        tok(0x00, 0x00), tok(0x40 | (AirSync.SyncKey & 0x3F)), str_t(long_at), tok(0x01),
        tok(0x40 | (AirSync.ServerId & 0x3F)), opaque(b"\x00" * 130), opaque(b""), opaque(b"zz"), tok(0x01),
        tok(0x40 | (AirSync.Status & 0x3F)), tok(0x01),  # OPEN then END: empty
        tok(0x00, 0x0D), tok(0x40 | (Ping.Folders & 0x3F)), tok(Ping.Folder & 0x3F), tok(0x01),
        tok(0x00, 0x03), tok(0x00, 0x00),  # switch to page 3 and back, no tag between
        tok(0x40 | (AirSync.ClientId & 0x3F)), str_i("ü".encode()), str_i(b"\xff"), tok(0x01),
        tok(0x01),
    ]
    tree = Node(AirSync.Sync, None, [
        Node(Email.Subject, "aéwörld\U0001f600"),
        Node(AirSync.SyncKey, "t" * 150),
        Node(AirSync.ServerId, b"\x00" * 130 + b"zz"),
        Node(AirSync.Status),
        Node(Ping.Folders, None, [Node(Ping.Folder)]),
        Node(AirSync.ClientId, "ü\udcff"),
    ])
    return segs, tree


def _latin1() -> tuple[list[Seg], Node]:
    segs = [
        header(version=1, publicid=MAX32, charset=4),
        tok(0x00, 0x14), tok(0x40 | (ItemOperations.ItemOperations & 0x3F)),
        tok(0x40 | (ItemOperations.Data & 0x3F)), str_i(bytes(range(1, 256))), tok(0x01),
        tok(0x01),
    ]
    tree = Node(ItemOperations.ItemOperations, None, [Node(ItemOperations.Data, bytes(range(1, 256)).decode("latin-1"))])
    return segs, tree


def _minimal() -> tuple[list[Seg], Node]:
    return [header(), tok(0x05)], Node(AirSync.Sync)


TRUNCATION_DOCS = {"encoded-sync": _segments_of_encoded, "rich": _rich, "latin-1": _latin1, "minimal": _minimal}


def truncation_cases(segs: list[Seg]) -> list[tuple[int, str, int]]:
    """(cut, message fragment, offset) for every proper prefix of the document."""
    out = []
    start = 0
    for seg in segs:
        for p in range(start, start + len(seg.data)):
            out.append((p, *(_truncated(start, p) if p == start else seg.cut(start, p))))
        start += len(seg.data)
    return out


@pytest.mark.parametrize("name", list(TRUNCATION_DOCS))
def test_truncation_at_every_byte(name: str) -> None:
    segs, tree = TRUNCATION_DOCS[name]()
    data = b"".join(s.data for s in segs)
    assert decode(data) == tree
    cases = truncation_cases(segs)
    assert [p for p, _, _ in cases] == list(range(len(data)))
    for p, fragment, offset in cases:
        with pytest.raises(WBXMLError) as info:
            decode(data[:p])
        assert fragment in str(info.value), (p, str(info.value))
        assert info.value.offset == offset, (p, str(info.value))


# --- Accepted features -------------------------------------------------------------------

S = AirSync


def _nest(depth: int) -> Node:
    node = Node(S.Sync)
    for _ in range(depth - 1):
        node = Node(S.Sync, None, [node])
    return node


TABLE_HW = b"hello\x00world\x00"
ACCEPTED_CASES: list[tuple[str, bytes, Node]] = [
    ("wbxml-1.1", b"\x01\x01\x6a\x00\x45\x4b\x03abc\x00\x01\x01", Node(S.Sync, None, [Node(S.SyncKey, "abc")])),
    ("wbxml-1.2", b"\x02\x01\x6a\x00\x45\x4b\x03abc\x00\x01\x01", Node(S.Sync, None, [Node(S.SyncKey, "abc")])),
    ("wbxml-1.3", H + b"\x45\x4b\x03abc\x00\x01\x01", Node(S.Sync, None, [Node(S.SyncKey, "abc")])),
    ("publicid-index", b"\x03\x00\x00\x6a\x1c-//AIRSYNC//DTD AirSync//EN\x00\x4b\x83\x00\x01",
     Node(S.SyncKey, "-//AIRSYNC//DTD AirSync//EN")),
    ("publicid-index-last-byte", b"\x03\x00\x02\x6a\x03ab\x00\x05", Node(S.Sync)),
    ("publicid-max32", b"\x03" + MAX32 + b"\x6a\x00\x05", Node(S.Sync)),
    ("publicid-wap-si", b"\x03\x05\x6a\x00\x05", Node(S.Sync)),
    ("charset-us-ascii", b"\x03\x01\x03\x00\x4b\x03abc\x00\x01", Node(S.SyncKey, "abc")),
    ("charset-iso-8859-1", b"\x03\x01\x04\x00\x4b\x03caf\xe9\x00\x01", Node(S.SyncKey, "café")),
    ("charset-iso-8859-1-all-bytes", b"\x03\x01\x04\x00\x4b\x03" + bytes(range(1, 256)) + b"\x00\x01",
     Node(S.SyncKey, bytes(range(1, 256)).decode("latin-1"))),
    ("charset-unknown", b"\x03\x01\x00\x00\x4b\x03caf\xc3\xa9\x00\x01", Node(S.SyncKey, "café")),
    ("charset-utf-8-long-form", b"\x03\x01\x80\x6a\x00\x4b\x03\xe2\x82\xac\x00\x01", Node(S.SyncKey, "€")),
    ("str_t-first", b"\x03\x01\x6a\x0c" + TABLE_HW + b"\x4b\x83\x00\x01", Node(S.SyncKey, "hello")),
    ("str_t-second", b"\x03\x01\x6a\x0c" + TABLE_HW + b"\x4b\x83\x06\x01", Node(S.SyncKey, "world")),
    ("str_t-mid-string", b"\x03\x01\x6a\x0c" + TABLE_HW + b"\x4b\x83\x08\x01", Node(S.SyncKey, "rld")),
    ("str_t-at-nul", b"\x03\x01\x6a\x0c" + TABLE_HW + b"\x4b\x83\x05\x01", Node(S.SyncKey, "")),
    ("str_t-twice", b"\x03\x01\x6a\x0c" + TABLE_HW + b"\x4b\x83\x06\x83\x00\x01", Node(S.SyncKey, "worldhello")),
    ("str_t-two-byte-index", b"\x03\x01\x6a" + mb(203) + b"x" * 200 + b"ab\x00" + b"\x4b\x83" + mb(200) + b"\x01",
     Node(S.SyncKey, "ab")),
    ("str_t-non-minimal-index", b"\x03\x01\x6a\x0c" + TABLE_HW + b"\x4b\x83\x80\x80\x06\x01", Node(S.SyncKey, "world")),
    ("entity", H + b"\x4b\x02" + mb(0xE9) + b"\x01", Node(S.SyncKey, "é")),
    ("entity-1", H + b"\x4b\x02\x01\x01", Node(S.SyncKey, "\x01")),
    ("entity-d7ff-e000", H + b"\x4b\x02" + mb(0xD7FF) + b"\x02" + mb(0xE000) + b"\x01", Node(S.SyncKey, "\ud7ff\ue000")),
    ("entity-10ffff", H + b"\x4b\x02" + mb(0x10FFFF) + b"\x01", Node(S.SyncKey, "\U0010ffff")),
    ("entity-in-latin-1", b"\x03\x01\x04\x00\x4b\x03\xe9\x00\x02" + mb(0x20AC) + b"\x01", Node(S.SyncKey, "é€")),
    ("str_i-pieces", H + b"\x4b\x03ab\x00\x03\x00\x03cd\x00\x01", Node(S.SyncKey, "abcd")),
    ("str_i-entity-str_t-pieces", b"\x03\x01\x6a\x0c" + TABLE_HW + b"\x4b\x03a\x00\x02\x62\x83\x06\x03!\x00\x01",
     Node(S.SyncKey, "abworld!")),
    ("str_i-empty", H + b"\x4b\x03\x00\x01", Node(S.SyncKey, "")),
    ("str_i-two-empty", H + b"\x4b\x03\x00\x03\x00\x01", Node(S.SyncKey, "")),
    ("opaque-on-text-tag", H + b"\x4b\xc3\x03a\x00b\x01", Node(S.SyncKey, b"a\x00b")),
    ("opaque-empty", H + b"\x4b\xc3\x00\x01", Node(S.SyncKey, b"")),
    ("opaque-pieces", H + b"\x4b\xc3\x02ab\xc3\x00\xc3\x01c\x01", Node(S.SyncKey, b"abc")),
    ("opaque-exact-end", H + b"\x4b\xc3\x01\x01\x01", Node(S.SyncKey, b"\x01")),
    ("content-flag-then-end", H + b"\x45\x01", Node(S.Sync)),
    ("no-content-flag", H + b"\x05", Node(S.Sync)),
    ("nested-empty", H + b"\x45\x4b\x01\x0b\x01", Node(S.Sync, None, [Node(S.SyncKey), Node(S.SyncKey)])),
    ("switch-before-root", H + b"\x00\x00\x00\x0d\x45\x00\x00\x4b\x01\x01", Node(Ping.Ping, None, [Node(S.SyncKey)])),
    ("switch-before-end", H + b"\x45\x00\x02\x01", Node(S.Sync)),
    ("depth-at-limit", H + b"\x45" * 63 + b"\x05" + b"\x01" * 63, _nest(64)),
    ("utf-8-not-valid", H + b"\x4b\x03\xff\xc3(\xed\xa0\x80\x00\x01", Node(S.SyncKey, "\udcff\udcc3(\udced\udca0\udc80")),
]



@pytest.mark.parametrize(("data", "tree"), [(d, t) for _, d, t in ACCEPTED_CASES], ids=[n for n, _, _ in ACCEPTED_CASES])
def test_accepted(data: bytes, tree: Node) -> None:
    assert decode(data) == tree


def test_limits_are_inclusive() -> None:
    assert decode(H + b"\x45\x45\x05\x01\x01", limits=Limits(max_depth=3)) == Node(S.Sync, None, [
        Node(S.Sync, None, [Node(S.Sync)])])
    assert decode(H + b"\x45\x00\x00\x01", limits=Limits(max_tokens=3)) == Node(S.Sync)
    assert decode(H + b"\x4b\x03abc\x00\x01", limits=Limits(max_string_length=3)) == Node(S.SyncKey, "abc")
    assert decode(H + b"\x4b\xc3\x03abc\x01", limits=Limits(max_string_length=3)) == Node(S.SyncKey, b"abc")
    data = H + b"\x4b\x03" + b"a" * 8 + b"\x00\x01"
    assert decode(data, limits=Limits(max_message_size=len(data))) == Node(S.SyncKey, "a" * 8)
    data = H + b"\x45" + b"\x0b" * 999 + b"\x01"
    assert len(decode(data, limits=Limits(max_tokens=1001))) == 999


def test_decode_takes_bytes_like() -> None:
    data = H + b"\x4b\x03abc\x00\x01"
    assert decode(bytearray(data)) == decode(memoryview(data)) == Node(S.SyncKey, "abc")


# --- Encode-side errors ------------------------------------------------------------------


def _writer_error(build: Callable[[Writer], None]) -> WBXMLError:
    w = Writer()
    build(w)
    with pytest.raises(WBXMLError) as info:
        w.getvalue()
    assert info.value.offset is None
    return info.value


def test_writer_unclosed_tag() -> None:
    e = _writer_error(lambda w: w.tag(S.Sync) and None)
    assert str(e) == "unbalanced start and end of elements (writer operation 1)"


def test_writer_extra_end() -> None:
    def build(w: Writer) -> None:
        cm = w.tag(S.Sync)
        with cm:
            w.empty(S.SyncKey)
        cm.__exit__(None, None, None)

    assert str(_writer_error(build)) == "unbalanced start and end of elements (writer operation 3)"


def test_writer_two_roots() -> None:
    def build(w: Writer) -> None:
        w.empty(S.Sync)
        w.leaf(S.SyncKey, "1")

    assert str(_writer_error(build)) == "a document has exactly one root element (writer operation 1)"


def test_writer_second_root_after_element() -> None:
    def build(w: Writer) -> None:
        with w.tag(S.Sync):
            w.empty(S.SyncKey)
        w.opaque(S.SyncKey, b"x")

    assert str(_writer_error(build)) == "a document has exactly one root element (writer operation 3)"


def test_writer_no_root() -> None:
    assert str(_writer_error(lambda w: None)) == "a document has exactly one root element (writer operation 0)"


@pytest.mark.parametrize(
    "tag",
    [0x0011, 0x0305, 0x033F, 0x1A05, 0xFF05, 0x0040, 0x00FF, 0x0045, 0x0001, 0x0004, 0x0000, 0x0105 | 0x80, 1 << 28],
    ids=lambda t: f"{t:#x}",
)
def test_writer_unknown_tag(tag: int) -> None:
    for build in (
        lambda w: w.empty(tag),
        lambda w: w.leaf(tag, "x"),
        lambda w: w.opaque(tag, b"x"),
        lambda w: w.tag(tag).__exit__(None, None, None),
    ):
        assert str(_writer_error(build)) == "tag not in the code page table (writer operation 0)"


def test_writer_unknown_tag_inside() -> None:
    def build(w: Writer) -> None:
        with w.tag(S.Sync):
            w.leaf(S.SyncKey, "1")
            w.empty(0x0011)

    assert str(_writer_error(build)) == "tag not in the code page table (writer operation 2)"


@pytest.mark.parametrize("tag", [-1, -(1 << 40), 1 << 29, 1 << 40], ids=str)
def test_writer_tag_out_of_range(tag: int) -> None:
    e = _writer_error(lambda w: w.empty(tag))
    assert str(e) == "invalid writer operation (writer operation 0)"


def test_writer_tag_out_of_range_inside() -> None:
    def build(w: Writer) -> None:
        with w.tag(S.Sync):
            w.opaque(S.SyncKey, b"abc")
            w.leaf(-5, "x")

    assert str(_writer_error(build)) == "invalid writer operation (writer operation 3)"


@pytest.mark.parametrize("text", ["\x00", "a\x00", "\x00b", "a\x00b"])
def test_writer_nul_in_text(text: str) -> None:
    e = _writer_error(lambda w: w.leaf(S.SyncKey, text))
    assert "NUL" in str(e)


def test_writer_nul_in_later_text() -> None:
    def build(w: Writer) -> None:
        with w.tag(S.Sync):
            w.leaf(S.SyncKey, "ok")
            w.leaf(S.SyncKey, "n\x00o")

    assert "NUL" in str(_writer_error(build))


@pytest.mark.parametrize(
    "text",
    [chr(0xD800), "a" + chr(0xD800) + "b", chr(0xDBFF), chr(0xDFFF), chr(0xDC00), chr(0xDC7F), "x" + chr(0xD83D)],
    ids=ascii,
)
def test_writer_lone_surrogate(text: str) -> None:
    e = _writer_error(lambda w: w.leaf(S.SyncKey, text))
    assert "UTF-8 cannot carry" in str(e)
    with pytest.raises(WBXMLError, match="UTF-8 cannot carry"):
        encode(Node(S.SyncKey, text))


def test_surrogateescape_range_is_bytes() -> None:
    for cp in (0xDC80, 0xDCFF):
        w = Writer()
        w.leaf(S.SyncKey, chr(cp))
        assert w.getvalue() == H + b"\x4b\x03" + bytes((cp - 0xDC00,)) + b"\x00\x01"


@pytest.mark.parametrize("text", ["x", b"x", " "])
def test_encode_mixed_content(text: str | bytes) -> None:
    with pytest.raises(WBXMLError, match="mixed content"):
        encode(Node(S.Sync, text, [Node(S.SyncKey)]))
    with pytest.raises(WBXMLError, match="mixed content"):
        encode(Node(S.Sync, None, [Node(S.Collections, text, [Node(S.SyncKey, "1")])]))


def test_encode_unknown_tag_in_tree() -> None:
    with pytest.raises(WBXMLError, match="tag not in the code page table"):
        encode(Node(S.Sync, None, [Node(0x0011)]))


@pytest.mark.parametrize("value", [1.5, None, True, False, b"x", bytearray(b"x"), ["a"], object()], ids=repr)
def test_writer_leaf_type(value: object) -> None:
    w = Writer()
    with pytest.raises(TypeError):
        w.leaf(S.SyncKey, value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [1.5, True, ["a"], 3j])
def test_encode_leaf_type(value: object) -> None:
    with pytest.raises(TypeError):
        encode(Node(S.SyncKey, value))  # type: ignore[arg-type]


def test_writer_int_leaf() -> None:
    w = Writer()
    w.leaf(S.SyncKey, 42)
    assert w.getvalue() == H + b"\x4b\x0342\x00\x01"
    assert encode(Node(S.SyncKey, -7)) == H + b"\x4b\x03-7\x00\x01"  # type: ignore[arg-type]

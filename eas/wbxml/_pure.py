"""The pure-Python twin of ``_wbxml.c``: the same tapes in, the same bytes and errors out.

Kept line for line beside the C so that a difference is easy to see; the differential
tests compare the two on every input they have.
"""

from __future__ import annotations

from eas.wbxml._errors import (
    DEPTH_CAP,
    E_ATTRIBUTES,
    E_BAD_OP,
    E_BLOBS,
    E_CHARSET,
    E_DEPTH,
    E_ENC_TAG,
    E_END_WITHOUT_START,
    E_ENTITY,
    E_EXT,
    E_LITERAL,
    E_MB_OVERFLOW,
    E_MIXED,
    E_OPAQUE_LENGTH,
    E_PI,
    E_ROOTS,
    E_SIZE,
    E_STRING_LENGTH,
    E_STRINGS,
    E_STRTBL_LENGTH,
    E_STRTBL_REF,
    E_TEXT_OUTSIDE,
    E_TOKENS,
    E_TRAILING,
    E_TRUNCATED,
    E_UNBALANCED,
    E_UNKNOWN_PAGE,
    E_UNKNOWN_TAG,
    E_UNTERMINATED,
    E_VERSION,
    Limits,
    WBXMLError,
    encode_error,
    error,
)
from eas.wbxml._node import Node
from eas.wbxml._tape import CLOSE, EMPTY, ENTITY, LEAF_OPAQUE, LEAF_STR, NPAGES, OPAQUE, OPEN, STR, VALID, build_tree

F_TEXT, F_OPAQUE, F_CHILD = 1, 2, 4


class _Fail(Exception):
    def __init__(self, code: int, offset: int) -> None:
        self.code, self.offset = code, offset


def _read_mb(data: bytes, pos: int, at: int) -> tuple[int, int]:
    """(value, new position) of the mb_u_int32 at pos; at is the offset blamed on overflow."""
    v = 0
    n = len(data)
    for _ in range(5):
        if pos >= n:
            raise _Fail(E_TRUNCATED, n)
        b = data[pos]
        pos += 1
        if v >> 25:
            raise _Fail(E_MB_OVERFLOW, at)
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            return v, pos
    raise _Fail(E_MB_OVERFLOW, at)


def decode(data: bytes, max_depth: int, max_tokens: int, max_string_length: int, max_message_size: int) -> Node:
    """The tree of a whole document, or WBXMLError (the twin of ``_wbxml_py.c: py_decode``)."""
    if type(data) is not bytes:
        data = bytes(memoryview(data))
    if len(data) > max_message_size:
        raise error(E_SIZE, max_message_size)
    try:
        tape, charset = _decode(data, min(max_depth, DEPTH_CAP), max_tokens, max_string_length)
    except _Fail as f:
        raise error(f.code, f.offset) from None
    return build_tree(data, tape, charset)


def decode_tape(data: bytes, limits: Limits) -> tuple[list[int], int]:
    """(tape, charset) for a whole document, or WBXMLError."""
    try:
        return _decode(data, min(limits.max_depth, DEPTH_CAP), limits.max_tokens, limits.max_string_length)
    except _Fail as f:
        raise error(f.code, f.offset) from None


def _decode(data: bytes, max_depth: int, max_tokens: int, max_string: int) -> tuple[list[int], int]:
    n = len(data)
    tape: list[int] = []
    emit = tape.extend
    # Header: version, publicid, charset, string table (WBXML 1.3 section 5.3).
    if n < 1:
        raise _Fail(E_TRUNCATED, n)
    if not 0x01 <= data[0] <= 0x03:
        raise _Fail(E_VERSION, 0)
    publicid, pos = _read_mb(data, 1, 1)
    publicid_at = 0
    if publicid == 0:  # the public id is a string table index
        publicid_at = pos
        publicid, pos = _read_mb(data, pos, pos)
    at = pos
    charset, pos = _read_mb(data, pos, at)
    if charset not in (106, 3, 4, 0):
        raise _Fail(E_CHARSET, at)
    at = pos
    strtbl_len, pos = _read_mb(data, pos, at)
    if strtbl_len > n - pos:
        raise _Fail(E_STRTBL_LENGTH, at)
    strtbl = pos
    pos += strtbl_len
    if publicid_at and publicid >= strtbl_len:
        raise _Fail(E_STRTBL_REF, publicid_at)

    # Body: one root element (WBXML 1.3 section 5.8.1).
    page = depth = tokens = 0
    root_done = False
    flags = [0] * (max_depth + 1)
    valid = VALID
    find = data.find
    while pos < n:
        b = data[pos]
        at = pos
        if root_done:
            raise _Fail(E_TRAILING, at)
        tokens += 1
        if tokens > max_tokens:
            raise _Fail(E_TOKENS, at)
        pos += 1
        if b & 0x3F >= 5:  # a tag
            token = b & 0x3F
            if b & 0x80:
                raise _Fail(E_ATTRIBUTES, at)
            if not (valid[page] >> token) & 1:
                raise _Fail(E_UNKNOWN_TAG, at)
            if depth + 1 > max_depth:
                raise _Fail(E_DEPTH, at)
            if depth:
                if flags[depth] & (F_TEXT | F_OPAQUE):
                    raise _Fail(E_MIXED, at)
                flags[depth] |= F_CHILD
            code = (page << 8 | token) << 3
            if b & 0x40:
                emit((code | OPEN, 0, 0))
                depth += 1
                flags[depth] = 0
            else:
                emit((code | EMPTY, 0, 0))
                if not depth:
                    root_done = True
        elif b == 0x00:  # SWITCH_PAGE
            if pos >= n:
                raise _Fail(E_TRUNCATED, n)
            if data[pos] >= NPAGES:
                raise _Fail(E_UNKNOWN_PAGE, at)
            page = data[pos]
            pos += 1
        elif b == 0x01:  # END
            if not depth:
                raise _Fail(E_END_WITHOUT_START, at)
            # Fold OPEN + one piece into a leaf, and OPEN alone into an empty element.
            if len(tape) >= 3 and tape[-3] & 7 == OPEN:
                tape[-3] = tape[-3] & ~7 | EMPTY
            elif len(tape) >= 6 and tape[-6] & 7 == OPEN and tape[-3] & 7 >= STR:
                tape[-6] = tape[-6] & ~7 | (LEAF_STR if tape[-3] & 7 == STR else LEAF_OPAQUE)
                tape[-5] = tape[-2]
                tape[-4] = tape[-1]
                del tape[-3:]
            else:
                emit((CLOSE, 0, 0))
            depth -= 1
            if not depth:
                root_done = True
        elif b == 0x02:  # ENTITY
            if not depth:
                raise _Fail(E_TEXT_OUTSIDE, at)
            v, pos = _read_mb(data, pos, at)
            if v == 0 or v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
                raise _Fail(E_ENTITY, at)
            if flags[depth] & (F_OPAQUE | F_CHILD):
                raise _Fail(E_MIXED, at)
            flags[depth] |= F_TEXT
            emit((ENTITY, v, 0))
        elif b == 0x03:  # STR_I
            if not depth:
                raise _Fail(E_TEXT_OUTSIDE, at)
            nul = find(0, pos)
            if nul < 0:
                raise _Fail(E_UNTERMINATED, at)
            slen = nul - pos
            if slen > max_string:
                raise _Fail(E_STRING_LENGTH, at)
            if flags[depth] & (F_OPAQUE | F_CHILD):
                raise _Fail(E_MIXED, at)
            flags[depth] |= F_TEXT
            emit((STR, pos, slen))
            pos += slen + 1
        elif b == 0x83:  # STR_T
            if not depth:
                raise _Fail(E_TEXT_OUTSIDE, at)
            v, pos = _read_mb(data, pos, at)
            if v >= strtbl_len:
                raise _Fail(E_STRTBL_REF, at)
            nul = find(0, strtbl + v, strtbl + strtbl_len)
            if nul < 0:
                raise _Fail(E_UNTERMINATED, at)
            slen = nul - (strtbl + v)
            if slen > max_string:
                raise _Fail(E_STRING_LENGTH, at)
            if flags[depth] & (F_OPAQUE | F_CHILD):
                raise _Fail(E_MIXED, at)
            flags[depth] |= F_TEXT
            emit((STR, strtbl + v, slen))
        elif b == 0xC3:  # OPAQUE
            if not depth:
                raise _Fail(E_TEXT_OUTSIDE, at)
            v, pos = _read_mb(data, pos, at)
            if v > n - pos:
                raise _Fail(E_OPAQUE_LENGTH, at)
            if v > max_string:
                raise _Fail(E_STRING_LENGTH, at)
            if flags[depth] & (F_TEXT | F_CHILD):
                raise _Fail(E_MIXED, at)
            flags[depth] |= F_OPAQUE
            emit((OPAQUE, pos, v))
            pos += v
        elif b in (0x04, 0x44, 0x84, 0xC4):
            raise _Fail(E_LITERAL, at)
        elif b == 0x43:
            raise _Fail(E_PI, at)
        else:  # EXT_I_n, EXT_T_n, EXT_n
            raise _Fail(E_EXT, at)
    if not root_done:
        raise _Fail(E_TRUNCATED, n)
    return tape, charset


def encode_tape(ops: list[int], strs: bytes, blobs: bytes) -> bytes:
    """WBXML 1.3 bytes for a Writer tape, or WBXMLError naming the op at fault."""
    out = bytearray(b"\x03\x01\x6a\x00")
    put = out.append
    spos = bpos = depth = roots = page = 0
    nops = len(ops)
    i = 0
    while i < nops:
        op = ops[i]
        kind, tag = op & 7, op >> 3
        if kind == CLOSE:
            if not depth:
                raise encode_error(E_UNBALANCED, i)
            put(0x01)
            depth -= 1
            i += 1
            continue
        if kind not in (OPEN, LEAF_STR, LEAF_OPAQUE, EMPTY):
            raise encode_error(E_BAD_OP, i)
        if tag >> 8 >= NPAGES or tag & 0xFF > 0x3F or not (VALID[tag >> 8] >> (tag & 0x3F)) & 1:
            raise encode_error(E_ENC_TAG, i)
        if not depth:
            roots += 1
            if roots > 1:
                raise encode_error(E_ROOTS, i)
        if tag >> 8 != page:
            page = tag >> 8
            out += bytes((0x00, page))
        token = tag & 0x3F
        if kind == OPEN:
            put(token | 0x40)
            depth += 1
        elif kind == EMPTY:
            put(token)
        elif kind == LEAF_STR:
            nul = strs.find(0, spos)
            if nul < 0:
                raise encode_error(E_STRINGS, i)
            out += bytes((token | 0x40, 0x03))
            out += strs[spos : nul + 1]
            put(0x01)
            spos = nul + 1
        else:  # LEAF_OPAQUE, followed by the blob's length
            if i + 1 >= nops:
                raise encode_error(E_BLOBS, i)
            i += 1
            blen = ops[i]
            if blen > len(blobs) - bpos:
                raise encode_error(E_BLOBS, i)
            out += bytes((token | 0x40, 0xC3))
            out += mb_u_int32(blen)
            out += blobs[bpos : bpos + blen]
            bpos += blen
            put(0x01)
        i += 1
    i = nops
    if depth:
        raise encode_error(E_UNBALANCED, i)
    if not roots:
        raise encode_error(E_ROOTS, i)
    if spos != len(strs):
        raise encode_error(E_STRINGS, i)
    if bpos != len(blobs):
        raise encode_error(E_BLOBS, i)
    return bytes(out)


def mb_u_int32(v: int) -> bytes:
    """WBXML's variable-length unsigned integer (WBXML 1.3 section 5.1)."""
    out = [v & 0x7F]
    v >>= 7
    while v:
        out.append(0x80 | (v & 0x7F))
        v >>= 7
    return bytes(reversed(out))


__all__ = ["WBXMLError", "decode", "decode_tape", "encode_tape", "mb_u_int32"]

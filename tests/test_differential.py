"""The C kernels and the pure-Python twin agree byte for byte: the same bytes from
``encode_tape`` (or the same error), the same tape and charset from ``decode_tape`` (or
the same error, message and offset), on generated, mutated, random and hostile inputs.

These tests call both kernels directly. When the C module cannot be imported they fail,
unless EAS_PURE_PYTHON=1 says that the pure twin alone is wanted.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

try:
    from eas.wbxml import _cffi
except ImportError:
    if os.environ.get("EAS_PURE_PYTHON", "") not in ("", "0"):
        pytest.skip("EAS_PURE_PYTHON is set and the C kernels are not built", allow_module_level=True)
    raise

from strategies import ALL_TAGS, hostile_bytes, limits, rich_documents, trees, valid_documents, write_tree
from test_hostile import ACCEPTED_CASES, ERROR_CASES, TRUNCATION_DOCS, H

from eas.tags import AirSync
from eas.wbxml import Limits, Node, WBXMLError, Writer, _impl, _pure, decode, encode
from eas.wbxml._errors import DEFAULT_LIMITS
from eas.wbxml._tape import CLOSE, EMPTY, ENTITY, LEAF_OPAQUE, LEAF_STR, OPAQUE, OPEN, STR

pytestmark = pytest.mark.kernel_independent  # both kernels are called directly, whichever eas.wbxml runs on

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode(kernel: object, data: bytes, lim: Limits) -> object:
    try:
        return kernel.decode_tape(data, lim)  # type: ignore[attr-defined]
    except WBXMLError as e:
        return ("error", str(e), e.offset)


def assert_same_decode(data: bytes, lim: Limits = DEFAULT_LIMITS) -> object:
    c = _decode(_cffi, data, lim)
    p = _decode(_pure, data, lim)
    assert c == p, data[:200]
    return c


def _encode(kernel: object, ops: list[int], strs: bytes, blobs: bytes) -> object:
    try:
        out = kernel.encode_tape(ops, strs, blobs)  # type: ignore[attr-defined]
    except WBXMLError as e:
        return ("error", str(e), e.offset)
    assert type(out) is bytes
    return out


def assert_same_encode(ops: list[int], strs: bytes, blobs: bytes) -> object:
    c = _encode(_cffi, ops, strs, blobs)
    p = _encode(_pure, ops, strs, blobs)
    assert c == p, (ops, strs, blobs)
    return c


def tree_tape(node: Node) -> tuple[list[int], bytes, bytes]:
    """The Writer tape of a tree (ops, NUL-terminated UTF-8 strings, blobs), made here
    from the tape format alone."""
    ops: list[int] = []
    strs = bytearray()
    blobs = bytearray()

    def walk(n: Node) -> None:
        if n.children:
            ops.append(n.tag << 3 | OPEN)
            for child in n.children:
                walk(child)
            ops.append(CLOSE)
        elif n.text is None:
            ops.append(n.tag << 3 | EMPTY)
        elif isinstance(n.text, bytes):
            ops.extend((n.tag << 3 | LEAF_OPAQUE, len(n.text)))
            blobs.extend(n.text)
        else:
            ops.append(n.tag << 3 | LEAF_STR)
            strs.extend(n.text.encode("utf-8", "surrogateescape") + b"\0")

    walk(node)
    return ops, bytes(strs), bytes(blobs)


def _under(which: str, fn: Callable[[], object]) -> object:
    """fn() with eas.wbxml running on one implementation; a WBXMLError as (message, offset)."""
    previous = _impl.name
    _impl.select(which)
    try:
        return fn()
    except WBXMLError as e:
        return ("error", str(e), e.offset)
    finally:
        _impl.select(previous)


def assert_same_public_decode(data: bytes, lim: Limits | None = None) -> object:
    """``eas.wbxml.decode`` gives equal trees (or the same error) on both implementations."""
    c = _under("c", lambda: decode(data, limits=lim))
    p = _under("python", lambda: decode(data, limits=lim))
    assert c == p, data[:200]
    return c


# --- Encode ------------------------------------------------------------------------------


@SETTINGS
@given(trees)
def test_encode_tape_of_trees(tree: Node) -> None:
    out = assert_same_encode(*tree_tape(tree))
    assert isinstance(out, bytes)
    assert out == encode(tree)


@SETTINGS
@given(trees)
def test_public_encode_of_trees(tree: Node) -> None:
    def write() -> bytes:
        w = Writer()
        write_tree(w, tree)
        return w.getvalue()

    c = _under("c", write)
    assert c == _under("python", write) == _under("c", lambda: encode(tree)) == _under("python", lambda: encode(tree))


@SETTINGS
@given(trees)
def test_writers_record_the_same_tape(tree: Node) -> None:
    """The C Writer (eas._wbxml.Writer) and its Python twin record the same tape."""

    def record() -> object:
        w = Writer()
        write_tree(w, tree)
        assert type(w).__module__ == ("eas._wbxml" if _impl.name == "c" else "eas.wbxml._writer")
        return w._tape()

    c = _under("c", record)
    assert c == _under("python", record)
    assert c == tree_tape(tree)


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "x\udc7f", "\udfff\ud800", "ok\udc80"], ids=repr)
def test_public_encode_of_bad_text(text: str) -> None:
    def write() -> bytes:
        w = Writer()
        with w.tag(AirSync.Sync):
            w.leaf(AirSync.SyncKey, "fine")
            w.leaf(AirSync.SyncKey, text)
        return w.getvalue()

    assert _under("c", write) == _under("python", write)


# Mostly what a Writer makes; now and then a kind or tag it never makes.
ops_kinds = st.sampled_from([OPEN] * 4 + [CLOSE] * 4 + [LEAF_STR, LEAF_OPAQUE, EMPTY] * 2 + [ENTITY, STR, OPAQUE])
good_tags = st.sampled_from(ALL_TAGS)
op_tags = st.one_of(good_tags, good_tags, good_tags, good_tags, good_tags, good_tags, st.integers(0, (1 << 29) - 1),
                    st.sampled_from([0, 0x11, 0x305, 0x1A05, 0x0040, 0x00FF]))


@st.composite
def raw_tapes(draw: st.DrawFn) -> tuple[list[int], bytes, bytes]:
    """A tree's Writer tape after zero to three mutations: ops replaced, inserted, deleted
    or duplicated (unbalanced, several roots, bad kinds and tags, lengths that do not
    match), strings and blobs cut short or grown."""
    ops, strs, blobs = tree_tape(draw(trees))
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["replace", "insert", "delete", "duplicate", "strs", "blobs"]))
        i = draw(st.integers(0, len(ops)))
        word = draw(op_tags) << 3 | draw(ops_kinds)
        if draw(st.integers(0, 3)) == 0:
            word = draw(st.integers(0, 0xFFFFFFFF) | st.sampled_from([0, 1, 2, 0xFFFFFFFF]))
        if what == "replace" and ops:
            ops[min(i, len(ops) - 1)] = word
        elif what == "insert":
            ops.insert(i, word)
        elif what == "delete" and ops:
            del ops[min(i, len(ops) - 1)]
        elif what == "duplicate" and ops:
            ops.insert(i, ops[min(i, len(ops) - 1)])
        elif what == "strs":
            strs = strs[: draw(st.integers(0, len(strs)))] + draw(st.binary(max_size=4))
        elif what == "blobs":
            blobs = blobs[: draw(st.integers(0, len(blobs)))] + draw(st.binary(max_size=4))
    return ops, strs, blobs


@SETTINGS
@given(raw_tapes())
def test_encode_tape_of_raw_tapes(tape: tuple[list[int], bytes, bytes]) -> None:
    assert_same_encode(*tape)


@pytest.mark.parametrize(
    "tape",
    [
        ([], b"", b""),
        ([0x05 << 3 | OPEN], b"", b""),
        ([CLOSE], b"", b""),
        ([0x05 << 3 | EMPTY, 0x05 << 3 | EMPTY], b"", b""),
        ([0x0B << 3 | LEAF_STR], b"", b""),
        ([0x0B << 3 | LEAF_STR], b"abc", b""),
        ([0x0B << 3 | LEAF_STR], b"a\x00b\x00", b""),
        ([0x0B << 3 | LEAF_OPAQUE], b"", b""),
        ([0x0B << 3 | LEAF_OPAQUE, 4], b"", b"abc"),
        ([0x0B << 3 | LEAF_OPAQUE, 2], b"", b"abc"),
        ([0x0B << 3 | LEAF_OPAQUE, 0xFFFFFFFF], b"", b"abc"),
        ([0x0B << 3 | STR], b"", b""),
        ([0x0B << 3 | ENTITY], b"", b""),
        ([0x0B << 3 | OPAQUE], b"", b""),
        ([0x11 << 3 | EMPTY], b"", b""),
        ([0x3F << 3 | EMPTY], b"", b""),
        ([0x1A05 << 3 | EMPTY], b"", b""),
        ([0xFFFFFFFF], b"", b""),
        ([0x05 << 3 | OPEN, 0x0D05 << 3 | OPEN, 0x0D05 << 3 | CLOSE, 0x0B << 3 | LEAF_OPAQUE, 300, CLOSE], b"", b"x" * 300),
    ],
)
def test_encode_tape_edge_cases(tape: tuple[list[int], bytes, bytes]) -> None:
    assert_same_encode(*tape)


# --- Decode ------------------------------------------------------------------------------


@SETTINGS
@given(valid_documents)
def test_decode_tape_of_valid_documents(data: bytes) -> None:
    result = assert_same_decode(data)
    assert not (isinstance(result, tuple) and result[0] == "error"), result


@SETTINGS
@given(rich_documents())
def test_decode_tape_of_rich_documents(doc: tuple[bytes, Node]) -> None:
    assert_same_decode(doc[0])


@settings(SETTINGS, max_examples=400)
@given(hostile_bytes, limits)
def test_decode_tape_of_hostile_bytes(data: bytes, lim: Limits) -> None:
    assert_same_decode(data, lim)


@SETTINGS
@given(st.binary(max_size=300))
def test_decode_tape_of_random_bytes(data: bytes) -> None:
    assert_same_decode(data)


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c.id for c in ERROR_CASES])
def test_decode_tape_of_error_cases(case: object) -> None:
    data, lim = case.data, case.limits or DEFAULT_LIMITS  # type: ignore[attr-defined]
    result = assert_same_decode(data, lim)
    if case.fragment != "message larger than the limit":  # type: ignore[attr-defined]  # not a kernel check
        assert result == ("error", f"{_fragment_message(case.fragment)} at offset {case.offset}", case.offset)  # type: ignore[attr-defined]


def _fragment_message(fragment: str) -> str:
    from eas.wbxml._errors import MESSAGES

    (message,) = [m for m in MESSAGES.values() if fragment in m]
    return message


@pytest.mark.parametrize(("data", "tree"), [(d, t) for _, d, t in ACCEPTED_CASES], ids=[n for n, _, _ in ACCEPTED_CASES])
def test_decode_tape_of_accepted_cases(data: bytes, tree: Node) -> None:
    result = assert_same_decode(data)
    assert isinstance(result, tuple) and isinstance(result[0], list)


@pytest.mark.parametrize("name", list(TRUNCATION_DOCS))
def test_decode_tape_of_every_prefix(name: str) -> None:
    segs, _ = TRUNCATION_DOCS[name]()
    data = b"".join(s.data for s in segs)
    for p in range(len(data) + 1):
        assert_same_decode(data[:p])


@pytest.mark.parametrize("lim", [DEFAULT_LIMITS, Limits(max_tokens=5000), Limits(max_tokens=100_000)], ids=str)
def test_decode_tape_full_retry(lim: Limits) -> None:
    # One record per input byte: four times what the C wrapper's first tape holds.
    data = H + b"\x45" + b"\x0b" * 20_000 + b"\x4b\x03\x00\x01" * 3000 + b"\x01"
    assert_same_decode(data, lim)
    data = H + b"\x4b" + b"\x02\x41" * 20_000 + b"\x01"  # ENTITY pieces: one record per two bytes
    assert_same_decode(data, lim)


@SETTINGS
@given(st.lists(st.sampled_from([b"\x0b", b"\x4b\x01", b"\x4b\x03\x00\x01", b"\x4b\xc3\x00\x01", b"\x00\x00"]),
                min_size=0, max_size=400))
def test_decode_tape_of_dense_documents(parts: list[bytes]) -> None:
    assert_same_decode(H + b"\x45" + b"".join(parts) + b"\x01")


# --- The public decode (tape kernel and tree builder together) ----------------------------


@settings(SETTINGS, max_examples=400)
@given(hostile_bytes, limits)
def test_public_decode_of_hostile_bytes(data: bytes, lim: Limits) -> None:
    assert_same_public_decode(data, lim)


@SETTINGS
@given(rich_documents())
def test_public_decode_of_rich_documents(doc: tuple[bytes, Node]) -> None:
    assert assert_same_public_decode(doc[0]) == doc[1]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c.id for c in ERROR_CASES])
def test_public_decode_of_error_cases(case: object) -> None:
    result = assert_same_public_decode(case.data, case.limits)  # type: ignore[attr-defined]
    assert isinstance(result, tuple) and result[2] == case.offset  # type: ignore[attr-defined]


@pytest.mark.parametrize(("data", "tree"), [(d, t) for _, d, t in ACCEPTED_CASES], ids=[n for n, _, _ in ACCEPTED_CASES])
def test_public_decode_of_accepted_cases(data: bytes, tree: Node) -> None:
    assert assert_same_public_decode(data) == tree


@pytest.mark.parametrize("name", list(TRUNCATION_DOCS))
def test_public_decode_of_every_prefix(name: str) -> None:
    segs, _ = TRUNCATION_DOCS[name]()
    data = b"".join(s.data for s in segs)
    for p in range(len(data) + 1):
        assert_same_public_decode(data[:p])


def test_error_codes_match_the_c_enum() -> None:
    """_errors.py names every code of _wbxml.c's E_* enum, with the same number."""
    import pathlib
    import re

    from eas.wbxml import _errors

    source = (pathlib.Path(_errors.__file__).parents[1] / "_wbxml.c").read_text()
    body = re.sub(r"/\*.*?\*/", "", re.search(r"enum \{ (E_TRUNCATED.*?)\};", source, re.DOTALL).group(1), flags=re.DOTALL)
    c_codes, value = {}, 0
    for item in (part.strip() for part in body.split(",")):
        name, _, number = (x.strip() for x in item.partition("="))
        value = int(number) if number else value + 1
        c_codes[name] = value
    py_codes = {k: v for k, v in vars(_errors).items() if re.fullmatch(r"E_[A-Z_]+", k)}
    assert c_codes == py_codes
    assert set(_errors.MESSAGES) == set(py_codes.values())

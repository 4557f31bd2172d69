"""Round trips and robustness of the WBXML codec, under hypothesis (each test runs once
per implementation, see conftest.py)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from strategies import (
    HEADER,
    hostile_bytes,
    limits,
    mutated_documents,
    random_bytes,
    rich_documents,
    tree_depth,
    trees,
    valid_documents,
    write_tree,
)

from eas import tags
from eas.wbxml import Limits, Node, WBXMLError, Writer, decode, encode
from eas.wbxml._pure import mb_u_int32

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- Trees -------------------------------------------------------------------------------


@FAST
@given(trees)
def test_tree_round_trip(tree: Node) -> None:
    assert tree_depth(tree) <= Limits().max_depth
    assert decode(encode(tree)) == tree


@FAST
@given(trees)
def test_writer_and_encode_give_the_same_bytes(tree: Node) -> None:
    w = Writer()
    write_tree(w, tree)
    assert w.getvalue() == encode(tree)


@FAST
@given(trees)
def test_encode_is_stable(tree: Node) -> None:
    data = encode(tree)
    assert data.startswith(HEADER)
    assert encode(decode(data)) == data


@FAST
@given(rich_documents())
def test_rich_documents_decode_to_their_tree(doc: tuple[bytes, Node]) -> None:
    data, tree = doc
    assert decode(data) == tree


@FAST
@given(rich_documents())
@example((b"\x01\x01j\x00\x00\x01E\x03\xc2\x00\x03\x80\x00\x01", Node(tags.Contacts.Anniversary, "\udcc2\udc80")))
def test_rich_documents_reencode_stably(doc: tuple[bytes, Node]) -> None:
    data, _ = doc
    first = decode(data)
    again = encode(first)
    assert decode(again) == first
    assert encode(decode(again)) == again


@FAST
@given(
    st.binary(max_size=64).map(lambda b: b.replace(b"\x00", b"")),
    st.sampled_from([0x0B, 0x0D, 0x0C]),  # AirSync SyncKey, ServerId, ClientId
)
@example(b"\xff\xfe\x80", 0x0B)
@example(b"\xc3", 0x0B)
@example(b"\xed\xa0\x80", 0x0B)  # an encoded surrogate is not UTF-8
@example(b"\xf4\x90\x80\x80", 0x0B)  # past U+10FFFF
@example(b"\xc0\xaf", 0x0B)  # overlong
@example(b"a\xe2\x82", 0x0B)  # cut sequence
def test_bytes_that_are_not_utf8_survive(raw: bytes, tag: int) -> None:
    data = HEADER + bytes((0x40 | tag, 0x03)) + raw + b"\x00\x01"
    node = decode(data)
    assert node.tag == tag
    assert isinstance(node.text, str)
    assert node.text.encode("utf-8", "surrogateescape") == raw
    assert encode(node) == data
    w = Writer()
    w.leaf(tag, node.text)
    assert w.getvalue() == data


@FAST
@given(st.lists(st.binary(min_size=1, max_size=16).map(lambda b: b.replace(b"\x00", b"\x80")), min_size=1, max_size=5))
def test_bytes_that_are_not_utf8_survive_in_a_tree(raws: list[bytes]) -> None:
    # Email:Subject leaves under a Sync root: each string passes through bytewise.
    body = b"\x45\x00\x02" + b"".join(b"\x54\x03" + raw + b"\x00\x01" for raw in raws) + b"\x01"
    data = HEADER + body
    node = decode(data)
    assert [c.text.encode("utf-8", "surrogateescape") for c in node.children] == raws  # type: ignore[union-attr]
    assert encode(node) == data


# --- Hostile bytes -----------------------------------------------------------------------


def _decode_or_error(data: bytes, lim: Limits | None = None) -> Node | WBXMLError:
    try:
        return decode(data, limits=lim)
    except WBXMLError as e:
        assert e.offset is not None and 0 <= e.offset <= max(len(data), (lim or Limits()).max_message_size)
        return e
    # any other exception fails the test


@FUZZ
@given(random_bytes)
def test_random_bytes_raise_only_wbxmlerror(data: bytes) -> None:
    assert isinstance(_decode_or_error(data), (Node, WBXMLError))


@FUZZ
@given(mutated_documents)
def test_mutated_documents_raise_only_wbxmlerror(data: bytes) -> None:
    assert isinstance(_decode_or_error(data), (Node, WBXMLError))


@FUZZ
@given(hostile_bytes, limits)
def test_limits_raise_only_wbxmlerror(data: bytes, lim: Limits) -> None:
    assert isinstance(_decode_or_error(data, lim), (Node, WBXMLError))


@FUZZ
@given(hostile_bytes)
@example(b"\x03\x01\x6a\x00\x45\x01")
def test_decoded_hostile_bytes_reencode_stably(data: bytes) -> None:
    result = _decode_or_error(data)
    if isinstance(result, WBXMLError):
        return
    again = encode(result)
    assert decode(again) == result
    assert encode(decode(again)) == again


@FAST
@given(valid_documents)
def test_every_valid_document_decodes(data: bytes) -> None:
    assert isinstance(decode(data), Node)


# --- Known instances of the stability property, checked every run -------------------------


@pytest.mark.parametrize(
    "data",
    [
        # US-ASCII document whose string holds bytes >= 0x80 that are valid UTF-8 (C3 A9).
        pytest.param(bytes([0x03, 0x01, 0x03, 0x00, 0x4B, 0x03, 0xC3, 0xA9, 0x00, 0x01]), id="ascii-high-bytes"),
        # UTF-8 document, one character's bytes split over two STR_I pieces.
        pytest.param(bytes([0x03, 0x01, 0x6A, 0x00, 0x4B, 0x03, 0xC3, 0x00, 0x03, 0xA9, 0x00, 0x01]), id="split-str_i"),
        # The same split between a string table string (STR_T) and STR_I.
        pytest.param(
            bytes([0x03, 0x01, 0x6A, 0x02, 0xE2, 0x00, 0x4B, 0x83, 0x00, 0x03, 0x82, 0xAC, 0x00, 0x01]), id="split-str_t"
        ),
    ],
)
def test_decode_encode_decode_is_stable(data: bytes) -> None:
    first = decode(data)
    assert decode(encode(first)) == first


def test_big_opaque_round_trip() -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB, length needs a 3-byte mb_u_int32
    node = Node(tags.ItemOperations.Fetch, None, [Node(tags.ItemOperations.Data, blob), Node(tags.AirSync.SyncKey, b"")])
    data = encode(node)
    assert mb_u_int32(len(blob)) in data
    assert decode(data) == node

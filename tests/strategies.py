"""Hypothesis strategies for the WBXML codec tests.

Trees: random ``Node`` trees of tags from ``eas.tags.PAGES`` with every kind of content
the codec carries (text, ``""``, no text, opaque bytes, children). Text is any Unicode
except NUL and lone surrogates, but for U+DC80..U+DCFF, which stand for bytes that are
not valid UTF-8 (``surrogateescape``); see ``canonical``.

Bytes: valid documents (from ``encode``, and hand-built ones that use the parts of WBXML
the encoder never writes: string tables, STR_T, ENTITY, several pieces, other headers),
then mutated by byte flips, insertions, deletions, truncations and splices; and plain
random bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from eas import tags
from eas.wbxml import Limits, Node, Writer, encode
from eas.wbxml._pure import mb_u_int32

HEADER = b"\x03\x01\x6a\x00"  # WBXML 1.3, unknown public id, UTF-8, empty string table
ALL_TAGS: list[int] = sorted(tags.BY_TAG)
OPAQUE_TAGS: list[int] = [t for t in ALL_TAGS if tags.BY_TAG[t].opaque]


def canonical(text: str) -> str:
    """The text as decoding its own UTF-8 gives it back: an escape (U+DC80..U+DCFF) that
    would join its neighbours into a valid UTF-8 sequence becomes that character. Only
    canonical text can round-trip, since the escapes stand for bytes that are not UTF-8."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")


# --- Trees -----------------------------------------------------------------------------

tag_values = st.sampled_from(ALL_TAGS)

# Any code point but NUL and the surrogates, plus the surrogateescape range.
characters = st.one_of(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
    st.integers(0xDC80, 0xDCFF).map(chr),
)
raw_texts = st.text(characters, max_size=40)
texts = raw_texts.map(canonical)
blobs = st.binary(max_size=64)

leaf_contents: st.SearchStrategy[str | bytes | None] = st.one_of(
    st.none(), st.just(""), texts, blobs, st.just(b"")
)


@st.composite
def leaves(draw: st.DrawFn) -> Node:
    return Node(draw(tag_values), draw(leaf_contents))


def _with_children(children: st.SearchStrategy[list[Node]]) -> st.SearchStrategy[Node]:
    return st.builds(Node, tag_values, st.none(), children)


trees: st.SearchStrategy[Node] = st.recursive(
    leaves(),
    lambda kids: _with_children(st.lists(kids, min_size=1, max_size=6)),
    max_leaves=40,
)


def tree_depth(node: Node) -> int:
    return 1 + max((tree_depth(c) for c in node.children), default=0)


# --- Hand-built valid documents ----------------------------------------------------------


@dataclass
class _Doc:
    """A document under construction: body bytes, its string table and the tree it means."""

    table: bytearray = field(default_factory=bytearray)
    body: bytearray = field(default_factory=bytearray)
    page: int = 0


def _put_tag(draw: st.DrawFn, doc: _Doc, tag: int, content: bool) -> None:
    page = tag >> 8
    if page != doc.page or draw(st.integers(0, 9)) == 0:  # now and then a redundant switch
        doc.body += bytes((0x00, page))
        doc.page = page
    doc.body.append((tag & 0x3F) | (0x40 if content else 0))


def join_pieces(pieces: list[bytes | str], encoding: str) -> str:
    """An element's text from its pieces: the bytes of adjacent strings (STR_I, STR_T) are
    read together, as one string, so that a character split between two pieces is the
    character that re-encoding them as one string gives; an entity is its character."""
    out: list[str] = []
    run = b""
    for piece in [*pieces, ""]:
        if isinstance(piece, bytes):
            run += piece
        else:
            out.append(run.decode(encoding, "surrogateescape") + piece)
            run = b""
    return "".join(out)


def _put_text(draw: st.DrawFn, doc: _Doc, charset: int) -> str:
    """One or more text pieces (STR_I, STR_T, ENTITY); the text they decode to."""
    out: list[bytes | str] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["str_i", "str_t", "entity"]))
        if kind == "entity":
            cp = draw(st.one_of(st.integers(1, 0xD7FF), st.integers(0xE000, 0x10FFFF)))
            doc.body += b"\x02" + mb_u_int32(cp)
            out.append(chr(cp))
            continue
        if charset == 4:
            raw = draw(st.binary(max_size=12).map(lambda b: b.replace(b"\x00", b"")))
        elif charset == 3:
            raw = draw(st.binary(max_size=12).map(lambda b: bytes(c & 0x7F for c in b if c & 0x7F)))
        else:  # any bytes but NUL: pieces of characters, not UTF-8 at all
            raw = draw(st.one_of(texts.map(lambda t: t.encode("utf-8", "surrogateescape")),
                                 st.binary(max_size=6).map(lambda b: b.replace(b"\x00", b"\x80"))))
        if kind == "str_i":
            doc.body += b"\x03" + raw + b"\x00"
        else:
            # Reuse a string already in the table (or its tail) now and then.
            found = doc.table.find(raw + b"\x00")
            if found < 0 or draw(st.booleans()):
                found = len(doc.table)
                doc.table += raw + b"\x00"
            doc.body += b"\x83" + mb_u_int32(found)
        out.append(raw)
    return join_pieces(out, "latin-1" if charset == 4 else "utf-8")


def _put_node(draw: st.DrawFn, doc: _Doc, depth: int, charset: int) -> Node:
    tag = draw(tag_values)
    kind = draw(st.sampled_from(["empty", "open_end", "text", "opaque", "children"] if depth < 6 else
                                ["empty", "open_end", "text", "opaque"]))
    if kind == "empty":
        _put_tag(draw, doc, tag, False)
        return Node(tag)
    _put_tag(draw, doc, tag, True)
    if kind == "open_end":
        node = Node(tag)
    elif kind == "text":
        node = Node(tag, _put_text(draw, doc, charset))
    elif kind == "opaque":
        pieces = draw(st.lists(blobs, min_size=1, max_size=3))
        for piece in pieces:
            doc.body += b"\xc3" + mb_u_int32(len(piece)) + piece
        node = Node(tag, b"".join(pieces))
    else:
        n = draw(st.integers(1, 4))
        node = Node(tag, None, [_put_node(draw, doc, depth + 1, charset) for _ in range(n)])
    doc.body.append(0x01)
    return node


@st.composite
def rich_documents(draw: st.DrawFn) -> tuple[bytes, Node]:
    """(bytes, the tree they decode to) for a valid document that uses what ``encode``
    never writes: WBXML 1.1/1.2 headers, a public id given as a string table index, the
    charsets US-ASCII, ISO-8859-1 and "unknown", STR_T, ENTITY, several text or opaque
    pieces in one element (a character's bytes may be split between two strings), OPEN
    followed at once by END, redundant SWITCH_PAGEs."""
    version = draw(st.sampled_from([1, 2, 3]))
    charset = draw(st.sampled_from([106, 0, 3, 4]))
    doc = _Doc()
    publicid_in_table = draw(st.booleans())
    if publicid_in_table:
        doc.table += b"-//WAPFORUM//DTD SI 1.0//EN\x00"
    tree = _put_node(draw, doc, 1, charset)
    if draw(st.booleans()):
        doc.table += draw(st.binary(max_size=8))  # unreferenced bytes, unterminated too
    header = bytes((version,))
    header += b"\x00\x00" if publicid_in_table else mb_u_int32(draw(st.sampled_from([1, 0x0FD1, 0xFFFFFFFF])))
    header += mb_u_int32(charset) + mb_u_int32(len(doc.table)) + bytes(doc.table)
    return header + bytes(doc.body), tree


encoded_trees = trees.map(encode)
valid_documents = st.one_of(encoded_trees, rich_documents().map(lambda d: d[0]))


# --- Mutations ---------------------------------------------------------------------------


@st.composite
def mutate(draw: st.DrawFn, data: bytes, donors: st.SearchStrategy[bytes] = valid_documents) -> bytes:
    """``data`` after one to four mutations: byte flips and overwrites, insertions,
    deletions, a truncation, a splice of another document, a duplicated range."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "splice", "duplicate"]))
        n = len(buf)
        if op in ("flip", "set") and n:
            i = draw(st.integers(0, n - 1))
            if op == "flip":
                buf[i] ^= 1 << draw(st.integers(0, 7))
            else:
                buf[i] = draw(st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x04, 0x40, 0x43, 0x80, 0x83, 0xC3, 0xFF])
                              | st.integers(0, 255))
        elif op == "insert":
            i = draw(st.integers(0, n))
            buf[i:i] = draw(st.binary(min_size=1, max_size=6))
        elif op == "delete" and n:
            i = draw(st.integers(0, n - 1))
            buf[i : i + draw(st.integers(1, 6))] = b""
        elif op == "truncate":
            del buf[draw(st.integers(0, n)) :]
        elif op == "splice":
            other = draw(donors)
            i, j = sorted(draw(st.lists(st.integers(0, n), min_size=2, max_size=2)))
            a, b = sorted(draw(st.lists(st.integers(0, len(other)), min_size=2, max_size=2)))
            buf[i:j] = other[a:b]
        elif op == "duplicate" and n:
            i, j = sorted(draw(st.lists(st.integers(0, n), min_size=2, max_size=2)))
            buf[j:j] = buf[i:j]
    return bytes(buf)


mutated_documents = valid_documents.flatmap(mutate)

random_bytes = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=200).map(lambda b: HEADER + b),  # past the header, into the body
)

# Every kind of input the decoder should survive.
hostile_bytes = st.one_of(mutated_documents, random_bytes)

limits = st.one_of(
    st.just(Limits()),
    st.builds(
        Limits,
        max_depth=st.integers(1, 8),
        max_tokens=st.integers(1, 64),
        max_string_length=st.integers(1, 32),
        max_message_size=st.integers(1, 512),
    ),
)


def write_tree(w: Writer, node: Node) -> None:
    """The Writer calls a handler would make for the tree (independent of encode's walk)."""
    if node.children:
        with w.tag(node.tag):
            for child in node.children:
                write_tree(w, child)
    elif node.text is None:
        w.empty(node.tag)
    elif isinstance(node.text, bytes):
        w.opaque(node.tag, node.text)
    else:
        w.leaf(node.tag, node.text)


# --- PIM items ----------------------------------------------------------------------------
# Events, contacts and tasks have their strategies beside their codecs (test_calendar_item
# .events, test_contact_item.random_contacts, test_task_item.random_tasks); notes here.

_item_text = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=40)


@st.composite
def random_notes(draw: st.DrawFn) -> object:
    from datetime import UTC, datetime

    from eas.items.notes import Note

    modified = draw(st.none() | st.datetimes(datetime(1901, 1, 1), datetime(2100, 1, 1)))
    return Note(subject=draw(_item_text), body=draw(_item_text),
                categories=draw(st.lists(_item_text.filter(bool), max_size=4)),
                last_modified=None if modified is None else modified.replace(microsecond=0, tzinfo=UTC),
                message_class="IPM.StickyNote" + draw(st.sampled_from(["", ".Blue", ".Yellow"])))

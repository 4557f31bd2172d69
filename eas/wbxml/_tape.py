"""The tape both kernels share, and the one function that turns a decode tape into Nodes.

A decode tape is a flat list of 3-int records ``(code, a, b)`` with
``code = tag << 3 | kind``; a Writer tape is a list of ``tag << 3 | kind`` words. Kinds
are the K_* enum of ``_wbxml.c``.
"""

from __future__ import annotations

from eas import tags
from eas.wbxml._node import Node

ENTITY, OPEN, CLOSE, LEAF_STR, LEAF_OPAQUE, EMPTY, STR, OPAQUE = range(8)

NPAGES = len(tags.PAGES)
# VALID[page] has bit t set when token t exists on that page.
VALID: tuple[int, ...] = tuple(sum(1 << t.token for t in p.tags) for p in tags.PAGES)

# US-ASCII is read as UTF-8 (its superset): bytes >= 0x80 in a document that claims ASCII
# would otherwise become escapes that re-encode as UTF-8 and decode to other text.
CHARSETS = {106: "utf-8", 0: "utf-8", 3: "utf-8", 4: "latin-1"}


def build_tree(data: bytes, tape: list[int], charset: int) -> Node:
    """Nodes from a decode tape. The kernels guarantee a well-formed tape: one root,
    balanced OPEN/CLOSE, text pieces only directly before their element's CLOSE."""
    encoding = CHARSETS[charset]
    top = Node(0)
    cur = top
    stack: list[Node] = []
    pieces: list[str | bytes] = []
    opaque = False
    it = iter(tape)
    for code, a, b in zip(it, it, it):
        kind = code & 7
        if kind == LEAF_STR:
            cur.children.append(Node(code >> 3, data[a : a + b].decode(encoding, "surrogateescape")))
        elif kind == OPEN:
            node = Node(code >> 3)
            cur.children.append(node)
            stack.append(cur)
            cur = node
        elif kind == CLOSE:
            if pieces:
                cur.text = b"".join(pieces) if opaque else join_text(pieces, encoding)  # type: ignore[arg-type]
                pieces = []
                opaque = False
            cur = stack.pop()
        elif kind == EMPTY:
            cur.children.append(Node(code >> 3))
        elif kind == LEAF_OPAQUE:
            cur.children.append(Node(code >> 3, data[a : a + b]))
        elif kind == STR:
            pieces.append(data[a : a + b])
        elif kind == OPAQUE:
            pieces.append(data[a : a + b])
            opaque = True
        else:  # ENTITY
            pieces.append(chr(a))
    return top.children[0]


def join_text(pieces: list[str | bytes], encoding: str) -> str:
    """One element's text from its pieces: raw string bytes and entity characters.

    Adjacent byte pieces are decoded together, so that a character split across two
    strings is read as one, as it is after a re-encode joins them."""
    out: list[str] = []
    run: list[bytes] = []
    for piece in pieces:
        if type(piece) is bytes:
            run.append(piece)
            continue
        if run:
            out.append(b"".join(run).decode(encoding, "surrogateescape"))
            run = []
        out.append(piece)  # type: ignore[arg-type]
    if run:
        out.append(b"".join(run).decode(encoding, "surrogateescape"))
    return "".join(out)

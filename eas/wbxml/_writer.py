"""Writer: how handlers write responses, without building a tree first.

The Writer records a tape (``tag << 3 | kind`` words, the strings, the opaque blobs);
``getvalue`` hands it to the kernel in one call. ``encode(node)`` walks a tree into a
Writer, so both paths meet the same kernel.
"""

from __future__ import annotations

from types import TracebackType

from eas import tags
from eas.wbxml import _impl
from eas.wbxml._errors import WBXMLError, encode_error
from eas.wbxml._node import Node
from eas.wbxml._tape import CLOSE, EMPTY, LEAF_OPAQUE, LEAF_STR, OPEN


class _Close:
    """What ``Writer.tag`` returns: its exit writes the END of the element."""

    __slots__ = ("_ops",)

    def __init__(self, ops: list[int]) -> None:
        self._ops = ops

    def __enter__(self) -> None:
        return None

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self._ops.append(CLOSE)


class Writer:
    """Writes one WBXML document::

        w = Writer()
        with w.tag(AirSync.Sync):
            w.leaf(AirSync.Status, 1)
        data = w.getvalue()

    ``tag`` writes the start tag at once and its END when the ``with`` block ends.
    """

    __slots__ = ("_blobs", "_close", "_ops", "_strs")

    def __init__(self) -> None:
        self._ops: list[int] = []
        self._strs: list[str] = []
        self._blobs: list[bytes] = []
        self._close = _Close(self._ops)

    def tag(self, tag: int) -> _Close:
        """An element with children: ``with w.tag(t): ...``."""
        self._ops.append(tag << 3 | OPEN)
        return self._close

    def leaf(self, tag: int, text: str | int) -> None:
        """An element holding a string (ints are written in decimal)."""
        self._ops.append(tag << 3 | LEAF_STR)
        self._strs.append(text if type(text) is str else _text(text))

    def opaque(self, tag: int, data: bytes) -> None:
        """An element holding opaque bytes (WBXML OPAQUE)."""
        data = bytes(data)
        self._ops += (tag << 3 | LEAF_OPAQUE, len(data))
        self._blobs.append(data)

    def empty(self, tag: int) -> None:
        """An element without content."""
        self._ops.append(tag << 3 | EMPTY)

    def getvalue(self) -> bytes:
        """The document as WBXML 1.3, UTF-8, public id 1, empty string table."""
        ops, strs = self._ops, self._strs
        if ops and (max(ops) > 0xFFFFFFFF or min(ops) < 0):
            raise encode_error(40, next(i for i, op in enumerate(ops) if not 0 <= op <= 0xFFFFFFFF))
        if strs:
            joined = "\0".join(strs) + "\0"
            try:
                data = joined.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError as e:
                raise WBXMLError(f"text holds {joined[e.start]!r}, which UTF-8 cannot carry") from None
            if data.count(0) != len(strs):
                raise WBXMLError("text holds a NUL character, which WBXML strings cannot carry")
        else:
            data = b""
        result: bytes = _impl.kernel.encode_tape(ops, data, b"".join(self._blobs))
        return result


def _text(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"element text must be str or int, not {type(value).__name__}")


def encode(node: Node) -> bytes:
    """WBXML for a tree of Nodes."""
    w = Writer()
    _write(w, node)
    return w.getvalue()


def _write(w: Writer, node: Node) -> None:
    text = node.text
    if node.children:
        if text:
            raise WBXMLError(f"{tags.name(node.tag)} has both text and children; ActiveSync has no mixed content")
        with w.tag(node.tag):
            for child in node.children:
                _write(w, child)
    elif text is None:
        w.empty(node.tag)
    elif type(text) is bytes or isinstance(text, (bytes, bytearray, memoryview)):
        w.opaque(node.tag, bytes(text))
    else:
        w.leaf(node.tag, text)


"""Writer: how handlers write responses, without building a tree first.

The Writer records a tape (``tag << 3 | kind`` words, the strings, the opaque blobs);
``getvalue`` hands it to the kernel in one call. ``encode(node)`` walks a tree into a
Writer, so both paths meet the same kernel.
"""

from __future__ import annotations

from abc import ABCMeta
from array import array
from types import TracebackType

from eas import tags
from eas.wbxml import _impl
from eas.wbxml._errors import E_BAD_OP, WBXMLError, encode_error
from eas.wbxml._node import Node
from eas.wbxml._tape import CLOSE, EMPTY, LEAF_OPAQUE, LEAF_STR, OPEN


class Writer(metaclass=ABCMeta):
    """Writes one WBXML document::

        w = Writer()
        with w.tag(AirSync.Sync):
            w.leaf(AirSync.Status, 1)
        data = w.getvalue()

    ``tag`` writes the start tag at once and returns the writer, whose ``with`` block
    end writes the END. Text that WBXML cannot carry (NUL, lone surrogates outside
    U+DC80..U+DCFF) is reported by ``getvalue``. With the C build, ``Writer()`` gives
    the C type ``eas._wbxml.Writer`` (registered as a subclass); this class is its
    twin, and both record the same tape (``_tape``).
    """

    __slots__ = ("_blobs", "_ops", "_strs")

    def __new__(cls) -> Writer:  # noqa: PYI034  (the C type, when built)
        if cls is Writer and _impl.writer is not None:
            return _impl.writer()  # type: ignore[no-any-return]
        return super().__new__(cls)

    def __init__(self) -> None:
        self._ops: list[int] = []
        self._strs: list[str] = []
        self._blobs: list[bytes] = []

    def tag(self, tag: int) -> Writer:
        """An element with children: ``with w.tag(t): ...``."""
        self._ops.append(tag << 3 | OPEN)
        return self

    def __enter__(self) -> None:
        return None

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self._ops.append(CLOSE)

    def leaf(self, tag: int, text: str | int) -> None:
        """An element holding a string (ints are written in decimal)."""
        if type(text) is not str:
            text = _text(text)
        self._ops.append(tag << 3 | LEAF_STR)
        self._strs.append(text)

    def opaque(self, tag: int, data: bytes) -> None:
        """An element holding opaque bytes (WBXML OPAQUE)."""
        data = bytes(memoryview(data))
        self._ops += (tag << 3 | LEAF_OPAQUE, len(data))
        self._blobs.append(data)

    def empty(self, tag: int) -> None:
        """An element without content."""
        self._ops.append(tag << 3 | EMPTY)

    def getvalue(self) -> bytes:
        """The document as WBXML 1.3, UTF-8, public id 1, empty string table."""
        result: bytes = _impl.kernel.encode_tape(*self._tape())
        return result

    def _tape(self) -> tuple[list[int], bytes, bytes]:
        """(ops, strings, blobs) as the kernel takes them; the recording's errors first."""
        ops, strs = self._ops, self._strs
        try:
            array("I", ops)
        except OverflowError:
            raise encode_error(E_BAD_OP, next(i for i, op in enumerate(ops) if not 0 <= op <= 0xFFFFFFFF)) from None
        try:
            encoded = [s.encode("utf-8", "surrogateescape") for s in strs]
        except UnicodeEncodeError as e:
            raise WBXMLError(f"text holds {e.object[e.start]!r}, which UTF-8 cannot carry") from None
        data = b"\0".join(encoded) + b"\0" if encoded else b""
        if data.count(0) != len(strs):
            raise WBXMLError("text holds a NUL character, which WBXML strings cannot carry")
        return ops, data, b"".join(self._blobs)


def _text(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"element text must be str or int, not {type(value).__name__}")


def encode(node: Node) -> bytes:
    """WBXML for a tree of Nodes."""
    w = Writer()
    write_node(w, node)
    return w.getvalue()


def write_node(w: Writer, node: Node) -> None:
    """Write a tree into ``w`` as it is (a decoded request's element echoed in a response)."""
    text = node.text
    if node.children:
        if text:
            raise WBXMLError(f"{tags.name(node.tag)} has both text and children; ActiveSync has no mixed content")
        with w.tag(node.tag):
            for child in node.children:
                write_node(w, child)
    elif text is None:
        w.empty(node.tag)
    elif isinstance(text, (bytes, bytearray, memoryview)):
        w.opaque(node.tag, bytes(text))
    else:
        w.leaf(node.tag, text)



if "c" in _impl.available():
    from eas.wbxml import _cffi

    Writer.register(_cffi.Writer)

"""The WBXML codec of ActiveSync (MS-ASWBXML over WBXML 1.3).

``decode`` turns a message into a tree of ``Node``; ``Writer`` writes a message without
building a tree; ``encode`` writes a tree; ``to_xml``/``from_xml`` give the XML view for
logs, the CLI and tests. The hot loops run in C (``eas._wbxml``) when it is built, in a
pure-Python twin otherwise; ``IMPLEMENTATION`` says which. Both raise ``WBXMLError``.
"""

from __future__ import annotations

from eas.wbxml import _impl
from eas.wbxml._errors import DEFAULT_LIMITS, Limits, WBXMLError
from eas.wbxml._node import Node
from eas.wbxml._writer import Writer, encode
from eas.wbxml._xml import from_xml, to_xml

__all__ = ["IMPLEMENTATION", "Limits", "Node", "WBXMLError", "Writer", "decode", "encode", "from_xml", "to_xml"]


def __getattr__(name: str) -> str:
    if name == "IMPLEMENTATION":
        return _impl.name
    raise AttributeError(name)


IMPLEMENTATION: str  # "c" or "python", read from _impl so that switching is seen


def decode(data: bytes, *, limits: Limits | None = None) -> Node:
    """The tree of a WBXML document; ``WBXMLError`` naming the offset if it is malformed
    or exceeds ``limits``."""
    lim = limits or DEFAULT_LIMITS
    return _impl.decode(data, lim.max_depth, lim.max_tokens, lim.max_string_length, lim.max_message_size)

"""Which kernels the codec runs: the C ones when built, else the pure twin.

Chosen once at import, as msgpack does: ``EAS_PURE_PYTHON=1`` forces the twin;
otherwise ``eas._wbxml`` is used when it imports. ``select`` switches at run time
(the test suite runs every test under both).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

from eas.wbxml import _pure
from eas.wbxml._node import Node

kernel: ModuleType = _pure
name = "python"
# decode(data, max_depth, max_tokens, max_string_length, max_message_size) -> Node
decode: Callable[[Any, int, int, int, int], Node] = _pure.decode
writer: type | None = None  # the C Writer type; None: eas.wbxml.Writer itself (pure)


def available() -> list[str]:
    """The implementations that can run here."""
    try:
        from eas.wbxml import _cffi  # noqa: F401
    except ImportError:
        return ["python"]
    return ["c", "python"]


def select(which: str) -> None:
    """Run the codec on ``"c"`` or ``"python"`` kernels from now on."""
    global kernel, name, decode, writer
    if which == "c":
        from eas.wbxml import _cffi

        kernel, name, decode, writer = _cffi, "c", _cffi.decode, _cffi.Writer
    elif which == "python":
        kernel, name, decode, writer = _pure, "python", _pure.decode, None
    else:
        raise ValueError(f"no WBXML implementation {which!r}")


if os.environ.get("EAS_PURE_PYTHON", "") not in ("", "0"):
    select("python")
elif "c" in available():
    select("c")

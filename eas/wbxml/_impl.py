"""Which kernels the codec runs: the C ones when built, else the pure twin.

Chosen once at import, as msgpack does: ``EAS_PURE_PYTHON=1`` forces the twin;
otherwise ``eas._wbxml`` is used when it imports. ``select`` switches at run time
(the test suite runs every test under both).
"""

from __future__ import annotations

import os
from types import ModuleType

from eas.wbxml import _pure

kernel: ModuleType = _pure
name = "python"


def available() -> list[str]:
    """The implementations that can run here."""
    try:
        from eas.wbxml import _cffi  # noqa: F401
    except ImportError:
        return ["python"]
    return ["c", "python"]


def select(which: str) -> None:
    """Run the codec on ``"c"`` or ``"python"`` kernels from now on."""
    global kernel, name
    if which == "c":
        from eas.wbxml import _cffi

        kernel, name = _cffi, "c"
    elif which == "python":
        kernel, name = _pure, "python"
    else:
        raise ValueError(f"no WBXML implementation {which!r}")


if os.environ.get("EAS_PURE_PYTHON", "") not in ("", "0"):
    select("python")
elif "c" in available():
    select("c")

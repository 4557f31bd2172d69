"""Every test runs once per codec implementation (C kernels, pure twin), as msgpack does.

The fixture is session-scoped so that pytest runs the whole suite under one kernel and
then the other. EAS_REQUIRE_C=1 (set by .ci/run) makes a missing C module an error
instead of a quietly smaller run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from eas.wbxml import _impl

IMPLEMENTATIONS = _impl.available()
if os.environ.get("EAS_REQUIRE_C") and "c" not in IMPLEMENTATIONS:
    raise pytest.UsageError("EAS_REQUIRE_C is set but the C codec eas._wbxml is not built")
if os.environ.get("EAS_PURE_PYTHON", "") not in ("", "0"):
    IMPLEMENTATIONS = ["python"]


@pytest.fixture(scope="session", autouse=True, params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> Iterator[str]:
    """The kernel ``eas.wbxml`` runs on for this test."""
    previous = _impl.name
    _impl.select(request.param)
    yield request.param
    _impl.select(previous)

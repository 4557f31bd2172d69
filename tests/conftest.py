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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kernel_independent: run on the first implementation's pass only")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip) the second pass of tests that do not touch the codec."""
    keep, drop = [], []
    for item in items:
        param = getattr(item, "callspec", None) and item.callspec.params.get("implementation")
        second_pass = param is not None and param != IMPLEMENTATIONS[0]
        (drop if second_pass and item.get_closest_marker("kernel_independent") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session", autouse=True, params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> Iterator[str]:
    """The kernel ``eas.wbxml`` runs on for this test."""
    previous = _impl.name
    _impl.select(request.param)
    yield request.param
    _impl.select(previous)


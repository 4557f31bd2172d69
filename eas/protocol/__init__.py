"""MS-ASHTTP: the request and response model, protocol versions and status codes.

Nothing here touches a socket: adapters turn their transport's request into
``HTTPRequest`` and write back the ``HTTPResponse`` that ``eas.core`` returns.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eas.protocol.errors import EASError, ProtocolError
    from eas.protocol.http import EASRequest, HTTPRequest, HTTPResponse, parse_request
    from eas.protocol.versions import SUPPORTED_VERSIONS, Version

# Loaded on first use: ``eas.protocol.errors`` alone is imported by the mail store and
# the ``eas`` command, which should not pay for the code page table (``eas mail
# deliver`` starts in a new process each time, and its start-up is wake-up latency).
_HOME = {"EASError": "errors", "ProtocolError": "errors", "EASRequest": "http", "HTTPRequest": "http",
         "HTTPResponse": "http", "parse_request": "http", "SUPPORTED_VERSIONS": "versions", "Version": "versions"}

__all__ = [
    "SUPPORTED_VERSIONS",
    "EASError",
    "EASRequest",
    "HTTPRequest",
    "HTTPResponse",
    "ProtocolError",
    "Version",
    "parse_request",
]


def __getattr__(name: str) -> object:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(name)
    return getattr(importlib.import_module(f"eas.protocol.{module}"), name)

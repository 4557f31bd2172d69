"""MS-ASHTTP: the request and response model, protocol versions and status codes.

Nothing here touches a socket: adapters turn their transport's request into
``HTTPRequest`` and write back the ``HTTPResponse`` that ``eas.core`` returns.
"""

from __future__ import annotations

from eas.protocol.errors import EASError, ProtocolError
from eas.protocol.http import EASRequest, HTTPRequest, HTTPResponse, parse_request
from eas.protocol.versions import SUPPORTED_VERSIONS, Version

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

"""The library's errors: one root, each carrying a status hint, converted in one place.

``eas.core`` turns an ``EASError`` into a response: a WBXML ``Status`` for 14.0 and later
when the command has one (``status``), the HTTP status otherwise (``http_status``). Any
other exception becomes HTTP 500 with no traceback in the body.
"""

from __future__ import annotations


class EASError(Exception):
    """Root of the library's errors. ``status`` is an MS-ASCMD common status code (or
    None), ``http_status`` the HTTP status a client gets when no WBXML status applies."""

    http_status: int = 500
    status: int | None = None

    def __init__(self, message: str, *, status: int | None = None, http_status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        if http_status is not None:
            self.http_status = http_status
        self.headers = headers or {}


class ProtocolError(EASError):
    """The client broke the protocol: a malformed query, body or parameter (HTTP 400)."""

    http_status = 400


class AuthenticationError(EASError):
    """Credentials missing or refused (HTTP 401 with a Basic challenge)."""

    http_status = 401


class AccessDenied(EASError):
    """The authenticated user may not do this (HTTP 403)."""

    http_status = 403


class ServiceUnavailable(EASError):
    """Try later (HTTP 503); ``retry_after`` seconds go into ``Retry-After``."""

    http_status = 503

    def __init__(self, message: str, *, retry_after: int = 30) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class StateError(EASError):
    """The state store failed; wraps the driver's exception (never leaked)."""

    http_status = 503

"""GetAttachment (MS-ASCMD 2.2.1.7, protocol 2.5-12.1): one attachment's raw bytes.

The ``AttachmentName`` query parameter is the FileReference that Sync gave for the
attachment. The answer is the content itself with the attachment's Content-Type; an
attachment that is gone (or never was) is HTTP 500, as MS-ASCMD prescribes, and a request
without a name is HTTP 400. From 14.0 ItemOperations Fetch does this (the core refuses
GetAttachment there).
"""

from __future__ import annotations

import re

from eas.backend import BackendError, ItemNotFound
from eas.context import Context
from eas.protocol.errors import EASError, ProtocolError
from eas.protocol.http import HTTPResponse

MAX_NAME = 1024
# A media type as RFC 2045 writes one, parameters allowed; anything else (a backend's
# stray CR/LF, say) is not put into a header.
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;[\x20-\x7e]*)?")


async def handle(ctx: Context) -> HTTPResponse:
    name = ctx.request.params.get("AttachmentName", "")
    if not name or len(name) > MAX_NAME:
        raise ProtocolError("AttachmentName missing or too long")
    try:
        content_type, data = await ctx.backend.attachment(ctx.user, name)
    except ItemNotFound:
        raise EASError("no such attachment", http_status=500) from None
    except BackendError as e:
        raise EASError(f"attachment unavailable: {e}", http_status=500) from None
    return HTTPResponse(200, [("Content-Type", safe_content_type(content_type))], bytes(data))


def safe_content_type(value: str) -> str:
    """The backend's content type if it is one, else application/octet-stream."""
    value = (value or "").strip()
    if len(value) <= 256 and _CONTENT_TYPE.fullmatch(value):
        return value
    return "application/octet-stream"

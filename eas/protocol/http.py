"""MS-ASHTTP 2.2.1: parsing a request (plain or base64 query, headers) into ``EASRequest``.

``HTTPRequest``/``HTTPResponse`` are what adapters exchange with the core; they carry
bytes and header lists, nothing of a particular server.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import zlib
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from eas.protocol.errors import ProtocolError
from eas.protocol.versions import COMMAND_CODES, COMMAND_VERSIONS, Version

WBXML_CONTENT_TYPE = "application/vnd.ms-sync.wbxml"
MAX_QUERY_LENGTH = 4096

# MS-ASHTTP 2.2.1.1.1.2.3: the device id is 1-32 letters and digits. Real clients send
# longer ids and dashes (Android's "androidc123..." ids, Outlook's GUID-like ids), so the
# library accepts up to 64 of letters, digits, '-' and '_' and nothing else.
DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_DEVICE_TYPE = re.compile(r"[\x21-\x7e]{1,64}")
_COMMAND = re.compile(r"[A-Za-z]{1,32}")

# Base64 query parameter tags (MS-ASHTTP 2.2.1.1.1.1.3).
_PARAM_TAGS = {0: "AttachmentName", 1: "CollectionId", 3: "ItemId", 4: "LongId", 6: "Occurrence", 7: "Options",
               8: "User"}


@dataclass(slots=True)
class HTTPRequest:
    """A request as an adapter hands it over. Header names are lower case; ``query`` is
    the raw query string (no '?'); ``client`` the peer address."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    client: str = ""

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of a header (``name`` in lower case)."""
        for k, v in self.headers:
            if k == name:
                return v
        return default


@dataclass(slots=True)
class HTTPResponse:
    """What the core answers; adapters add nothing but Content-Length."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass(slots=True)
class EASRequest:
    """One ActiveSync request, parsed: who (``user`` as sent, device), what (``command``
    with its parameters), in which protocol version, with which policy key."""

    command: str
    user: str
    device_id: str
    device_type: str
    version: Version
    policy_key: int | None = None
    locale: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    save_in_sent: bool = False
    accept_multipart: bool = False
    user_agent: str = ""
    accept_language: str = ""
    content_type: str = ""
    body: bytes = b""
    base64_query: bool = False
    http: HTTPRequest | None = None


def parse_request(request: HTTPRequest, *, max_body: int) -> EASRequest:
    """The ``EASRequest`` of a POST, or ``ProtocolError`` saying what is wrong."""
    if len(request.query) > MAX_QUERY_LENGTH:
        raise ProtocolError("query string too long")
    if "&" in request.query or request.query.startswith("Cmd="):
        parsed = _plain_query(request)
    else:
        parsed = _base64_query(request)
    parsed.user_agent = request.header("user-agent", "") or ""
    parsed.accept_language = request.header("accept-language", "") or ""
    parsed.content_type = (request.header("content-type", "") or "").split(";")[0].strip().lower()
    parsed.body = _body(request, max_body)
    parsed.http = request
    return parsed


def _plain_query(request: HTTPRequest) -> EASRequest:
    """MS-ASHTTP 2.2.1.1.1.2: Cmd, User, DeviceId, DeviceType and named parameters."""
    try:
        pairs = parse_qsl(request.query, keep_blank_values=True, strict_parsing=True, max_num_fields=32)
    except ValueError as e:
        raise ProtocolError(f"malformed query string: {e}") from None
    query: dict[str, str] = {}
    for k, v in pairs:
        if k in query:
            raise ProtocolError(f"query parameter {k} given twice")
        query[k] = v
    version_text = request.header("ms-asprotocolversion")
    if version_text is None:
        raise ProtocolError("MS-ASProtocolVersion header missing")
    try:
        version = Version(version_text.strip())
    except ValueError:
        raise ProtocolError(f"unsupported protocol version {version_text[:16]!r}") from None
    policy = request.header("x-ms-policykey")
    params = {k: v for k, v in query.items() if k not in ("Cmd", "User", "DeviceId", "DeviceType")}
    parsed = EASRequest(
        command=_command(query.get("Cmd", "")),
        user=query.get("User", ""),
        device_id=_device_id(query.get("DeviceId", "")),
        device_type=_device_type(query.get("DeviceType", "")),
        version=version,
        policy_key=_policy_key(policy) if policy not in (None, "") else None,
        params=params,
        save_in_sent=params.get("SaveInSent", "F").upper() == "T",
        accept_multipart=(request.header("ms-asacceptmultipart", "F") or "F").upper() == "T",
    )
    return parsed


def _base64_query(request: HTTPRequest) -> EASRequest:
    """MS-ASHTTP 2.2.1.1.1.1: a packed byte string, base64 encoded."""
    try:
        raw = base64.b64decode(unquote(request.query), validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("query is neither name=value pairs nor base64") from None
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(raw):
            raise ProtocolError(f"base64 query truncated at byte {pos}")
        chunk = raw[pos:pos + n]
        pos += n
        return chunk

    version_byte = take(1)[0]
    try:
        version = Version.from_byte(version_byte)
    except ValueError:
        raise ProtocolError(f"unsupported protocol version byte {version_byte}") from None
    if version < Version("12.1"):
        raise ProtocolError("the base64 query needs protocol version 12.1 or later")
    code = take(1)[0]
    if code not in COMMAND_CODES:
        raise ProtocolError(f"unknown command code {code}")
    locale = int.from_bytes(take(2), "little")
    device_id = _text(take(take(1)[0]), "device id")
    key_length = take(1)[0]
    if key_length not in (0, 4):
        raise ProtocolError("policy key length must be 0 or 4")
    policy_key = int.from_bytes(take(4), "little") if key_length else None
    device_type = _text(take(take(1)[0]), "device type")
    params: dict[str, str] = {}
    options = 0
    while pos < len(raw):
        tag, length = take(1)[0], take(1)[0]
        value = take(length)
        name = _PARAM_TAGS.get(tag)
        if name is None:
            raise ProtocolError(f"unknown base64 query parameter tag {tag}")
        if name == "Options":
            options = value[0] if value else 0
        else:
            params[name] = _text(value, name)
    return EASRequest(
        command=COMMAND_CODES[code],
        user=params.pop("User", ""),
        device_id=_device_id(device_id),
        device_type=_device_type(device_type),
        version=version,
        policy_key=policy_key,
        locale=locale,
        params=params,
        save_in_sent=bool(options & 0x01),
        accept_multipart=bool(options & 0x02),
        base64_query=True,
    )


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not UTF-8") from None


def _command(name: str) -> str:
    if not _COMMAND.fullmatch(name) or name not in COMMAND_VERSIONS:
        raise ProtocolError(f"unknown command {name[:32]!r}", http_status=501 if _COMMAND.fullmatch(name) else 400)
    return name


def _device_id(value: str) -> str:
    if not DEVICE_ID_PATTERN.fullmatch(value):
        raise ProtocolError("DeviceId missing or invalid", status=108)
    return value


def _device_type(value: str) -> str:
    if not _DEVICE_TYPE.fullmatch(value):
        raise ProtocolError("DeviceType missing or invalid", status=109)
    return value


def _policy_key(value: str) -> int:
    value = value.strip()
    if not value.isdigit() or len(value) > 10 or int(value) > 0xFFFFFFFF:
        raise ProtocolError("X-MS-PolicyKey is not an unsigned 32-bit number")
    return int(value)


def _body(request: HTTPRequest, max_body: int) -> bytes:
    """The request body, un-gzipped when the client compressed it, at most ``max_body``."""
    body = request.body
    if len(body) > max_body:
        raise ProtocolError(f"request body over {max_body} bytes", http_status=413)
    encoding = (request.header("content-encoding", "") or "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise ProtocolError(f"unsupported Content-Encoding {encoding[:16]!r}", http_status=415)
    d = zlib.decompressobj(wbits=31)
    try:
        out = d.decompress(body, max_body + 1)
    except zlib.error:
        raise ProtocolError("request body is not valid gzip") from None
    if len(out) > max_body or d.unconsumed_tail:
        raise ProtocolError(f"request body over {max_body} bytes once decompressed", http_status=413)
    if not d.eof:
        raise ProtocolError("request body gzip stream is truncated")
    return out


def gzip_body(body: bytes) -> bytes:
    """A response body compressed for a client that sent ``Accept-Encoding: gzip``."""
    return gzip.compress(body, compresslevel=5)


def accepts_gzip(request: HTTPRequest) -> bool:
    value = request.header("accept-encoding", "") or ""
    return any(part.split(";")[0].strip().lower() == "gzip" for part in value.split(","))

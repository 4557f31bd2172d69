"""Account protocol loggers: what one account's devices send and receive, in a file of its own.

A logger is the setting ``logger.<account>``: ``{"level": "headers"|"full", "file": path or
null, "window": N or null, "max_body": bytes}``. ``headers`` writes the request line,
headers and the response status and headers; ``full`` adds the decoded XML of both
bodies. Credentials (the Authorization header, Settings DevicePassword, Search and
ItemOperations UserName/Password) are always redacted; any text or opaque value longer
than ``max_body`` (default 1 KB: message bodies, MIME, attachment data) becomes a marker
with its length. ``window`` clamps the WindowSize of Sync requests while the logger
exists.

The file is ``<data dir>/logs/<account>.log`` (the account name made safe for a file
name) unless the admin gave a path; it is opened in append mode per write and rotated to
``.1`` once beyond ``MAX_FILE`` bytes (one old file kept). A write that fails (disk full)
logs a warning and never fails the request. Settings are read at most once a second
(``SETTINGS_TTL``), so an ``eas logger add`` reaches a running server within a second;
an account without a logger costs one dict lookup.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eas import tags
from eas.access import register
from eas.protocol.http import EASRequest, HTTPRequest, HTTPResponse
from eas.state.store import StateStore

log = logging.getLogger("eas.logger")

PREFIX = "logger."
LEVELS = ("headers", "full")
SETTINGS_TTL = 1.0
MAX_FILE = 10 * 1024 * 1024  # bytes before the file is rotated to <file>.1
DEFAULT_MAX_BODY = 1024
REDACTED = "[redacted]"
_SECRET_TAGS = frozenset({tags.Settings.DevicePassword, tags.Settings.Password, tags.Search.UserName,
                          tags.Search.Password, tags.ItemOperations.UserName, tags.ItemOperations.Password})
_WINDOWED = ("Sync",)  # ItemOperations has no WindowSize (its Range is the client's)


def check(value: Any) -> dict[str, Any]:
    """A logger's setting, normalised; ``ValueError`` naming the bad field."""
    if not isinstance(value, dict):
        raise ValueError("expected an object with level, file, window")  # noqa: TRY004
    unknown = set(value) - {"level", "file", "window", "max_body"}
    if unknown:
        raise ValueError(f"unknown field {min(unknown)}")
    level = value.get("level", "full")
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}")
    file = value.get("file")
    if file is not None and (not isinstance(file, str) or not file or "\0" in file or not os.path.isabs(file)):
        raise ValueError("file must be an absolute path")
    window = value.get("window")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 512):
        raise ValueError("window must be a whole number from 1 to 512")
    max_body = value.get("max_body", DEFAULT_MAX_BODY)
    if isinstance(max_body, bool) or not isinstance(max_body, int) or not 0 <= max_body <= 10**8:
        raise ValueError("max_body must be a whole number of bytes")
    return {"level": level, "file": file, "window": window, "max_body": max_body}


register(PREFIX + "*", check, None, "a protocol logger of the account after 'logger.' (eas logger add)")


def file_name(account: str) -> str:
    """A file name for the account that cannot leave the logs folder (no separators, no
    leading dots), distinct for distinct names (a hash when anything was replaced)."""
    safe = re.sub(r"[^A-Za-z0-9@._+-]", "_", account).lstrip(".")[:100] or "_"
    if safe != account:
        import hashlib

        safe += "-" + hashlib.sha256(account.encode()).hexdigest()[:8]
    return safe + ".log"


class AccountLoggers:
    """The built-in engine. ``folder`` is the data dir's ``logs`` folder (None: loggers
    without a file of their own write nothing); ``clock`` is injectable for tests."""

    def __init__(self, store: StateStore, folder: Path | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.folder = folder
        self.clock = clock
        self._loggers: dict[str, dict[str, Any]] = {}
        self._expires = float("-inf")

    async def get(self, account: str) -> dict[str, Any] | None:
        """The account's logger, or None (the common case: one dict lookup)."""
        now = self.clock()
        if now >= self._expires:
            loggers = {}
            for name, value in (await self.store.settings(PREFIX)).items():
                try:
                    loggers[name[len(PREFIX):]] = check(value)
                except ValueError:
                    log.warning("ignoring invalid setting %s", name)
            self._loggers, self._expires = loggers, now + SETTINGS_TTL
        return self._loggers.get(account)

    def clamp(self, logger: dict[str, Any], request: EASRequest) -> None:
        """Force the logger's smaller WindowSize on a Sync or ItemOperations request."""
        window = logger["window"]
        if window is None or request.command not in _WINDOWED or not request.body:
            return
        from eas.wbxml import WBXMLError, decode, encode

        try:
            root = decode(request.body)
        except WBXMLError:
            return  # the core answers it as malformed
        changed = False
        stack = [root]
        while stack:
            node = stack.pop()
            stack.extend(node.children)
            if node.tag == tags.AirSync.WindowSize and isinstance(node.text, str):
                try:
                    if int(node.text) > window:
                        node.text, changed = str(window), True
                except ValueError:
                    pass
        if changed:
            request.body = encode(root)

    def write(self, account: str, logger: dict[str, Any], http: HTTPRequest, request: EASRequest | None,
              response: HTTPResponse) -> None:
        """Append one exchange; a failure to write is a warning, never the request's."""
        path = Path(logger["file"]) if logger["file"] else (self.folder / file_name(account) if self.folder else None)
        if path is None:
            return
        try:
            text = render(logger, http, request, response)
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() and path.stat().st_size > MAX_FILE:
                os.replace(path, path.with_name(path.name + ".1"))
            with open(path, "a", encoding="utf-8") as f:
                f.write(text)
        except Exception as e:  # noqa: BLE001 (disk full, a folder gone: never the request's failure)
            log.warning("protocol logger of %s: cannot write %s: %s", account, path, e)


def render(logger: dict[str, Any], http: HTTPRequest, request: EASRequest | None, response: HTTPResponse) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = [f"=== {stamp} {http.client}", f"{http.method} {http.path}{'?' + http.query if http.query else ''}"]
    lines += [f"{k}: {REDACTED if k == 'authorization' else v}" for k, v in http.headers]
    if logger["level"] == "full" and request is not None:
        lines.append(_body(request.body, logger["max_body"]))
    lines.append(f"--- {response.status}")
    lines += [f"{k}: {v}" for k, v in response.headers]
    if logger["level"] == "full":
        lines.append(_body(response.body, logger["max_body"]))
    return "\n".join(line for line in lines if line) + "\n\n"


def _body(data: bytes, limit: int) -> str:
    """The decoded XML with secrets and long values replaced."""
    if not data:
        return ""
    from eas.wbxml import WBXMLError, decode, to_xml

    try:
        root = decode(data)
    except WBXMLError:
        return f"[{len(data)} bytes, not WBXML]"
    stack = [root]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.tag in _SECRET_TAGS and node.text is not None:
            node.text = REDACTED
        elif node.text is not None and len(node.text) > limit:
            node.text = f"[{len(node.text)} {'bytes' if isinstance(node.text, bytes) else 'characters'} omitted]"
    return to_xml(root)


# -- the admin API (eas logger) ----------------------------------------------------------

async def add_logger(store: StateStore, account: str, *, level: str = "full", file: str | None = None,
                     window: int | None = None, max_body: int = DEFAULT_MAX_BODY, actor: str) -> dict[str, Any]:
    """Start (or change) the account's logger, audited as ``actor``; ``ValueError`` for a
    bad account name or field, nothing stored then."""
    from eas.access import change_setting

    if not account or len(account) > 320 or any(c.isspace() or ord(c) < 32 for c in account):
        raise ValueError("the account name is empty, too long or has spaces or control characters")
    value: dict[str, Any] = await change_setting(store, PREFIX + account, {
        "level": level, "file": file, "window": window, "max_body": max_body}, actor=actor)
    return value


async def remove_logger(store: StateStore, account: str, *, actor: str) -> bool:
    """Stop the account's logger (False: it had none), audited as ``actor``."""
    from eas.access import change_setting

    if await store.get_setting(PREFIX + account) is None:
        return False
    await change_setting(store, PREFIX + account, None, actor=actor)
    return True


async def list_loggers(store: StateStore) -> dict[str, dict[str, Any]]:
    """Every account's logger, by account."""
    return {name[len(PREFIX):]: value for name, value in sorted((await store.settings(PREFIX)).items())}

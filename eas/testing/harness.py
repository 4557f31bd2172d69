"""A complete ActiveSync app for tests: the reference store and the SQLite state store in
a folder, with users, plus in-process clients for it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from eas.server import build
from eas.testing.client import Client, InProcess

if TYPE_CHECKING:
    from eas.config import Config
    from eas.core import ActiveSync
    from eas.store import ReferenceStore

USERS = (("alice@example.com", "alice-secret"), ("bob@example.com", "bob-secret"))


def make_app(folder: Path, *, users: tuple[tuple[str, str], ...] = USERS,
             config: Config | None = None) -> tuple[ActiveSync, ReferenceStore]:
    """An ``ActiveSync`` over a fresh data dir (``eas.server.build``: ``folder/mail.db``
    and ``folder/state.db``), with ``users`` created."""
    app, store = build(folder, config)
    for email, password in users:
        store.add_user(email, password)
    return app, store


def client(app: ActiveSync, user: str = USERS[0][0], password: str = USERS[0][1], **kw: object) -> Client:
    """An in-process client of ``app`` (``kw``: device_id, version, ...)."""
    return Client(InProcess(app), user, password, **kw)  # type: ignore[arg-type]

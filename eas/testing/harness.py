"""A complete ActiveSync app for tests: the reference store and the SQLite state store in
a folder, with users, plus in-process clients for it."""

from __future__ import annotations

from pathlib import Path

from eas.config import Config
from eas.core import ActiveSync
from eas.state.sqlite import SQLiteStateStore
from eas.store import ReferenceStore
from eas.testing.client import Client, InProcess

USERS = (("alice@example.com", "alice-secret"), ("bob@example.com", "bob-secret"))


def make_app(folder: Path, *, users: tuple[tuple[str, str], ...] = USERS,
             config: Config | None = None) -> tuple[ActiveSync, ReferenceStore]:
    """An ``ActiveSync`` over a fresh reference store (``folder/mail.db``) and state store
    (``folder/state.db``), with ``users`` created."""
    store = ReferenceStore(folder / "mail.db")
    for email, password in users:
        store.add_user(email, password)
    app = ActiveSync(store, SQLiteStateStore(folder / "state.db"), authenticate=store.authenticate,
                     config=config)
    return app, store


def client(app: ActiveSync, user: str = USERS[0][0], password: str = USERS[0][1], **kw: object) -> Client:
    """An in-process client of ``app`` (``kw``: device_id, version, ...)."""
    return Client(InProcess(app), user, password, **kw)  # type: ignore[arg-type]

"""The reference mail store: the backend contract, then what is its own (passwords and
logins, delivery of tricky MIME, stamps, notifications, corruption and migrations)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eas.store import ReferenceStore
from eas.testing.backend_contract import BackendContract, Subject

pytestmark = pytest.mark.kernel_independent

ALICE, BOB = "alice@example.com", "bob@example.com"


@pytest.fixture
def store(tmp_path: Path) -> ReferenceStore:
    s = ReferenceStore(tmp_path / "mail.db")
    s.add_user(ALICE, "alice-secret", "Alice Example")
    s.add_user(BOB, "bob-secret")
    return s


class TestReferenceStoreContract(BackendContract):
    @pytest.fixture
    def subject(self, store: ReferenceStore) -> Subject:
        return Subject(store, ALICE, other_user=BOB)

"""The reference mail store: ``ReferenceStore``, a SQLite implementation of
``eas.backend.Backend`` with user administration, for the demo server and the tests.

``eas.store.demo.populate`` fills a mailbox with sample mail.
"""

from __future__ import annotations

from eas.store.reference import STANDARD_FOLDERS, ReferenceStore

__all__ = ["STANDARD_FOLDERS", "ReferenceStore"]

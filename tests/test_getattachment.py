"""GetAttachment (2.5-12.1) over the reference store: the raw bytes with their type, 500
for an attachment that is not there (or not the user's), 400 without a name."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_sendmail import ALICE, BOB, ORIGINAL, quick_app, run

from eas.backend import FolderType
from eas.commands.getattachment import safe_content_type
from eas.testing.harness import client


async def file_reference(store: object, item: str) -> str:
    folder = next(f for f in await store.folders(ALICE) if f.type == FolderType.INBOX)  # type: ignore[attr-defined]
    [mail] = await store.fetch_emails(ALICE, folder.id, [item])  # type: ignore[attr-defined]
    [attachment] = mail.attachments
    assert attachment.display_name == "agenda.pdf"
    return str(attachment.file_reference)


def test_getattachment_returns_the_bytes(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = quick_app(tmp_path)
        ref = await file_reference(store, store.deliver(ALICE, ORIGINAL))
        for version in ("2.5", "12.0", "12.1"):
            c = client(app, version=version, device_id=f"Dev{version.replace('.', '')}")
            await c.provision()
            r = await c.command("GetAttachment", None, params={"AttachmentName": ref})
            assert r.status == 200, version
            assert r.headers["content-type"] == "application/pdf"
            assert r.body == b"%PDF-1.4 agenda"

    run(scenario())


def test_getattachment_refusals(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = quick_app(tmp_path)
        ref = await file_reference(store, store.deliver(ALICE, ORIGINAL))
        c = client(app, version="12.1")
        await c.provision()
        item, _, index = ref.partition(":")
        for name in (f"{item}:{int(index) + 7}", "999999:1", "nonsense", ":", "1:x" * 10):
            r = await c.command("GetAttachment", None, params={"AttachmentName": name})
            assert (r.status, r.body) == (500, b""), name
        r = await c.command("GetAttachment", None)
        assert r.status == 400
        r = await c.command("GetAttachment", None, params={"AttachmentName": "x" * 2000})
        assert r.status == 400
        # Bob cannot read Alice's attachment by guessing its reference.
        other = client(app, BOB, "bob-secret", version="12.1")
        await other.provision()
        r = await other.command("GetAttachment", None, params={"AttachmentName": ref})
        assert (r.status, r.body) == (500, b"")

    run(scenario())


def test_getattachment_is_not_in_14(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = quick_app(tmp_path)
        ref = await file_reference(store, store.deliver(ALICE, ORIGINAL))
        c = client(app, version="14.1")
        await c.provision()
        r = await c.command("GetAttachment", None, params={"AttachmentName": ref})
        assert r.status == 400 and b"agenda" not in r.body

    run(scenario())


@pytest.mark.kernel_independent
def test_content_types_reaching_the_header_are_media_types() -> None:
    assert safe_content_type("image/png") == "image/png"
    assert safe_content_type('text/plain; charset="utf-8"') == 'text/plain; charset="utf-8"'
    for bad in ("", "png", "text/plain\r\nSet-Cookie: x=1", "a/b\nX-Evil: 1", "x" * 300 + "/y", "tëxt/plain"):
        assert safe_content_type(bad) == "application/octet-stream", bad

"""Find (MS-ASCMD 2.2.1.2, 16.1 only) over the reference store: mailbox FreeText in a
folder, with DeepTraversal and across folders, the 16.1 properties (Preview,
HasAttachments, DisplayCc, DisplayBcc), GAL with pictures, ranges (Status 4 unless from
0), and Status 2/3 for malformed requests and unknown folders."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eas.backend import FolderType
from eas.store import ReferenceStore
from eas.tags import GAL, AirSync, ItemOperations
from eas.tags import Email as E
from eas.tags import Find as F
from eas.tags import FolderHierarchy as FH
from eas.testing.client import Client, Reply
from eas.testing.harness import client, make_app
from eas.wbxml import Node, Writer
from eas.wbxml._writer import write_node

ALICE, BOB = "alice@example.com", "bob@example.com"
NS = 'xmlns="Find:" xmlns:airsync="AirSync:"'
JPEG = b"\xff\xd8\xff\xe0" + b"face" * 30


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def find_mail(query: str, options: str = "", search_id: str | None = None) -> str:
    sid = str(uuid.uuid4()) if search_id is None else search_id
    return (f"<Find {NS}><SearchId>{sid}</SearchId><ExecuteSearch><MailBoxSearchCriterion>"
            f"<Query>{query}</Query><Options>{options}</Options></MailBoxSearchCriterion></ExecuteSearch></Find>")


def find_gal(query: str, options: str = "") -> str:
    return (f"<Find {NS}><SearchId>{uuid.uuid4()}</SearchId><ExecuteSearch><GalSearchCriterion>"
            f"<Query>{query}</Query><Options>{options}</Options></GalSearchCriterion></ExecuteSearch></Find>")


def response(r: Reply) -> Node:
    assert r.status == 200 and r.node is not None and r.node.tag == F.Find, (r.status, r.body[:60])
    assert r.text(F.Status) == "1", r.xml
    found = r.node.find(F.Response)
    assert found is not None
    return found


def found(r: Reply) -> list[Node]:
    resp = response(r)
    assert resp.findtext(F.Status) == "1", r.xml
    return resp.findall(F.Result)


def subjects(r: Reply) -> list[str]:
    return [str(n.findtext(F.Properties, E.Subject)) for n in found(r)]


def message(subject: str, body: str, date: str, extra: str = "") -> bytes:
    return (f"From: Carol <carol@example.net>\r\nTo: Alice <{ALICE}>\r\nCc: Dan <dan@example.net>, eve@example.net\r\n"
            f"Subject: {subject}\r\nDate: {date}\r\n{extra}"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


WITH_ATTACHMENT = (f"From: carol@example.net\r\nTo: {ALICE}\r\nSubject: Slides\r\n"
                   "Date: Thu, 4 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
                   "Content-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\n"
                   "The budget slides\r\n--BB\r\nContent-Type: application/pdf; name=s.pdf\r\n"
                   "Content-Disposition: attachment; filename=s.pdf\r\n\r\n%PDF\r\n--BB--\r\n").encode()


async def setup(tmp_path: Path) -> tuple[Client, ReferenceStore, dict[str, str]]:
    app, store = make_app(tmp_path)
    store.set_display_name(BOB, "Bob Brown")
    await store.create_folder(ALICE, store.folder_id(ALICE, "Inbox"), "Trips", FolderType.USER_MAIL)
    store.deliver(ALICE, message("Budget 2024", "The quarterly numbers\n\n  in   detail", "Mon, 1 Jan 2024 10:00:00 +0000"))
    store.deliver(ALICE, message("Party", "Cake and budget talk", "Tue, 2 Jan 2024 10:00:00 +0000"))
    store.deliver(ALICE, message("Travel", "Flights, budget", "Wed, 3 Jan 2024 10:00:00 +0000"), folder="Inbox/Trips")
    store.deliver(ALICE, WITH_ATTACHMENT)
    c = client(app, version="16.1")
    await c.provision()
    r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
    changes = r.node.find(FH.Changes) if r.node is not None else None
    assert changes is not None
    return c, store, {str(a.findtext(FH.DisplayName)): str(a.findtext(FH.ServerId)) for a in changes.findall(FH.Add)}


def test_mailbox_free_text(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, _, folders = await setup(tmp_path)
        inbox = folders["Inbox"]
        q = f"<airsync:Class>Email</airsync:Class><airsync:CollectionId>{inbox}</airsync:CollectionId>"
        r = await c.command("Find", find_mail(q + "<FreeText>budget</FreeText>", "<Range>0-9</Range>"))
        assert subjects(r) == ["Slides", "Party", "Budget 2024"]
        resp = response(r)
        assert resp.findtext(ItemOperations.Store) == "Mailbox"
        assert resp.findtext(F.Range) == "0-2" and resp.findtext(F.Total) == "3"
        first = found(r)[0]
        assert first.findtext(AirSync.Class) == "Email" and first.findtext(AirSync.CollectionId) == inbox
        assert str(first.findtext(AirSync.ServerId)).startswith(f"{inbox}:")
        props = {n.findtext(F.Properties, E.Subject): n.find(F.Properties) for n in found(r)}
        assert props["Slides"].findtext(F.HasAttachments) == "1"  # type: ignore[union-attr]
        budget = props["Budget 2024"]
        assert budget is not None
        assert budget.findtext(F.HasAttachments) == "0"
        assert budget.findtext(F.Preview) == "The quarterly numbers in detail"
        assert budget.findtext(F.DisplayCc) == "Dan; eve@example.net"
        assert budget.findtext(E.DisplayTo) == "Alice"
        assert budget.findtext(E.DateReceived) == "2024-01-01T10:00:00.000Z"
        assert budget.findtext(E.Read) == "0"
        r = await c.command("Find", find_mail(q + "<FreeText>budget</FreeText>", "<Range>0-9</Range><DeepTraversal/>"))
        assert subjects(r) == ["Slides", "Travel", "Party", "Budget 2024"]
        r = await c.command("Find", find_mail("<airsync:Class>Email</airsync:Class><FreeText>flights</FreeText>"))
        assert subjects(r) == ["Travel"]  # no CollectionId: every mail folder
        r = await c.command("Find", find_mail(q + "<FreeText>budget</FreeText>", "<Range>0-0</Range>"))
        assert subjects(r) == ["Slides"]
        assert response(r).findtext(F.Range) == "0-0" and response(r).findtext(F.Total) == "3"
        r = await c.command("Find", find_mail(q + "<FreeText>nothing-matches</FreeText>"))
        assert found(r) == [] and response(r).findtext(F.Total) == "0" and response(r).find(F.Range) is None

    run(scenario())


def test_range_must_start_at_zero(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, _, _ = await setup(tmp_path)
        r = await c.command("Find", find_mail("<FreeText>budget</FreeText>", "<Range>1-5</Range>"))
        assert response(r).findtext(F.Status) == "4" and response(r).find(F.Result) is None

    run(scenario())


def test_gal_with_pictures(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store, _ = await setup(tmp_path)
        store.set_user_picture(BOB, JPEG)
        store.set_user_details(BOB, title="Engineer")
        r = await c.command("Find", find_gal("brown", "<Range>0-4</Range><Picture><MaxSize>1000</MaxSize></Picture>"))
        [entry] = found(r)
        props = entry.find(F.Properties)
        assert props is not None
        assert props.findtext(GAL.EmailAddress) == BOB and props.findtext(GAL.Title) == "Engineer"
        assert props.findtext(GAL.Picture, GAL.Status) == "1" and props.findtext(GAL.Picture, GAL.Data) == JPEG
        assert response(r).findtext(ItemOperations.Store) == "GAL" and response(r).findtext(F.Total) == "1"
        r = await c.command("Find", find_gal("brown", "<Picture><MaxSize>10</MaxSize></Picture>"))
        assert found(r)[0].findtext(F.Properties, GAL.Picture, GAL.Status) == "174"
        r = await c.command("Find", find_gal("brown"))
        assert found(r)[0].find(F.Properties, GAL.Picture) is None

    run(scenario())


@pytest.mark.parametrize(("body", "expected"), [
    (find_mail("<FreeText>x</FreeText>", search_id="not-a-guid"), "2"),
    (find_mail("<FreeText>x</FreeText>", search_id=""), "2"),
    (find_mail("<FreeText></FreeText>"), "2"),
    (find_mail("<FreeText>" + "x" * 300 + "</FreeText>"), "2"),
    (find_mail("<airsync:Class>Calendar</airsync:Class><FreeText>x</FreeText>"), "2"),
    (find_mail("<FreeText>x</FreeText><airsync:SyncKey>1</airsync:SyncKey>"), "2"),
    (find_mail("<FreeText>x</FreeText>", "<Range>9-1</Range>"), "2"),
    (find_mail("<FreeText>x</FreeText><airsync:CollectionId>9999</airsync:CollectionId>"), "3"),
    (find_gal(""), "2"),
    (find_gal("bob", "<Picture><MaxPictures>many</MaxPictures></Picture>"), "2"),
    (f"<Find {NS}><SearchId>{uuid.uuid4()}</SearchId></Find>", "2"),
    (f"<Find {NS}><SearchId>{uuid.uuid4()}</SearchId><ExecuteSearch/></Find>", "2"),
])
def test_invalid_requests(tmp_path: Path, body: str, expected: str) -> None:
    async def scenario() -> None:
        c, _, _ = await setup(tmp_path)
        r = await c.command("Find", body)
        assert r.status == 200 and r.text(F.Status) == expected, r.xml
        assert r.node is not None and r.node.find(F.Response) is None

    run(scenario())


def test_mailbox_before_folder_sync(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, _ = make_app(tmp_path)
        c = client(app, version="16.1")
        await c.provision()
        r = await c.command("Find", find_mail("<FreeText>x</FreeText>"))
        assert r.text(F.Status) == "3" and r.node is not None and r.node.find(F.Response) is None
        assert found(await c.command("Find", find_gal("alice"))) != []  # the GAL names no folder

    run(scenario())


@pytest.mark.parametrize("version", ["14.1", "16.0"])
def test_not_before_16_1(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        app, _ = make_app(tmp_path)
        c = client(app, version=version)
        await c.provision()
        r = await c.command("Find", find_gal("bob"))
        # The core refuses it; Find:Status does not exist before 16.1 either, so the
        # refusal is a bare HTTP 400 rather than a Find response with 138.
        assert r.status == 400 and not r.body

    run(scenario())


def test_a_second_search_sees_new_mail(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store, _ = await setup(tmp_path)
        sid = str(uuid.uuid4())
        assert subjects(await c.command("Find", find_mail("<FreeText>zebra</FreeText>", search_id=sid))) == []
        store.deliver(ALICE, message("Zebra", "stripes", "Fri, 5 Jan 2024 10:00:00 +0000"))
        assert subjects(await c.command("Find", find_mail("<FreeText>zebra</FreeText>", search_id=sid))) == ["Zebra"]

    run(scenario())


# -- random requests ---------------------------------------------------------------------------

_TAGS = [F.SearchId, F.ExecuteSearch, F.MailBoxSearchCriterion, F.GalSearchCriterion, F.Query, F.FreeText,
         F.Options, F.Range, F.DeepTraversal, F.Picture, F.MaxSize, F.MaxPictures, AirSync.Class,
         AirSync.CollectionId]
_TEXTS = st.sampled_from(["", "0-9", "1-2", "9-1", "Email", "1", "budget", "brown", str(uuid.UUID(int=7)), "%",
                          "\ufffd", "x" * 300])


def _nodes(depth: int) -> st.SearchStrategy[Node]:
    leaf = st.builds(Node, st.sampled_from(_TAGS), st.one_of(st.none(), _TEXTS, st.binary(max_size=8)))
    if depth == 0:
        return leaf
    return st.one_of(leaf, st.builds(lambda tag, children: Node(tag, None, children),
                                     st.sampled_from(_TAGS), st.lists(_nodes(depth - 1), max_size=4)))


@pytest.fixture
def device(tmp_path: Path) -> tuple[Any, int]:
    async def prepare() -> tuple[Any, int]:
        c, _, _ = await setup(tmp_path)
        assert c.policy_key is not None
        return c.transport, c.policy_key

    return run(prepare())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(_nodes(4), max_size=4))
def test_random_requests_get_a_status(device: tuple[Any, int], parts: list[Node]) -> None:
    """Whatever the request holds: a Find response with Status 1 to 3 (4 in a Response)."""
    w = Writer()
    with w.tag(F.Find):
        for part in parts:
            write_node(w, part)
    c = Client(device[0], ALICE, "alice-secret", version="16.1", policy_key=device[1])
    r = run(c.raw("Find", w.getvalue()))
    assert r.status == 200 and r.text(F.Status) in {"1", "2", "3"}, r.xml
    if r.text(F.Status) == "1":
        assert r.text(F.Response, F.Status) in {"1", "4"}

"""Search (MS-ASCMD 2.2.1.16) over the reference store: the GAL in every version (ranges,
details, pictures from 14.1, address books), the mailbox from 12.0 (FreeText, folders,
subfolders, dates, conversations, newest first, LongId that ItemOperations fetches), and
the Store status of every refusal (2, 5, 8, 11, 12)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eas.backend import FolderType
from eas.core import ActiveSync
from eas.store import ReferenceStore
from eas.tags import GAL, AirSync, Search
from eas.tags import AirSyncBase as ASB
from eas.tags import Email as E
from eas.tags import FolderHierarchy as FH
from eas.tags import ItemOperations as IO
from eas.testing.client import Client, Reply
from eas.testing.harness import client, make_app
from eas.wbxml import Node, Writer
from eas.wbxml._writer import write_node

ALICE, BOB = "alice@example.com", "bob@example.com"
NS = 'xmlns="Search:" xmlns:airsync="AirSync:" xmlns:email="Email:" xmlns:airsyncbase="AirSyncBase:"'
JPEG = b"\xff\xd8\xff\xe0" + b"picture" * 20


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def gal(query: str, options: str = "") -> str:
    opts = f"<Options>{options}</Options>" if options else ""
    return f"<Search {NS}><Store><Name>GAL</Name><Query>{query}</Query>{opts}</Store></Search>"


def mailbox(conditions: str, options: str = "") -> str:
    opts = f"<Options>{options}</Options>" if options else ""
    return (f"<Search {NS}><Store><Name>Mailbox</Name><Query><And>{conditions}</And></Query>{opts}"
            f"</Store></Search>")


def store_of(r: Reply) -> Node:
    assert r.status == 200 and r.node is not None and r.node.tag == Search.Search, (r.status, r.body[:60])
    assert r.text(Search.Status) == "1", r.xml
    found = r.node.find(Search.Response, Search.Store)
    assert found is not None, r.xml
    return found


def store_status(r: Reply) -> str:
    return str(store_of(r).findtext(Search.Status))


def results(r: Reply) -> list[Node]:
    """The non-empty Results of a successful search."""
    store = store_of(r)
    assert store.findtext(Search.Status) in ("1", "12"), r.xml
    return [n for n in store.findall(Search.Result) if n.children]


def gal_addresses(r: Reply) -> list[str]:
    return [str(n.findtext(Search.Properties, GAL.EmailAddress)) for n in results(r)]


def message(subject: str, body: str, date: str, *, sender: str = "carol@example.net",
            extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: {ALICE}\r\nSubject: {subject}\r\nDate: {date}\r\n{extra}"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


async def folder_ids(c: Client) -> dict[str, str]:
    r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
    changes = r.node.find(FH.Changes) if r.node is not None else None
    assert changes is not None, r.xml
    return {str(a.findtext(FH.DisplayName)): str(a.findtext(FH.ServerId)) for a in changes.findall(FH.Add)}


@pytest.fixture
def app(tmp_path: Path) -> tuple[ActiveSync, ReferenceStore]:
    made, store = make_app(tmp_path)
    store.set_display_name(ALICE, "Alice Anders")
    store.set_display_name(BOB, "Bob Brown")
    return made, store


async def ready(app: tuple[ActiveSync, ReferenceStore], version: str) -> Client:
    c = client(app[0], version=version)
    await c.provision()
    return c


# -- GAL ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.5", "12.1", "14.1", "16.1"])
def test_gal_in_every_version(app: tuple[ActiveSync, ReferenceStore], version: str) -> None:
    store = app[1]
    store.set_user_details(BOB, title="Engineer", phone="+1 555 0100", office="B-12", company="Example",
                           first_name="Bob", last_name="Brown", mobile_phone="+1 555 0199")

    async def scenario() -> None:
        c = await ready(app, version)
        r = await c.command("Search", gal("brown"))
        found = results(r)
        assert len(found) == 1
        props = found[0].find(Search.Properties)
        assert props is not None
        assert props.findtext(GAL.DisplayName) == "Bob Brown"
        assert props.findtext(GAL.EmailAddress) == BOB
        assert props.findtext(GAL.Title) == "Engineer"
        assert props.findtext(GAL.Phone) == "+1 555 0100"
        assert props.findtext(GAL.Office) == "B-12"
        assert props.findtext(GAL.Company) == "Example"
        assert props.findtext(GAL.Alias) == "bob"
        assert props.findtext(GAL.MobilePhone) == "+1 555 0199"
        assert store_of(r).findtext(Search.Total) == "1"
        assert store_of(r).findtext(Search.Range) == "0-0"

    run(scenario())


def test_gal_ranges_are_zero_based_and_inclusive(app: tuple[ActiveSync, ReferenceStore]) -> None:
    store = app[1]
    for name in ("dana", "dave", "dora"):
        store.add_user(f"{name}@example.com", "pw", f"{name.title()} Dee")

    async def scenario() -> None:
        c = await ready(app, "14.1")
        everyone = gal_addresses(await c.command("Search", gal("dee")))
        assert sorted(everyone) == ["dana@example.com", "dave@example.com", "dora@example.com"]
        r = await c.command("Search", gal("dee", "<Range>1-2</Range>"))
        assert gal_addresses(r) == everyone[1:3]
        assert store_of(r).findtext(Search.Range) == "1-2"
        assert store_of(r).findtext(Search.Total) == "3"
        r = await c.command("Search", gal("dee", "<Range>0-0</Range>"))
        assert gal_addresses(r) == everyone[:1]
        r = await c.command("Search", gal("dee", "<Range>2-9</Range>"))  # beyond the end: what there is
        assert gal_addresses(r) == everyone[2:]
        assert store_of(r).findtext(Search.Range) == "2-2"
        r = await c.command("Search", gal("dee", "<Range>5-9</Range>"))  # past every match
        assert results(r) == [] and store_of(r).find(Search.Result) is not None
        assert store_of(r).find(Search.Range) is None and store_of(r).findtext(Search.Total) == "3"
        r = await c.command("Search", gal("dee", "<Range>0-150</Range>"))  # more than the 100 allowed
        assert store_status(r) == "12" and len(gal_addresses(r)) == 3
        for bad in ("2-1", "a-b", "-1", "1", "0-99999999999", ""):
            assert store_status(await c.command("Search", gal("dee", f"<Range>{bad}</Range>"))) == "2", bad

    run(scenario())


def test_gal_matches_names_and_addresses_case_insensitively(app: tuple[ActiveSync, ReferenceStore]) -> None:
    store = app[1]
    store.add_user("zoe@example.com", "pw", "Zoë Ångström")

    async def scenario() -> None:
        c = await ready(app, "14.0")
        assert gal_addresses(await c.command("Search", gal("ÅNGSTRÖM"))) == ["zoe@example.com"]
        assert gal_addresses(await c.command("Search", gal("ZOE@"))) == ["zoe@example.com"]
        # the exact alias ranks before names that merely contain the text
        store.add_user("bobby@example.com", "pw", "Bobby Tables")
        assert gal_addresses(await c.command("Search", gal("bob")))[0] == BOB
        r = await c.command("Search", gal("nobody-like-this"))
        assert results(r) == [] and store_of(r).findtext(Search.Total) == "0"

    run(scenario())


def test_gal_pictures_from_14_1(app: tuple[ActiveSync, ReferenceStore]) -> None:
    store = app[1]
    store.set_user_picture(BOB, JPEG)
    store.add_user("bea@example.com", "pw", "Bea Brown")
    store.set_user_picture("bea@example.com", JPEG + b"x" * 500)
    store.add_user("bo@example.com", "pw", "Bo Brown")

    def pictures(r: Reply) -> dict[str, tuple[str, bytes | str | None]]:
        out = {}
        for n in results(r):
            props = n.find(Search.Properties)
            assert props is not None
            picture = props.find(GAL.Picture)
            assert picture is not None
            out[str(props.findtext(GAL.EmailAddress))] = (str(picture.findtext(GAL.Status)),
                                                          picture.findtext(GAL.Data))
        return out

    async def scenario() -> None:
        c = await ready(app, "14.1")
        r = await c.command("Search", gal("brown", "<Picture/>"))
        seen = pictures(r)
        assert seen[BOB] == ("1", JPEG)
        assert seen["bea@example.com"] == ("1", JPEG + b"x" * 500)
        assert seen["bo@example.com"] == ("173", None)
        r = await c.command("Search", gal("brown", f"<Picture><MaxSize>{len(JPEG)}</MaxSize></Picture>"))
        seen = pictures(r)
        assert seen[BOB] == ("1", JPEG) and seen["bea@example.com"] == ("174", None)
        r = await c.command("Search", gal("brown", "<Picture><MaxPictures>1</MaxPictures></Picture>"))
        statuses = sorted(s for s, _ in pictures(r).values())
        assert statuses == ["1", "173", "175"]
        r = await c.command("Search", gal("brown", "<Picture><MaxSize>lots</MaxSize></Picture>"))
        assert store_status(r) == "2"
        # without Picture in the request, no picture in the response
        assert all(n.find(Search.Properties, GAL.Picture) is None
                   for n in results(await c.command("Search", gal("brown"))))

    run(scenario())


def test_pictures_of_one_response_are_bounded() -> None:
    from eas.commands.search import MAX_PICTURE_BYTES, NO_PICTURE, PICTURE_OK, TOO_MANY_PICTURES, Pictures

    pictures = Pictures()
    quarter = b"x" * (MAX_PICTURE_BYTES // 4)
    assert [pictures.status(quarter) for _ in range(5)] == [PICTURE_OK] * 4 + [TOO_MANY_PICTURES]
    assert pictures.status(b"x") == TOO_MANY_PICTURES and pictures.status(None) == NO_PICTURE


def test_gal_picture_not_sent_before_14_1(app: tuple[ActiveSync, ReferenceStore]) -> None:
    app[1].set_user_picture(BOB, JPEG)

    async def scenario() -> None:
        c = await ready(app, "14.0")  # the client checks that no 14.1 element comes back
        c.check_versions = False  # the request itself carries a 14.1 element
        r = await c.command("Search", gal("bob", "<Picture/>"))
        assert gal_addresses(r) == [BOB]
        assert all(n.find(Search.Properties, GAL.Picture) is None for n in results(r))

    run(scenario())


def test_gal_address_books(app: tuple[ActiveSync, ReferenceStore]) -> None:
    store = app[1]
    store.add_user("carol@other.org", "pw", "Carol Brown")

    async def scenario() -> None:
        c = await ready(app, "14.1")
        # no book configured: the users of one's own domain
        assert sorted(gal_addresses(await c.command("Search", gal("brown")))) == [BOB]
        store.add_address_book("global", "users")
        assert sorted(gal_addresses(await c.command("Search", gal("brown")))) == [BOB, "carol@other.org"]
        store.add_address_book("example.com", "users")  # the same people again: listed once
        assert sorted(gal_addresses(await c.command("Search", gal("brown")))) == [BOB, "carol@other.org"]
        store.remove_address_book("global", "users")
        assert sorted(gal_addresses(await c.command("Search", gal("brown")))) == [BOB]
        store.remove_address_book("example.com", "users")
        store.add_address_book("other.org", "users")  # another domain's book: not alice's
        assert sorted(gal_addresses(await c.command("Search", gal("brown")))) == [BOB]

    run(scenario())


@pytest.mark.parametrize("query", ["", "   ", "x" * 257])
def test_gal_bad_query(app: tuple[ActiveSync, ReferenceStore], query: str) -> None:
    async def scenario() -> None:
        c = await ready(app, "14.1")
        assert store_status(await c.command("Search", gal(query))) == "2"

    run(scenario())


# -- Mailbox -----------------------------------------------------------------------------------


def deliver_three(store: ReferenceStore) -> dict[str, str]:
    """Three mails to alice, one in a subfolder of the inbox: {subject word: item id}."""
    return {
        "budget": store.deliver(ALICE, message("Budget 2024", "The quarterly numbers", "Mon, 1 Jan 2024 10:00:00 +0000")),
        "party": store.deliver(ALICE, message("Party", "Cake and budget talk", "Tue, 2 Jan 2024 10:00:00 +0000")),
        "travel": store.deliver(ALICE, message("Travel", "Flights booked, über budget", "Wed, 3 Jan 2024 10:00:00 +0000"),
                                folder="Inbox/Trips"),
    }


async def mailbox_with_subfolder(app: tuple[ActiveSync, ReferenceStore], version: str) -> tuple[Client, dict[str, str]]:
    store = app[1]
    inbox = store.folder_id(ALICE, "Inbox")
    await store.create_folder(ALICE, inbox, "Trips", FolderType.USER_MAIL)
    c = await ready(app, version)
    return c, await folder_ids(c)


def subjects(r: Reply) -> list[str]:
    return [str(n.findtext(Search.Properties, E.Subject)) for n in results(r)]


@pytest.mark.parametrize("version", ["12.0", "12.1", "14.0", "14.1", "16.0", "16.1"])
def test_mailbox_free_text_newest_first(app: tuple[ActiveSync, ReferenceStore], version: str) -> None:
    async def scenario() -> None:
        c, folders = await mailbox_with_subfolder(app, version)
        deliver_three(app[1])
        inbox = folders["Inbox"]
        cls = "<airsync:Class>Email</airsync:Class>"
        r = await c.command("Search", mailbox(f"{cls}<airsync:CollectionId>{inbox}</airsync:CollectionId>"
                                              "<FreeText>budget</FreeText>"))
        assert subjects(r) == ["Party", "Budget 2024"]  # newest first; the subfolder left out
        assert store_of(r).findtext(Search.Total) == "2"
        first = results(r)[0]
        assert first.findtext(AirSync.Class) == "Email"
        assert first.findtext(AirSync.CollectionId) == inbox
        long_id = str(first.findtext(Search.LongId))
        assert long_id.startswith(f"{inbox}:")
        r = await c.command("Search", mailbox(f"{cls}<airsync:CollectionId>{inbox}</airsync:CollectionId>"
                                              "<FreeText>BUDGET</FreeText>", "<DeepTraversal/>"))
        assert subjects(r) == ["Travel", "Party", "Budget 2024"]
        assert results(r)[0].findtext(AirSync.CollectionId) == folders["Trips"]
        # every word must occur, in any of subject, addresses and body
        r = await c.command("Search", mailbox(f"{cls}<FreeText>über flights</FreeText>"))
        assert subjects(r) == ["Travel"]
        r = await c.command("Search", mailbox(f"{cls}<FreeText>carol@example.net quarterly</FreeText>"))
        assert subjects(r) == ["Budget 2024"]
        # the LongId fetches the item
        fetch = await c.command("ItemOperations", f'<ItemOperations xmlns="ItemOperations:" xmlns:search="Search:">'
                                                  f"<Fetch><Store>Mailbox</Store><search:LongId>{long_id}"
                                                  f"</search:LongId></Fetch></ItemOperations>")
        assert fetch.text(IO.Response, IO.Fetch, IO.Status) == "1", fetch.xml
        assert fetch.text(IO.Response, IO.Fetch, IO.Properties, E.Subject) == "Party"

    run(scenario())


def test_long_id_answers_smart_reply(app: tuple[ActiveSync, ReferenceStore]) -> None:
    """A LongId from Search names the source of a SmartReply (ComposeMail Source LongId)."""
    store = app[1]

    async def scenario() -> None:
        c = await ready(app, "14.1")
        store.deliver(ALICE, message("Lunch", "Noon at the usual place?", "Mon, 1 Jan 2024 10:00:00 +0000",
                                     sender=BOB))
        await folder_ids(c)
        [found] = results(await c.command("Search", mailbox("<FreeText>usual place</FreeText>")))
        long_id = str(found.findtext(Search.LongId))
        reply = (f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: Re: Lunch\r\n\r\nYes.\r\n").encode()
        r = await c.command("SmartReply", '<SmartReply xmlns="ComposeMail:"><ClientId>s1</ClientId>'
                                          f"<Source><LongId>{long_id}</LongId></Source>"
                                          f"<Mime>{base64.b64encode(reply).decode()}</Mime></SmartReply>")
        assert (r.status, r.body) == (200, b""), r.xml
        [(_, _, sent)] = store.outgoing(ALICE)
        assert b"> Noon at the usual place?" in sent

    run(scenario())


def test_mailbox_dates_range_and_body_preference(app: tuple[ActiveSync, ReferenceStore]) -> None:
    async def scenario() -> None:
        c, _ = await mailbox_with_subfolder(app, "14.1")
        deliver_three(app[1])
        cls = "<airsync:Class>Email</airsync:Class>"
        after = ("<GreaterThan><email:DateReceived/><Value>2024-01-01T10:00:00.000Z</Value></GreaterThan>")
        before = ("<LessThan><email:DateReceived/><Value>2024-01-03T10:00:00.000Z</Value></LessThan>")
        assert subjects(await c.command("Search", mailbox(cls + after))) == ["Travel", "Party"]
        assert subjects(await c.command("Search", mailbox(cls + before))) == ["Party", "Budget 2024"]
        assert subjects(await c.command("Search", mailbox(cls + after + before))) == ["Party"]
        r = await c.command("Search", mailbox(cls, "<Range>1-1</Range>"))
        assert subjects(r) == ["Party"]
        assert store_of(r).findtext(Search.Range) == "1-1" and store_of(r).findtext(Search.Total) == "3"
        r = await c.command("Search", mailbox(cls + "<FreeText>cake</FreeText>",
                                              "<airsyncbase:BodyPreference><airsyncbase:Type>1</airsyncbase:Type>"
                                              "<airsyncbase:TruncationSize>4</airsyncbase:TruncationSize>"
                                              "</airsyncbase:BodyPreference><RebuildResults/>"))
        body = results(r)[0].find(Search.Properties, ASB.Body)
        assert body is not None and body.findtext(ASB.Data) == "Cake" and body.findtext(ASB.Truncated) == "1"
        # other classes than mail: nothing (mail is what is searched)
        assert subjects(await c.command("Search", mailbox("<airsync:Class>Tasks</airsync:Class>"))) == []

    run(scenario())


def test_mailbox_conversation(app: tuple[ActiveSync, ReferenceStore]) -> None:
    store = app[1]

    async def scenario() -> None:
        c = await ready(app, "14.1")
        store.deliver(ALICE, message("Plans", "first", "Mon, 1 Jan 2024 10:00:00 +0000",
                                     extra="Message-ID: <a@x>\r\n"))
        store.deliver(ALICE, message("Re: Plans", "second", "Tue, 2 Jan 2024 10:00:00 +0000",
                                     extra="Message-ID: <b@x>\r\nIn-Reply-To: <a@x>\r\nReferences: <a@x>\r\n"))
        store.deliver(ALICE, message("Other", "third", "Wed, 3 Jan 2024 10:00:00 +0000"))
        await folder_ids(c)
        inbox = store.folder_id(ALICE, "Inbox")
        stamps = await store.item_stamps(ALICE, inbox)
        by_subject = {e.subject: e for e in await store.fetch_emails(ALICE, inbox, list(stamps))}
        thread = by_subject["Plans"].conversation_id
        assert thread and by_subject["Re: Plans"].conversation_id == thread != by_subject["Other"].conversation_id
        w = Writer()
        with w.tag(Search.Search), w.tag(Search.Store):
            w.leaf(Search.Name, "Mailbox")
            with w.tag(Search.Query), w.tag(Search.And):
                w.leaf(AirSync.Class, "Email")
                w.opaque(Search.ConversationId, thread)
        assert subjects(await c.raw("Search", w.getvalue())) == ["Re: Plans", "Plans"]

    run(scenario())


BAD_MAILBOX = [
    ("<Or><FreeText>a</FreeText><FreeText>b</FreeText></Or>", "8"),
    ("<And><And><FreeText>a</FreeText></And></And>", "8"),
    ("<ConversationId>YWJj</ConversationId>", "8"),
    ("<And><airsync:CollectionId>999</airsync:CollectionId></And>", "11"),
    ("<And><airsync:Class>Bogus</airsync:Class></And>", "2"),
    ("<And><FreeText>a</FreeText><FreeText>b</FreeText></And>", "2"),
    ("<And><GreaterThan><email:DateReceived/><Value>yesterday</Value></GreaterThan></And>", "2"),
    ("<And><GreaterThan><email:Subject/><Value>2024-01-01T00:00:00Z</Value></GreaterThan></And>", "2"),
    ("<And><GreaterThan><Value>2024-01-01T00:00:00Z</Value></GreaterThan></And>", "2"),
    ("<And><EqualTo><Value>x</Value></EqualTo></And>", "2"),
    ("<And><FreeText>" + "x" * 300 + "</FreeText></And>", "2"),
    ("", "2"),
]


@pytest.mark.parametrize(("query", "expected"), BAD_MAILBOX)
def test_mailbox_bad_queries(app: tuple[ActiveSync, ReferenceStore], query: str, expected: str) -> None:
    async def scenario() -> None:
        c = await ready(app, "14.1")
        await folder_ids(c)
        r = await c.command("Search", f"<Search {NS}><Store><Name>Mailbox</Name><Query>{query}</Query></Store></Search>")
        assert store_status(r) == expected, r.xml
        assert store_of(r).find(Search.Result) is None

    run(scenario())


def test_mailbox_before_folder_sync(app: tuple[ActiveSync, ReferenceStore]) -> None:
    async def scenario() -> None:
        c = await ready(app, "14.1")  # no FolderSync: no CollectionId to name a result with
        assert store_status(await c.command("Search", mailbox("<FreeText>x</FreeText>"))) == "11"
        await folder_ids(c)
        assert store_status(await c.command("Search", mailbox("<FreeText>x</FreeText>"))) == "1"

    run(scenario())


def test_hostile_free_text_is_just_text(app: tuple[ActiveSync, ReferenceStore]) -> None:
    store = app[1]

    async def scenario() -> None:
        c = await ready(app, "14.1")
        store.deliver(ALICE, message("Hi", "body", "Mon, 1 Jan 2024 10:00:00 +0000"))
        await folder_ids(c)
        for text in ("' OR 1=1 --", "%", "_", "\\", "\ufffd", "a\x01b"):
            r = await c.command("Search", mailbox(f"<FreeText>{text.replace(chr(1), '')}</FreeText>"))
            assert subjects(r) == [], text
        assert subjects(await c.command("Search", mailbox("<FreeText>hi</FreeText>"))) == ["Hi"]

    run(scenario())


@pytest.mark.parametrize(("version", "name", "expected"), [
    ("2.5", "Mailbox", "2"), ("2.5", "DocumentLibrary", "2"), ("12.1", "DocumentLibrary", "5"),
    ("16.1", "DocumentLibrary", "5"), ("14.1", "Nonsense", "2"),
])
def test_stores_not_served(app: tuple[ActiveSync, ReferenceStore], version: str, name: str, expected: str) -> None:
    async def scenario() -> None:
        c = await ready(app, version)
        r = await c.command("Search", f'<Search xmlns="Search:"><Store><Name>{name}</Name><Query>x</Query>'
                                      f"</Store></Search>")
        assert store_status(r) == expected

    run(scenario())


def test_malformed_bodies(app: tuple[ActiveSync, ReferenceStore]) -> None:
    async def scenario() -> None:
        c = await ready(app, "14.1")
        r = await c.command("Search", '<Search xmlns="Search:"/>')
        assert store_status(r) == "2"
        two = "<Store><Name>GAL</Name><Query>bob</Query></Store>"
        assert store_status(await c.command("Search", f'<Search xmlns="Search:">{two}{two}</Search>')) == "2"
        r = await c.command("Search", '<Ping xmlns="Ping:"/>')
        assert r.status in (200, 400) and r.status != 500

    run(scenario())


# -- random requests ---------------------------------------------------------------------------

_REQUEST_TAGS = [Search.And, Search.Or, Search.EqualTo, Search.GreaterThan, Search.LessThan, Search.FreeText,
                 Search.Value, Search.ConversationId, Search.Range, Search.DeepTraversal, Search.Picture,
                 Search.MaxSize, Search.MaxPictures, Search.Query, Search.Options, Search.Name,
                 AirSync.Class, AirSync.CollectionId, E.DateReceived, E.Subject]
_TEXTS = st.sampled_from(["", "GAL", "Mailbox", "Email", "1", "0-5", "9-1", "2024-01-01T00:00:00Z", "budget",
                          "%", "\ufffd", "x" * 300, "99999999999"])


def _nodes(depth: int) -> st.SearchStrategy[Node]:
    leaf = st.builds(Node, st.sampled_from(_REQUEST_TAGS), st.one_of(st.none(), _TEXTS, st.binary(max_size=8)))
    if depth == 0:
        return leaf
    return st.one_of(leaf, st.builds(lambda tag, children: Node(tag, None, children),
                                     st.sampled_from(_REQUEST_TAGS), st.lists(_nodes(depth - 1), max_size=4)))


@pytest.fixture
def searcher(app: tuple[ActiveSync, ReferenceStore]) -> tuple[ActiveSync, int]:
    """The app and the policy key of a 14.1 device that did its FolderSync."""
    async def setup() -> int:
        c = await ready(app, "14.1")
        await folder_ids(c)
        assert c.policy_key is not None
        return c.policy_key

    return app[0], run(setup())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["GAL", "Mailbox", "DocumentLibrary", ""]), parts=st.lists(_nodes(3), max_size=4))
def test_random_search_requests_get_a_store_status(searcher: tuple[ActiveSync, int], name: str,
                                                   parts: list[Node]) -> None:
    """Whatever a Store holds, the answer is a Search response with a Store status of the
    spec, never an HTTP error."""
    w = Writer()
    with w.tag(Search.Search), w.tag(Search.Store):
        w.leaf(Search.Name, name)
        for part in parts:
            write_node(w, part)
    c = client(searcher[0], version="14.1")
    c.policy_key = searcher[1]
    assert store_status(run(c.raw("Search", w.getvalue()))) in {"1", "2", "5", "8", "11", "12"}

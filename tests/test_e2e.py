"""End-to-end sessions over real HTTPS: ``eas serve`` in a subprocess (TLS with the
self-signed certificate it makes in its data dir, accounts made with ``eas user add``,
mail put in with ``eas mail deliver`` from other processes), driven by an independent
client, pyactivesync 0.17.0 (EAS 16.1 only), and by our own test client for 2.5, 12.1
and 14.1, which pyactivesync cannot speak.

Every session is recorded on the client side and checked three more ways:

* each WBXML response body is decoded by libwbxml's ``wbxml2xml`` as well, and must give
  the same tree as ``eas.wbxml.decode`` (tests/test_libwbxml.py has the tool helpers;
  without the tool this check alone is left out, unless EAS_REQUIRE_TOOLS=1 as in CI);
* no element of any response is outside the negotiated protocol version
  (``eas.tags.BY_TAG[tag].versions``);
* the session as a readable transcript (request XML, response status and XML) must
  equal its golden file, tests/data/sessions/<scenario>.xml; ``EAS_UPDATE_GOLDEN=1``
  rewrites the files instead.

The transcripts are normalised narrowly, so that real regressions show: SyncKeys and
PolicyKeys become ``{sync-key-N}``/``{folder-sync-key-N}``/``{policy-key-N}`` by order of
first appearance (a key that is reused keeps its name); backend item ids, which the
reference store numbers across all accounts, become ``{item-N}`` inside item ServerIds
and FileReferences (the folder part, per device, is kept); timestamps within two days of
the run (client flag dates, server clocks) become ``{now}``; Message-IDs shaped like
``email.utils.make_msgid``'s and MIME boundaries shaped like the ``email`` package's
become ``{message-id-N}``/``{boundary-N}``. The messages the tests deliver carry fixed
dates, Message-IDs and boundaries, so nothing else varies.

Each scenario has its own account and device, so it gives the same transcript whether it
runs alone or after the others. All of them share one server (a module fixture, started
and stopped with tests/test_cli_server.py's ``serving``), which the fixture always stops,
and every wait has a timeout.

Client-side workarounds, none of them about our server:

* requests lets $REQUESTS_CA_BUNDLE/$CURL_CA_BUNDLE override a Session's ``verify``
  (psf/requests#3829, open since 2017), so pyactivesync's ``verify_ssl=False`` still
  verifies wherever those are set (as in many CI images). The tests set the session's
  ``trust_env = False`` and ``verify`` to the server's own certificate: TLS is then
  verified for real, host name included.
* pyactivesync has no public way to see its traffic; its ``requests.Session`` is reached
  through ``Client._transport.session`` to add a response hook.
* pyactivesync 0.17.0's ``FolderType`` is one off from 12 up: it has USER_GENERIC = 12,
  USER_MAIL = 13, ..., where MS-ASCMD 2.2.3.186.2/.3 has 12 user-created mail folder,
  13 user-created calendar folder, ..., 18 unknown, 19 recipient information cache (and
  1 for a generic user folder). The tests pass 12 for a mail folder and compare types as
  numbers.
* pyactivesync 0.17.0's code page table lacks Email2 IsDraft (16.x): it reports the
  element as ``page22.0x15``. The tests do not read that field through it.
* pyactivesync 0.17.0's ``fetch_attachment`` reads only the first Status of the response
  (the global one) and returns no bytes when the Fetch itself failed; the test reads the
  Fetch's Status from the recorded response.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import difflib
import functools
import gzip
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from xml.sax.saxutils import quoteattr

import pytest
import test_libwbxml as libwbxml
from test_cli_server import eas, http, serving

from eas import tags
from eas.protocol.http import WBXML_CONTENT_TYPE, HTTPRequest, HTTPResponse
from eas.tags import AirSync, AirSyncBase, Email, Ping
from eas.tags import FolderHierarchy as FH
from eas.testing.client import Client, HTTPTransport, Reply
from eas.wbxml import Node, decode, to_xml

if TYPE_CHECKING:
    import requests

    from eas.store import ReferenceStore

SESSIONS = Path(__file__).parent / "data" / "sessions"
PASSWORD = "e2e-secret"
PYACTIVESYNC = "0.17.0"
WAIT = 15.0  # seconds: the longest any single request or wake-up may take

pytestmark = pytest.mark.kernel_independent  # the server runs its own (C) codec


# -- The mail the tests deliver ---------------------------------------------------------------

def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


PLAIN = _crlf("""From: Carol <carol@example.org>
To: {to}
Subject: Lunch?
Date: Mon, 6 Jan 2025 12:00:00 +0000
Message-ID: <lunch@example.org>

At noon?
""")

HTML_PART = "<html><body><p>Numbers are <b>up</b>.</p></body></html>"
HTML = _crlf(f"""From: Dave <dave@example.net>
To: {{to}}
Subject: Quarterly report
Date: Tue, 7 Jan 2025 09:30:00 +0100
Message-ID: <q4@example.net>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt-2025"

--alt-2025
Content-Type: text/plain; charset=utf-8

Numbers are up.
--alt-2025
Content-Type: text/html; charset=utf-8

{HTML_PART}
--alt-2025--
""")

ATTACHMENT = bytes(range(256)) * 4  # every byte value, 1 KiB
ATTACHED = _crlf("""From: Erin <erin@example.com>
To: {to}
Subject: Scan
Date: Wed, 8 Jan 2025 10:00:00 +0000
Message-ID: <scan@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mix-2025"

--mix-2025
Content-Type: text/plain; charset=us-ascii

The scan is attached.
--mix-2025
Content-Type: application/octet-stream; name="scan.bin"
Content-Disposition: attachment; filename="scan.bin"
Content-Transfer-Encoding: base64

""") + base64.encodebytes(ATTACHMENT).replace(b"\n", b"\r\n") + b"--mix-2025--\r\n"

GREETING_SUBJECT = "Grüße aus Köln – 日本語 😀"
GREETING_BODY = "Hallo, schöne Grüße! Ça va? 日本語のテキスト 😀\r\n"
GREETING = _crlf(f"""From: =?utf-8?q?Zo=C3=AB_=C3=85ngstr=C3=B6m?= <zoe@example.org>
To: {{to}}
Subject: =?utf-8?b?{base64.b64encode(GREETING_SUBJECT.encode()).decode()}?=
Date: Thu, 9 Jan 2025 18:45:00 +0000
Message-ID: <gruss@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

""") + GREETING_BODY.encode()


def mail(template: bytes, to: str, n: int = 0) -> bytes:
    """A message for ``to``; ``n`` > 0 gives the n-th variant (own subject and Message-ID)."""
    data = template.replace(b"{to}", to.encode())
    if n:
        data = re.sub(rb"Message-ID: <([^@>]+)@", rb"Message-ID: <\1-%d@" % n, data, count=1)
        data = re.sub(rb"Subject: ([^\r]+)", rb"Subject: \1 #%d" % n, data, count=1)
    return data


# -- Recording and checking a session ----------------------------------------------------------

@dataclass
class Exchange:
    """One request and its response as the client saw them (bodies un-gzipped)."""

    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int
    response_headers: dict[str, str]
    response: bytes

    @property
    def command(self) -> str:
        return dict(self.query).get("Cmd", "?")

    def response_node(self) -> Node | None:
        wbxml = self.response_headers.get("content-type", "").startswith(WBXML_CONTENT_TYPE)
        return decode(self.response) if wbxml and self.response else None


@dataclass
class Session:
    """The exchanges of one scenario, in order, from every client that took part."""

    name: str
    client: str
    version: str
    exchanges: list[Exchange] = field(default_factory=list)

    def hook(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        """A requests response hook: record what pyactivesync sent and got."""
        request = response.request
        body = request.body or b""
        self.exchanges.append(Exchange(
            query=parse_qsl(urlsplit(request.url or "").query, keep_blank_values=True),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body.encode() if isinstance(body, str) else body,
            status=response.status_code,
            response_headers={k.lower(): v for k, v in response.headers.items()},
            response=response.content,  # requests has undone any gzip
        ))

    def transport(self, inner: Callable[[HTTPRequest], Any]) -> Callable[[HTTPRequest], Any]:
        """A test-client transport that records what goes through ``inner``."""

        async def send(request: HTTPRequest) -> HTTPResponse:
            response: HTTPResponse = await inner(request)
            headers = {k.lower(): v for k, v in response.headers}
            body = gzip.decompress(response.body) if headers.get("content-encoding") == "gzip" else response.body
            self.exchanges.append(Exchange(parse_qsl(request.query, keep_blank_values=True),
                                           {k.lower(): v for k, v in request.headers}, request.body,
                                           response.status, headers, body))
            return response

        return send


def check_session(session: Session) -> None:
    """libwbxml agrees with our decoder, every element belongs to the version, and the
    transcript is the golden one."""
    assert session.exchanges, "nothing was recorded"
    cross_check = have_wbxml2xml()
    for n, exchange in enumerate(session.exchanges, 1):
        node = exchange.response_node()
        if node is None:
            continue
        where = f"{session.name} exchange {n} ({exchange.command})"
        if cross_check:
            # wbxml2xml prints a CR in text as a raw byte, which an XML parser would turn
            # into LF; as a character reference it survives (markup has no CR: -m 0).
            theirs = libwbxml.from_libwbxml_xml(libwbxml.wbxml2xml(exchange.response).replace(b"\r", b"&#13;"))
            assert libwbxml.canon(theirs) == libwbxml.canon(node), f"libwbxml reads {where} differently"
        foreign = sorted({tags.name(t) for t in _tags(node) if session.version not in _versions(t)})
        assert not foreign, f"{where}: elements outside {session.version}: {foreign}"
    golden = SESSIONS / f"{session.name}.xml"
    text = transcript(session)
    if os.environ.get("EAS_UPDATE_GOLDEN", "") not in ("", "0"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
        return
    assert golden.exists(), f"no golden file {golden}; EAS_UPDATE_GOLDEN=1 writes it"
    expected = golden.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                            f"golden/{golden.name}", "this run", n=2))
        pytest.fail(f"session {session.name} differs from its golden file (EAS_UPDATE_GOLDEN=1 rewrites it):\n"
                    + diff[:6000], pytrace=False)


@functools.cache
def have_wbxml2xml() -> bool:
    """Whether libwbxml's wbxml2xml is installed; its absence fails the tests when
    EAS_REQUIRE_TOOLS=1 (as in CI), else only the cross-check is left out."""
    if shutil.which("wbxml2xml") is not None:
        return True
    if os.environ.get("EAS_REQUIRE_TOOLS", "") not in ("", "0"):
        pytest.fail("EAS_REQUIRE_TOOLS is set but libwbxml's wbxml2xml is not found "
                    "(Debian/Ubuntu: apt-get install libwbxml2-utils)", pytrace=False)
    warnings.warn("wbxml2xml not found: responses are not cross-checked with libwbxml", stacklevel=2)
    return False


def _tags(node: Node) -> Iterator[int]:
    yield node.tag
    for child in node.children:
        yield from _tags(child)


def _versions(tag: int) -> tuple[str, ...]:
    info = tags.BY_TAG.get(tag)
    return info.versions if info is not None else ()


# -- Transcripts -------------------------------------------------------------------------------

_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z")
_RFC5322 = re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                      r"\d{4} \d\d:\d\d:\d\d [+-]\d{4}")
_MSGID = re.compile(r"<\d+\.\d+\.\d+@[^<>\s]+>")  # email.utils.make_msgid
_BOUNDARY = re.compile(r"={15}\d{10,20}==")  # email.generator's boundaries
_SYNC_KEYS = {AirSync.SyncKey: "sync-key", FH.SyncKey: "folder-sync-key"}
_ITEM_IDS = {AirSync.ServerId, tags.Move.SrcMsgId, tags.Move.DstMsgId, tags.ComposeMail.ItemId}
_FILE_REFERENCES = {AirSyncBase.FileReference, Email.AttName}


class Normaliser:
    """Names volatile values by order of first appearance within one session."""

    def __init__(self) -> None:
        self.names: dict[str, dict[str, str]] = {}
        self.now = datetime.now(UTC)

    def name(self, kind: str, value: str) -> str:
        seen = self.names.setdefault(kind, {})
        return seen.setdefault(value, f"{{{kind}-{len(seen) + 1}}}")

    def node(self, node: Node) -> Node:
        text = node.text
        if isinstance(text, str):
            text = self.text(node.tag, text)
        return Node(node.tag, text, [self.node(c) for c in node.children])

    def text(self, tag: int, text: str) -> str:
        if tag in _SYNC_KEYS and text not in ("", "0"):
            return self.name(_SYNC_KEYS[tag], text)
        if tag == tags.Provision.PolicyKey and text not in ("", "0"):
            return self.name("policy-key", text)
        if tag in _ITEM_IDS and (m := re.fullmatch(r"([^:]+):(\d+)", text)):
            return f"{m[1]}:{self.name('item', m[2])}"
        if tag in _FILE_REFERENCES and (m := re.fullmatch(r"(\d+):(\d+)", text)):
            return f"{self.name('item', m[1])}:{m[2]}"
        return self.free(text)

    def free(self, text: str) -> str:
        """Clock-made dates, generated Message-IDs and boundaries anywhere in a text."""
        text = _ISO.sub(lambda m: self._date(m[0], datetime.fromisoformat(m[0])), text)
        text = _RFC5322.sub(lambda m: self._date(m[0], parsedate_to_datetime(m[0])), text)
        text = _MSGID.sub(lambda m: self.name("message-id", m[0]), text)
        return _BOUNDARY.sub(lambda m: self.name("boundary", m[0]), text)

    def _date(self, text: str, when: datetime) -> str:
        return "{now}" if abs(when - self.now) < timedelta(days=2) else text


def transcript(session: Session) -> str:
    """The session as XML: one ``exchange`` per request with the request's parameters,
    headers of note and body, the response's status and body (WBXML as ``to_xml``)."""
    norm = Normaliser()
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           f"<!-- {session.name}: {session.client} against eas serve over HTTPS, protocol {session.version}.",
           "     Volatile values are normalised (see tests/test_e2e.py); EAS_UPDATE_GOLDEN=1 rewrites this file. -->",
           (f"<session scenario={quoteattr(session.name)} client={quoteattr(session.client)} "
            f"protocol={quoteattr(session.version)}>")]
    for n, ex in enumerate(session.exchanges, 1):
        query = dict(ex.query)
        params = [(k, norm.name("policy-key", v) if k == "PolicyKey" else norm.free(v))
                  for k, v in ex.query if k not in ("Cmd", "User", "DeviceId", "DeviceType")]
        attrs = {"n": str(n), "command": ex.command, "user": query.get("User", ""),
                 "device": f"{query.get('DeviceType', '')}/{query.get('DeviceId', '')}"}
        out.append(f"<exchange {_attrs(attrs)}>")
        request = {"version": ex.headers.get("ms-asprotocolversion", "")}
        if "x-ms-policykey" in ex.headers:
            request["policy-key"] = norm.name("policy-key", ex.headers["x-ms-policykey"])
        if params:
            request["params"] = urlencode(params, safe="{}")
        out.append(_body("request", request, ex.headers.get("content-type", ""), ex.body, norm))
        out.append(_body("response", {"status": str(ex.status)}, ex.response_headers.get("content-type", ""),
                         ex.response, norm))
        out.append("</exchange>")
    out.append("</session>")
    return "\n".join(out) + "\n"


def _attrs(attrs: dict[str, str]) -> str:
    return " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())


def _body(element: str, attrs: dict[str, str], content_type: str, body: bytes, norm: Normaliser) -> str:
    if not body:
        return f"<{element} {_attrs(attrs)}/>"
    if content_type.startswith(WBXML_CONTENT_TYPE):
        xml = to_xml(norm.node(decode(body))).split("\n", 1)[1].rstrip("\n")
        return f"<{element} {_attrs(attrs)}>\n{xml}\n</{element}>"
    attrs = {**attrs, "content-type": content_type, "length": str(len(body))}
    return f"<{element} {_attrs(attrs)}/>"


# -- The server and the accounts ---------------------------------------------------------------

@dataclass
class Server:
    port: int
    data: Path
    cert: Path

    def add_user(self, email: str) -> None:
        r = eas("user", "add", email, "--password", PASSWORD, data_dir=self.data)
        assert r.returncode == 0, r.stderr

    def deliver(self, email: str, message: bytes, folder: str = "Inbox") -> None:
        """``eas mail deliver`` in its own process, as an MTA would run it."""
        r = eas("mail", "deliver", email, "-", "--folder", folder, data_dir=self.data, stdin=message)
        assert r.returncode == 0, r.stderr

    @contextmanager
    def store(self) -> Iterator[ReferenceStore]:
        """The server's mail store, opened beside it (SQLite allows that) to look at."""
        from eas.store import ReferenceStore

        with ReferenceStore(self.data / "mail.db") as store:
            yield store


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``eas serve`` over TLS for the whole file; stopped (SIGTERM, then kill) at the end."""
    data = tmp_path_factory.mktemp("e2e") / "data"
    with serving(data) as running:
        yield Server(running.port, data, data / "tls" / "cert.pem")
    assert running.process.returncode == 0, running.stderr.decode(errors="replace")
    assert b"Traceback" not in running.stderr, running.stderr.decode(errors="replace")


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


# -- pyactivesync ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pyas() -> Any:
    """The pyactivesync module (the ``test`` extra installs it)."""
    module = pytest.importorskip("pyactivesync")
    from importlib.metadata import version

    assert version("pyactivesync") == PYACTIVESYNC, "the golden sessions were recorded with pyactivesync 0.17.0"
    return module


@contextmanager
def pyas_client(pyas: Any, server: Server, session: Session, user: str, device: str,
                password: str = PASSWORD) -> Iterator[Any]:
    client = pyas.Client(f"127.0.0.1:{server.port}", user, password, device_id=device, timeout=WAIT)
    http_session = client._transport.session  # no public hook: see the module docstring
    http_session.trust_env = False  # psf/requests#3829: see the module docstring
    http_session.verify = str(server.cert)
    http_session.hooks["response"].append(session.hook)
    try:
        yield client
    finally:
        client.close()  # no keep-alive connection left to hold up the server's shutdown


def pyas_http_error() -> type[Exception]:
    """What pyactivesync raises for an HTTP error status (``raise_for_status``)."""
    import requests

    return requests.HTTPError


def pyas_session(name: str) -> Session:
    return Session(name, f"pyactivesync {PYACTIVESYNC}", "16.1")


def user_mail(pyas: Any) -> Any:
    """FolderHierarchy Type 12, a user-created mail folder (MS-ASCMD 2.2.3.186.2), which
    pyactivesync 0.17.0 names USER_GENERIC (its numbering is one off from 12 up)."""
    return pyas.FolderType(12)


def folder_of(folders: list[Any], type_: int) -> Any:
    return next(f for f in folders if int(f.type) == type_)


def by_subject(items: list[Any]) -> dict[str, Any]:
    return {i.fields.get("Email.Subject"): i for i in items}


def item_id(server_id: str) -> str:
    """The backend item id of an item ServerId (``CollectionId:item``)."""
    return server_id.partition(":")[2]


def test_pyactivesync_sync_changes_and_bad_keys(server: Server, pyas: Any) -> None:
    """Initial sync of delivered mail (plain, HTML, attachment, non-ASCII), an estimate,
    new mail, read/flag/delete from the device reaching the store, no echo of the
    device's own changes, and a wrong SyncKey refused with status 3 without harm."""
    user = "sync@example.com"
    server.add_user(user)
    for template in (PLAIN, HTML, ATTACHED, GREETING):
        server.deliver(user, mail(template, user))
    session = pyas_session("pyactivesync-sync")
    with pyas_client(pyas, server, session, user, "E2ESync01", password="not-the-password") as c:
        # (No pytest.raises: an exception kept alive would keep the response, and with it
        # the socket, open until a garbage collection, and hold up the server's shutdown.)
        try:
            c.list_folders()
        except pyas_http_error() as e:
            status, challenge = e.response.status_code, e.response.headers.get("WWW-Authenticate", "")
        else:
            pytest.fail("a wrong password was accepted")
        assert status == 401 and challenge.startswith("Basic ")
    with pyas_client(pyas, server, session, user, "E2ESync01") as c:
        folders = c.list_folders()
        names = {f.name: int(f.type) for f in folders}
        assert names == {"Inbox": 2, "Drafts": 3, "Deleted Items": 4, "Sent Items": 5, "Outbox": 6,
                         "Calendar": 8, "Contacts": 9, "Tasks": 7, "Notes": 10}
        inbox = folder_of(folders, 2)
        first = c.sync_folder(inbox.id)
        assert first.sync_key != "0" and not first.added
        synced = c.sync_folder(inbox.id, first.sync_key)
        got = by_subject(synced.added)
        assert set(got) == {"Lunch?", "Quarterly report", "Scan", GREETING_SUBJECT}
        assert not synced.more_available and not synced.changed and not synced.deleted
        greeting = got[GREETING_SUBJECT].fields
        assert greeting["Email.From"] == "Zoë Ångström <zoe@example.org>"
        assert greeting["AirSyncBase.Data"] == GREETING_BODY
        assert got["Lunch?"].fields["Email.DateReceived"] == "2025-01-06T12:00:00.000Z"
        assert got["Quarterly report"].fields["AirSyncBase.NativeBodyType"] == "2"
        assert all(i.server_id.startswith(f"{inbox.id}:") for i in synced.added)
        key = synced.sync_key
        assert c.get_item_estimate(inbox.id, key) == 0
        # GetItemEstimate Status (MS-ASCMD 2.2.3.177.7): 2 unknown collection, 4 a
        # SyncKey that is not the collection's; neither moves the collection's state.
        for folder_id, sync_key, code in (("424242", key, "2"), (inbox.id, "999", "4")):
            with pytest.raises(pyas.StatusError) as refused:
                c.get_item_estimate(folder_id, sync_key)
            assert refused.value.code == code

        # New mail from another process: the estimate sees it, the next Sync brings it.
        server.deliver(user, mail(PLAIN, user, 1))
        server.deliver(user, mail(HTML, user, 1))
        assert c.get_item_estimate(inbox.id, key) == 2
        more = c.sync_folder(inbox.id, key)
        assert set(by_subject(more.added)) == {"Lunch? #1", "Quarterly report #1"}
        key = more.sync_key

        lunch, report, scan = got["Lunch?"].server_id, got["Quarterly report"].server_id, got["Scan"].server_id
        changed = c.apply_email_changes(inbox.id, key, [
            pyas.EmailChange(server_id=lunch, read=True),
            pyas.EmailChange(server_id=report, flagged=True),
            pyas.EmailChange(server_id=scan, delete=True),
        ])
        assert changed.sync_key != key and set(changed.statuses.values()) == {"1"}
        key = changed.sync_key
        gone = c.apply_email_changes(inbox.id, key, [pyas.EmailChange(server_id=got[GREETING_SUBJECT].server_id,
                                                                      delete=True)], deletes_as_moves=False)
        key = gone.sync_key
        after = c.sync_folder(inbox.id, key)  # the device's own changes are not echoed
        assert (after.added, after.changed, after.deleted) == ([], [], [])

        deleted_items = folder_of(folders, 4)
        trash = c.sync_folder(deleted_items.id, c.sync_folder(deleted_items.id).sync_key)
        assert set(by_subject(trash.added)) == {"Scan"}

        # A SyncKey the server never gave: status 3. The device must then start over
        # from 0 (MS-ASCMD 2.2.3.177.17; sync.py resets the collection), and doing so
        # gives exactly what the Inbox holds.
        with pytest.raises(pyas.StatusError) as refused:
            c.sync_folder(inbox.id, "12345")
        assert refused.value.code == "3"
        again = c.sync_folder(inbox.id, c.sync_folder(inbox.id).sync_key)
        assert sorted(by_subject(again.added)) == ["Lunch?", "Lunch? #1", "Quarterly report", "Quarterly report #1"]
        assert {i.server_id for i in again.added} >= {lunch, report}

    with server.store() as store:
        async def look() -> tuple[dict[str, Any], dict[str, str]]:
            folder = {f.name: f.id for f in await store.folders(user)}
            inbox_ids = await store.item_stamps(user, folder["Inbox"])
            emails = await store.fetch_emails(user, folder["Inbox"], list(inbox_ids))
            return {e.subject: e for e in emails}, await store.item_stamps(user, folder["Deleted Items"])

        emails, trash_ids = run(look())
    assert set(emails) == {"Lunch?", "Quarterly report", "Lunch? #1", "Quarterly report #1"}
    assert emails["Lunch?"].read and not emails["Quarterly report"].read
    assert emails["Quarterly report"].flag is not None and emails["Quarterly report"].flag.status == 2
    assert emails["Lunch?"].flag is None or emails["Lunch?"].flag.status == 0
    assert list(trash_ids) == [item_id(scan)]
    check_session(session)


def test_pyactivesync_fetch_bodies_and_attachment(server: Server, pyas: Any) -> None:
    """ItemOperations Fetch in plain text, HTML and MIME (the MIME is the delivered message
    byte for byte), attachment metadata and its bytes, without marking anything read; an
    unknown item is refused."""
    user = "fetch@example.com"
    server.add_user(user)
    messages = {"Quarterly report": mail(HTML, user), "Scan": mail(ATTACHED, user),
                GREETING_SUBJECT: mail(GREETING, user)}
    for message in messages.values():
        server.deliver(user, message)
    session = pyas_session("pyactivesync-fetch")
    with pyas_client(pyas, server, session, user, "E2EFetch01") as c:
        inbox = folder_of(c.list_folders(), 2)
        items = by_subject(c.sync_folder(inbox.id, c.sync_folder(inbox.id).sync_key).added)
        assert set(items) == set(messages)
        plain, html, mime = pyas.BodyType.PLAIN_TEXT, pyas.BodyType.HTML, pyas.BodyType.MIME

        report = items["Quarterly report"].server_id
        fetched = c.fetch_item(inbox.id, report, body_type=plain)
        assert [(b.type, b.data) for b in fetched.bodies] == [(plain, "Numbers are up.")]
        assert fetched.native_body_type == html and fetched.attachments == []
        fetched = c.fetch_item(inbox.id, report, body_type=html)
        assert [(b.type, b.data, b.estimated_data_size) for b in fetched.bodies] == [
            (html, HTML_PART, len(HTML_PART))]
        fetched = c.fetch_item(inbox.id, report, body_type=mime)
        assert [(b.type, b.data) for b in fetched.bodies] == [(mime, messages["Quarterly report"])]

        scan = items["Scan"].server_id
        fetched = c.fetch_item(inbox.id, scan, body_type=plain)
        assert [(b.type, b.data) for b in fetched.bodies] == [(plain, "The scan is attached.")]
        [attachment] = fetched.attachments
        assert (attachment.display_name, attachment.estimated_data_size, attachment.method,
                attachment.is_inline) == ("scan.bin", len(ATTACHMENT), 1, False)
        assert c.fetch_attachment(attachment.file_reference) == ATTACHMENT
        # An attachment that is not there: Fetch status 15 (MS-ASCMD 2.2.3.177.8,
        # "attachment or attachment ID is invalid"). pyactivesync only reads the first
        # Status of the response (the global one, 1), so it returns no bytes; the Fetch's
        # own Status is read from the recorded response.
        assert c.fetch_attachment(f"{attachment.file_reference}99") == b""
        last = session.exchanges[-1].response_node()
        assert last is not None
        assert last.findtext(tags.ItemOperations.Response, tags.ItemOperations.Fetch,
                             tags.ItemOperations.Status) == "15", to_xml(last)
        fetched = c.fetch_item(inbox.id, scan, body_type=mime)
        assert fetched.bodies[0].data == messages["Scan"]

        greeting = items[GREETING_SUBJECT].server_id
        fetched = c.fetch_item(inbox.id, greeting, body_type=plain)
        assert fetched.fields["Email.Subject"] == GREETING_SUBJECT
        assert fetched.bodies[0].data == GREETING_BODY
        assert c.fetch_item(inbox.id, greeting, body_type=mime).bodies[0].data == messages[GREETING_SUBJECT]

        # An item that is not there: ItemOperations Fetch status 6 (MS-ASCMD 2.2.3.177.8,
        # "document library or item not found" is the closest; Exchange answers 6 here).
        with pytest.raises(pyas.StatusError) as missing:
            c.fetch_item(inbox.id, f"{inbox.id}:999999", body_type=plain)
        assert missing.value.code == "6"

    with server.store() as store:
        async def flags() -> list[bool]:
            inbox_id = (await store.folders(user))[0].id
            emails = await store.fetch_emails(user, inbox_id, list(await store.item_stamps(user, inbox_id)))
            return [e.read for e in emails]

        assert run(flags()) == [False, False, False]  # fetching reads nothing
    check_session(session)


def test_pyactivesync_move(server: Server, pyas: Any) -> None:
    """MoveItems into a new folder: status 3 and the new ServerId, the store has moved the
    mail, the source's next Sync does not echo it, the destination's first Sync has it;
    moving something that is not there answers status 1 and moves nothing."""
    user = "move@example.com"
    server.add_user(user)
    server.deliver(user, mail(PLAIN, user))
    server.deliver(user, mail(GREETING, user))
    session = pyas_session("pyactivesync-move")
    with pyas_client(pyas, server, session, user, "E2EMove01") as c:
        inbox = folder_of(c.list_folders(), 2)
        synced = c.sync_folder(inbox.id, c.sync_folder(inbox.id).sync_key)
        items = by_subject(synced.added)
        archive = c.create_folder("Archive", type=user_mail(pyas))
        moved = c.move_item(items["Lunch?"].server_id, inbox.id, archive.id)
        assert moved.startswith(f"{archive.id}:")
        after = c.sync_folder(inbox.id, synced.sync_key)
        assert (after.added, after.changed, after.deleted) == ([], [], [])
        there = c.sync_folder(archive.id, c.sync_folder(archive.id).sync_key)
        assert [(i.server_id, i.fields["Email.Subject"]) for i in there.added] == [(moved, "Lunch?")]

        with pytest.raises(pyas.StatusError) as refused:
            c.move_item(f"{inbox.id}:999999", inbox.id, archive.id)
        assert refused.value.code == "1"  # invalid source (MS-ASCMD 2.2.3.177.9)
        with pytest.raises(pyas.StatusError) as refused:
            c.move_item(items[GREETING_SUBJECT].server_id, inbox.id, "424242")
        assert refused.value.code == "2"  # invalid destination

    with server.store() as store:
        async def where() -> dict[str, list[str]]:
            return {f.name: sorted(await store.item_stamps(user, f.id)) for f in await store.folders(user)
                    if f.name in ("Inbox", "Archive")}

        assert run(where()) == {"Inbox": [item_id(items[GREETING_SUBJECT].server_id)],
                                "Archive": [item_id(moved)]}
    check_session(session)


def test_pyactivesync_send_mail_to_a_local_user(server: Server, pyas: Any) -> None:
    """SendMail (16.1 ComposeMail) to another account of the store: it arrives in their
    Inbox as sent, a copy lands in Sent Items; the recipient syncs it with its own device."""
    sender, recipient = "sender@example.com", "recipient@example.com"
    server.add_user(sender)
    server.add_user(recipient)
    message = EmailMessage()
    message["From"] = f"Sender <{sender}>"
    message["To"] = f"Récipient <{recipient}>"
    message["Subject"] = "Überweisung – danke"
    message["Date"] = "Fri, 10 Jan 2025 08:00:00 +0000"
    message["Message-ID"] = "<thanks@example.com>"
    message.set_content("Vielen Dank für die Überweisung!\n")
    session = pyas_session("pyactivesync-send")
    nobody = EmailMessage()
    nobody["From"] = sender
    nobody["Subject"] = "To no one"
    nobody["Date"] = "Fri, 10 Jan 2025 07:00:00 +0000"
    nobody["Message-ID"] = "<nobody@example.com>"
    nobody.set_content("Lost.\n")
    with pyas_client(pyas, server, session, sender, "E2ESend01") as c:
        sent_items = folder_of(c.list_folders(), 5)
        with pytest.raises(pyas.StatusError) as refused:
            c.send_mail(nobody, client_id="e2e-send-0")
        assert refused.value.code == "119"  # MessageHasNoRecipient (MS-ASCMD 2.2.2)
        c.send_mail(message, client_id="e2e-send-1")
        copy = c.sync_folder(sent_items.id, c.sync_folder(sent_items.id).sync_key)
        assert [i.fields["Email.Subject"] for i in copy.added] == ["Überweisung – danke"]
        assert copy.added[0].fields["Email.Read"] == "1"
    with pyas_client(pyas, server, session, recipient, "E2ESend02") as r:
        inbox = folder_of(r.list_folders(), 2)
        [got] = r.sync_folder(inbox.id, r.sync_folder(inbox.id).sync_key).added
        assert got.fields["Email.Subject"] == "Überweisung – danke"
        assert got.fields["Email.From"] == f"Sender <{sender}>"
        assert got.fields["AirSyncBase.Data"] == "Vielen Dank für die Überweisung!\r\n"
        assert got.fields["Email.Read"] == "0"
    with server.store() as store:
        [(who, to, _)] = store.outgoing(sender)
        assert (who, to) == (sender, [recipient])
    check_session(session)


def test_pyactivesync_folders(server: Server, pyas: Any) -> None:
    """FolderCreate (also beneath a new folder), FolderUpdate (rename), FolderDelete, each
    reaching the store; a duplicate name, an unknown folder and a special folder get
    their statuses (MS-ASCMD 2.2.3.177.2-4) and change nothing."""
    user = "folders@example.com"
    server.add_user(user)
    session = pyas_session("pyactivesync-folders")
    with pyas_client(pyas, server, session, user, "E2EFold01") as c:
        inbox = folder_of(c.list_folders(), 2)
        projects = c.create_folder("Projects", type=user_mail(pyas))
        child = c.create_folder("2025", parent_id=projects.id, type=user_mail(pyas))
        c.update_folder(projects.id, "Projekte")
        listed = {f.name: (f.id, f.parent_id, int(f.type)) for f in c.list_folders()}
        assert listed["Projekte"] == (projects.id, "0", 12) and "Projects" not in listed
        assert listed["2025"] == (child.id, projects.id, 12)

        with pytest.raises(pyas.StatusError) as refused:
            c.create_folder("Projekte", type=user_mail(pyas))
        assert refused.value.code == "2"  # a folder of that name exists
        with pytest.raises(pyas.StatusError) as refused:
            c.update_folder("424242", "Nowhere")
        assert refused.value.code == "4"  # no such folder
        with pytest.raises(pyas.StatusError) as refused:
            c.delete_folder(inbox.id)
        assert refused.value.code == "3"  # a special folder

        c.delete_folder(projects.id)  # and its subfolder with it
        listed = {f.name for f in c.list_folders()}
        assert "Projekte" not in listed and "2025" not in listed and "Inbox" in listed
    with server.store() as store:
        names = sorted(f.name for f in run(store.folders(user)))
    assert names == sorted(["Inbox", "Drafts", "Deleted Items", "Sent Items", "Outbox", "Calendar", "Contacts",
                            "Tasks", "Notes"])
    check_session(session)


def test_pyactivesync_ping_woken_by_delivery(server: Server, pyas: Any) -> None:
    """A Ping held by the server returns status 2 naming the Inbox as soon as ``eas mail
    deliver`` puts mail there from another process; the next Sync brings it."""
    user = "ping@example.com"
    server.add_user(user)
    server.deliver(user, mail(PLAIN, user))
    session = pyas_session("pyactivesync-ping")
    with pyas_client(pyas, server, session, user, "E2EPing01") as c:
        inbox = folder_of(c.list_folders(), 2)
        key = c.sync_folder(inbox.id, c.sync_folder(inbox.id).sync_key).sync_key
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            ping = pool.submit(c.ping, inbox.id, heartbeat=300, timeout=WAIT)
            time.sleep(1.0)
            assert not ping.done(), "the Ping returned before anything changed"
            started = time.monotonic()
            server.deliver(user, mail(HTML, user))
            result = ping.result(WAIT)
        assert time.monotonic() - started < 5
        assert (result.status, result.changed_folder_ids) == ("2", [inbox.id])
        assert [i.fields["Email.Subject"] for i in c.sync_folder(inbox.id, key).added] == ["Quarterly report"]
    check_session(session)


def test_pyactivesync_oof(server: Server, pyas: Any) -> None:
    """Settings Oof: off at first, on with one message for every audience, scheduled with
    its window, off again; each Get shows what the last Set stored, and a window only
    while the state is 2."""
    user = "oof@example.com"
    server.add_user(user)
    session = pyas_session("pyactivesync-oof")
    state = pyas.OofState
    with pyas_client(pyas, server, session, user, "E2EOof01") as c:
        first = c.get_oof()
        assert first.state == state.DISABLED and not any(m.enabled for m in first.messages)
        c.set_oof(state.ENABLED, reply_message="Bin im Urlaub – zurück am Montag.")
        on = c.get_oof()
        assert on.state == state.ENABLED
        assert {(m.applies_to, m.enabled, m.reply_message) for m in on.messages} == {
            (scope, True, "Bin im Urlaub – zurück am Montag.") for scope in ("Internal", "ExternalKnown",
                                                                             "ExternalUnknown")}
        c.set_oof(state.ENABLED_SCHEDULED, start_time="2030-06-01T00:00:00.000Z", end_time="2030-06-15T00:00:00.000Z",
                  reply_message="Away in June", applies_to=("Internal",))
        scheduled = c.get_oof()
        assert (scheduled.state, scheduled.start_time, scheduled.end_time) == (
            state.ENABLED_SCHEDULED, "2030-06-01T00:00:00.000Z", "2030-06-15T00:00:00.000Z")
        internal = next(m for m in scheduled.messages if m.applies_to == "Internal")
        assert (internal.enabled, internal.reply_message) == (True, "Away in June")
        c.set_oof(state.DISABLED)
        off = c.get_oof()
        # MS-ASCMD 2.2.3.124: "The OofState element value MUST be set to 2 if the
        # StartTime and EndTime elements are present": a disabled Oof has no window.
        assert (off.state, off.start_time, off.end_time) == (state.DISABLED, None, None)
    check_session(session)


# -- Our own client, for the versions pyactivesync does not speak ------------------------------

_SYNC_OPTIONS = {
    "2.5": "<Options><FilterType>0</FilterType><Truncation>9</Truncation><Conflict>1</Conflict></Options>",
    "12.1": '<Options><FilterType>0</FilterType><BodyPreference xmlns="AirSyncBase:"><Type>1</Type>'
            "<TruncationSize>200</TruncationSize></BodyPreference></Options>",
    "14.1": '<Options><FilterType>0</FilterType><BodyPreference xmlns="AirSyncBase:"><Type>2</Type>'
            "</BodyPreference></Options>",
}


def https(server: Server) -> HTTPTransport:
    """The test client's transport to the server, trusting its certificate only; a request
    (a held Ping included) gives up after ``WAIT`` seconds."""
    transport = http(server.port, server.cert)
    transport.timeout = WAIT
    return transport


def _sync(version: str, inbox: str, key: str, options: bool) -> str:
    klass = "<Class>Email</Class>" if version in ("2.5", "12.1") else ""
    extra = f"<DeletesAsMoves/><GetChanges/><WindowSize>10</WindowSize>{_SYNC_OPTIONS[version]}" if options else ""
    return (f'<Sync xmlns="AirSync:"><Collections><Collection>{klass}<SyncKey>{key}</SyncKey>'
            f"<CollectionId>{inbox}</CollectionId>{extra}</Collection></Collections></Sync>")


def _adds(reply: Reply) -> list[Node]:
    assert reply.status == 200 and reply.node is not None, reply
    collection = reply.node.find(AirSync.Collections, AirSync.Collection)
    assert collection is not None and collection.findtext(AirSync.Status) == "1", reply.xml
    commands = collection.find(AirSync.Commands)
    return commands.findall(AirSync.Add) if commands is not None else []


@pytest.mark.parametrize("version", ["2.5", "12.1", "14.1"])
def test_own_client_over_https(server: Server, version: str) -> None:
    """Provision, FolderSync, Sync of delivered mail and a Ping woken by delivery, in the
    version's own dialect, through eas.testing.client over real HTTPS."""
    user = f"v{version.replace('.', '')}@example.com"
    server.add_user(user)
    server.deliver(user, mail(GREETING, user))
    session = Session(f"own-client-{version}", "eas.testing.client", version)
    transport = session.transport(https(server))
    c = Client(transport, user, PASSWORD, device_id=f"E2EOwn{version.replace('.', '')}", device_type="E2ETest",
               version=version)

    async def scenario() -> None:
        await c.provision()
        r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
        assert r.status == 200 and r.text(FH.Status) == "1", r
        changes = r.node.find(FH.Changes) if r.node is not None else None
        assert changes is not None, r.xml
        inbox = next(a.findtext(FH.ServerId) for a in changes.findall(FH.Add) if a.findtext(FH.Type) == "2")
        assert isinstance(inbox, str)

        r = await c.command("Sync", _sync(version, inbox, "0", options=False))
        key = r.text(AirSync.Collections, AirSync.Collection, AirSync.SyncKey)
        assert r.status == 200 and key not in (None, "0") and not _adds(r), r
        r = await c.command("Sync", _sync(version, inbox, str(key), options=True))
        [add] = _adds(r)
        data = add.find(AirSync.ApplicationData)
        assert data is not None and data.findtext(Email.Subject) == GREETING_SUBJECT
        if version == "2.5":
            assert data.findtext(Email.Body) == GREETING_BODY
        else:
            body = data.find(AirSyncBase.Body)
            assert body is not None
            want = "1" if version == "12.1" else "2"
            assert body.findtext(AirSyncBase.Type) == want
            assert GREETING_BODY.strip() in str(body.findtext(AirSyncBase.Data))
        key = r.text(AirSync.Collections, AirSync.Collection, AirSync.SyncKey)

        ping = asyncio.ensure_future(c.command(
            "Ping", '<Ping xmlns="Ping:"><HeartbeatInterval>300</HeartbeatInterval><Folders><Folder>'
                    f"<Id>{inbox}</Id><Class>Email</Class></Folder></Folders></Ping>"))
        await asyncio.sleep(0.7)
        assert not ping.done(), "the Ping returned before anything changed"
        await asyncio.to_thread(server.deliver, user, mail(PLAIN, user))
        woken = await asyncio.wait_for(ping, WAIT)
        assert woken.text(Ping.Status) == "2", woken.xml
        folders = woken.node.find(Ping.Folders) if woken.node is not None else None
        assert folders is not None and [f.text for f in folders.findall(Ping.Folder)] == [inbox]
        r = await c.command("Sync", _sync(version, inbox, str(key), options=True))
        assert [a.find(AirSync.ApplicationData).findtext(Email.Subject) for a in _adds(r)] == ["Lunch?"]

    run(scenario())
    check_session(session)


def test_own_client_oof_window_kept_only_when_scheduled(server: Server) -> None:
    """Settings Oof Set with OofState 1 and a StartTime/EndTime: success, but the window
    is not stored (MS-ASCMD 2.2.3.124), so the Get after it has none."""
    user = "oofwindow@example.com"
    server.add_user(user)
    session = Session("own-client-oof-window", "eas.testing.client", "14.1")
    c = Client(session.transport(https(server)), user, PASSWORD, device_id="E2EOofWin141",
               device_type="E2ETest", version="14.1")
    window = "<StartTime>2030-06-01T00:00:00.000Z</StartTime><EndTime>2030-06-15T00:00:00.000Z</EndTime>"

    async def scenario() -> Reply:
        await c.provision()
        r = await c.command("Settings", f'<Settings xmlns="Settings:"><Oof><Set><OofState>1</OofState>{window}'
                                        "<OofMessage><AppliesToInternal/><Enabled>1</Enabled>"
                                        "<ReplyMessage>Away</ReplyMessage><BodyType>Text</BodyType></OofMessage>"
                                        "</Set></Oof></Settings>")
        assert r.status == 200 and r.text(tags.Settings.Oof, tags.Settings.Status) == "1", r.xml
        return await c.command("Settings", '<Settings xmlns="Settings:"><Oof><Get><BodyType>Text</BodyType></Get>'
                                           "</Oof></Settings>")

    got = run(scenario())
    oof = got.node.find(tags.Settings.Oof, tags.Settings.Get) if got.node is not None else None
    assert oof is not None, got.xml
    assert oof.findtext(tags.Settings.OofState) == "1"
    assert oof.find(tags.Settings.StartTime) is None and oof.find(tags.Settings.EndTime) is None, got.xml
    check_session(session)

"""Autodiscover over real HTTP: the ASGI app under uvicorn on 127.0.0.1, raw requests with
``http.client``, answers read with lxml as a client would."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree
from test_adapters import basic, uvicorn_server

from eas.asgi import ASGIApp
from eas.backend import UserInformation
from eas.config import Config
from eas.core import ActiveSync
from eas.store import ReferenceStore
from eas.testing.harness import USERS, make_app

pytestmark = pytest.mark.kernel_independent  # no WBXML on this path

ALICE, ALICE_PW = USERS[0]
BOB = USERS[1][0]
MOBILESYNC = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
OUTLOOK = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
ROOT = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"
M = {"a": ROOT, "m": MOBILESYNC, "o": OUTLOOK}


def request_xml(email: str = ALICE, schema: str = MOBILESYNC, ns: str = REQUEST_NS) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{ns}"><Request>'
            f"<EMailAddress>{email}</EMailAddress><AcceptableResponseSchema>{schema}"
            "</AcceptableResponseSchema></Request></Autodiscover>").encode()


@dataclass
class Server:
    port: int
    activesync: ActiveSync
    store: ReferenceStore

    def call(self, method: str, target: str, body: bytes | None = None, *, auth: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            sent = dict(headers or {})
            if auth is not None:
                sent["Authorization"] = auth
            if body is not None:
                sent.setdefault("Content-Type", "text/xml")
            conn.request(method, target, body=body, headers=sent)
            answer = conn.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            conn.close()

    def post(self, body: bytes, *, auth: str | None = None, path: str = "/Autodiscover/Autodiscover.xml",
             headers: dict[str, str] | None = None) -> tuple[int, etree._Element]:
        status, _, data = self.call("POST", path, body, auth=basic() if auth is None else auth, headers=headers)
        return status, etree.fromstring(data)


class AliasStore(ReferenceStore):
    """The reference store, with alice also known as ali@example.org (the store itself has
    no aliases; an embedding server's directory does)."""

    async def user_information(self, user: str) -> UserInformation:
        info = await super().user_information(user)
        if user == ALICE:
            info.emails.append("Ali@Example.org")
        return info


@contextmanager
def serving(tmp_path: Path, config: Config | None = None) -> Iterator[Server]:
    activesync, store = make_app(tmp_path, config=config)
    store.set_display_name(ALICE, "Alice Liddell")
    try:
        with uvicorn_server(ASGIApp(activesync)) as port:
            yield Server(port, activesync, store)
    finally:
        store.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("autodiscover")) as running:
        yield running


def error_code(root: etree._Element) -> str | None:
    return root.findtext("a:Response/a:Error/a:ErrorCode", namespaces=M)


# -- the mobilesync answer -------------------------------------------------------------------


def test_settings_name_the_activesync_url(served: Server) -> None:
    status, root = served.post(request_xml())
    assert status == 200
    assert etree.QName(root).namespace == ROOT
    response = root.find("m:Response", M)
    assert response is not None
    assert response.findtext("m:User/m:EMailAddress", namespaces=M) == ALICE
    assert response.findtext("m:User/m:DisplayName", namespaces=M) == "Alice Liddell"
    server = response.find("m:Action/m:Settings/m:Server", M)
    assert server is not None
    url = f"https://127.0.0.1:{served.port}/Microsoft-Server-ActiveSync"
    assert server.findtext("m:Type", namespaces=M) == "MobileSync"
    assert server.findtext("m:Url", namespaces=M) == url
    assert server.findtext("m:Name", namespaces=M) == url


@pytest.mark.parametrize("path", ["/autodiscover/autodiscover.xml", "/AutoDiscover/AUTODISCOVER.XML",
                                  "/Autodiscover/Autodiscover.xml/"])
def test_path_in_any_case(served: Server, path: str) -> None:
    status, root = served.post(request_xml(), path=path)
    assert status == 200 and root.find("m:Response/m:Action/m:Settings", M) is not None


def test_address_in_another_case_is_the_same_account(served: Server) -> None:
    _, root = served.post(request_xml("ALICE@Example.COM"))
    assert root.find("m:Response/m:Action/m:Settings", M) is not None


def test_outlook_schema_gets_the_mobilesync_settings(served: Server) -> None:
    outlook_ns = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
    status, root = served.post(request_xml(schema=OUTLOOK, ns=outlook_ns))
    assert status == 200
    assert root.findtext("m:Response/m:Action/m:Settings/m:Server/m:Type", namespaces=M) == "MobileSync"


# -- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["", "Basic " + "!!!", basic(ALICE, "wrong"), basic("nobody@example.com", "x")])
def test_missing_or_wrong_credentials_get_401(served: Server, auth: str) -> None:
    status, headers, body = served.call("POST", "/autodiscover/autodiscover.xml", request_xml(),
                                        auth=auth or None)
    assert status == 401
    assert headers["www-authenticate"].startswith("Basic")
    assert b"MobileSync" not in body


def test_another_users_address_gets_the_error_form(served: Server) -> None:
    status, root = served.post(request_xml(BOB))
    assert status == 200
    error = root.find("m:Response/m:Action/m:Error", M)
    assert error is not None and error.findtext("m:Status", namespaces=M) == "2"
    assert root.find(".//m:Settings", M) is None


def test_another_users_address_in_the_outlook_form(served: Server) -> None:
    _, root = served.post(request_xml(BOB, schema=OUTLOOK))
    assert root.findtext("o:Response/o:Error/o:ErrorCode", namespaces=M) == "500"
    assert root.find(".//m:Settings", M) is None


def test_an_alias_is_the_same_account(tmp_path: Path) -> None:
    activesync, store = make_app(tmp_path)
    store.close()
    alias_store = AliasStore(tmp_path / "mail.db")
    activesync = ActiveSync(alias_store, activesync.store, authenticate=alias_store.authenticate)
    try:
        with uvicorn_server(ASGIApp(activesync)) as port:
            s = Server(port, activesync, alias_store)
            _, root = s.post(request_xml("ali@example.org"))
            assert root.findtext("m:Response/m:User/m:EMailAddress", namespaces=M) == "ali@example.org"
            assert root.find("m:Response/m:Action/m:Settings/m:Server", M) is not None
            _, root = s.post(request_xml("ali@example.com"))
            assert root.find("m:Response/m:Action/m:Error", M) is not None
    finally:
        alias_store.close()


# -- errors --------------------------------------------------------------------------------


def test_unknown_response_schema_is_601(served: Server) -> None:
    status, root = served.post(request_xml(schema="http://example.com/other"))
    assert status == 200 and error_code(root) == "601"


BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                             for i in range(1, 10))
                  + b"]><Autodiscover><Request><EMailAddress>&lol9;</EMailAddress><AcceptableResponseSchema>"
                  + MOBILESYNC.encode() + b"</AcceptableResponseSchema></Request></Autodiscover>")
XXE = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><Autodiscover><Request>'
       b"<EMailAddress>alice@example.com&x;</EMailAddress><AcceptableResponseSchema>"
       + MOBILESYNC.encode() + b"</AcceptableResponseSchema></Request></Autodiscover>")


@pytest.mark.parametrize("body", [
    b"not xml at all", b"<Autodiscover>", b"\xff\xfe\x00<", b"<Other/>", b"<Autodiscover/>",
    request_xml("not-an-address"), request_xml(""), request_xml("a@b@example.com"),
    request_xml("alice@example.com</EMailAddress><EMailAddress>bob@example.com"),
    request_xml(schema=""), BILLION_LAUGHS, XXE,
    request_xml(("x" * 70_000) + "@example.com"),
], ids=["garbage", "unclosed", "binary", "other-root", "empty", "bad-address", "no-address", "two-ats",
        "two-addresses", "no-schema", "billion-laughs", "xxe", "oversized"])
def test_malformed_requests_get_600(served: Server, body: bytes) -> None:
    status, _, data = served.call("POST", "/autodiscover/autodiscover.xml", body, auth=basic())
    assert status == 200
    root = etree.fromstring(data)
    assert error_code(root) == "600"
    assert b"root:" not in data and b"lollol" not in data


def test_empty_body_is_600(served: Server) -> None:
    status, _, data = served.call("POST", "/autodiscover/autodiscover.xml", b"", auth=basic())
    assert status == 200 and error_code(etree.fromstring(data)) == "600"


def test_hostile_host_header_is_600(served: Server) -> None:
    _, root = served.post(request_xml(), headers={"Host": "evil.example/<x>"})
    assert error_code(root) == "600"


def test_get_without_redirect_is_the_error_form_after_authentication(served: Server) -> None:
    assert served.call("GET", "/autodiscover/autodiscover.xml")[0] == 401
    status, _, data = served.call("GET", "/autodiscover/autodiscover.xml", auth=basic())
    assert status == 200 and error_code(etree.fromstring(data)) == "600"


def test_other_methods_and_paths(served: Server) -> None:
    assert served.call("PUT", "/autodiscover/autodiscover.xml", b"x", auth=basic())[0] == 405
    assert served.call("POST", "/autodiscover/other.xml", request_xml(), auth=basic())[0] == 404
    assert served.call("POST", "/autodiscover/autodiscover.json?Email=a@b.c&Protocol=ActiveSync", b"")[0] == 405


def test_nothing_is_stored_by_autodiscover(served: Server) -> None:
    import asyncio

    served.post(request_xml())
    assert asyncio.run(served.activesync.store.list_devices()) == []


# -- configuration: public URL, proxies, redirects --------------------------------------------


def test_public_url_from_config(tmp_path: Path) -> None:
    public = "https://mail.example.com/Microsoft-Server-ActiveSync"
    with serving(tmp_path, Config(public_url=public)) as s:
        _, root = s.post(request_xml())
        assert root.findtext("m:Response/m:Action/m:Settings/m:Server/m:Url", namespaces=M) == public
        status, _, data = s.call("GET", "/autodiscover/autodiscover.json?Email=alice@example.com&Protocol=ActiveSync")
        assert status == 200 and json.loads(data) == {"Protocol": "ActiveSync", "Url": public}


@pytest.mark.parametrize(("trusted", "scheme"), [(False, "https"), (True, "http")])
def test_forwarded_proto_only_from_a_trusted_proxy(tmp_path: Path, trusted: bool, scheme: str) -> None:
    with serving(tmp_path, Config(trust_forwarded_proto=trusted)) as s:
        _, root = s.post(request_xml(), headers={"Host": "mail.example.com", "X-Forwarded-Proto": "http"})
        url = root.findtext("m:Response/m:Action/m:Settings/m:Server/m:Url", namespaces=M)
        assert url == f"{scheme}://mail.example.com/Microsoft-Server-ActiveSync"


def test_redirects_for_domains_served_elsewhere(tmp_path: Path) -> None:
    redirects = {"example.net": "https://ad.example.net/autodiscover/autodiscover.xml", "old.example": "example.com"}
    with serving(tmp_path, Config(autodiscover_redirects=redirects)) as s:
        # Another server: Outlook's redirectUrl, an HTTP 302 in the mobilesync schema.
        _, root = s.post(request_xml("carol@example.net", schema=OUTLOOK))
        account = root.find("o:Response/o:Account", M)
        assert account is not None
        assert account.findtext("o:Action", namespaces=M) == "redirectUrl"
        assert account.findtext("o:RedirectUrl", namespaces=M) == redirects["example.net"]
        status, headers, _ = s.call("POST", "/autodiscover/autodiscover.xml", request_xml("carol@example.net"),
                                    auth=basic())
        assert status == 302 and headers["location"] == redirects["example.net"]
        # Another address: Redirect (mobilesync) and redirectAddr (Outlook).
        _, root = s.post(request_xml("alice@old.example"))
        assert root.findtext("m:Response/m:Action/m:Redirect", namespaces=M) == "alice@example.com"
        _, root = s.post(request_xml("alice@Old.Example", schema=OUTLOOK))
        assert root.findtext("o:Response/o:Account/o:Action", namespaces=M) == "redirectAddr"
        assert root.findtext("o:Response/o:Account/o:RedirectAddr", namespaces=M) == "alice@example.com"
        # The JSON endpoint follows the same configuration.
        status, headers, _ = s.call("GET", "/autodiscover/autodiscover.json?Email=carol@example.net&Protocol=ActiveSync")
        assert status == 302
        assert headers["location"] == ("https://ad.example.net/autodiscover/autodiscover.json"
                                       "?Email=carol%40example.net&Protocol=ActiveSync")
        status, headers, _ = s.call("GET", "/autodiscover/autodiscover.json/v1.0/alice@old.example?Protocol=ActiveSync")
        assert status == 302 and "Email=alice%40example.com" in headers["location"]


def test_get_redirect_to_https(tmp_path: Path) -> None:
    target = "https://mail.example.com/autodiscover/autodiscover.xml"
    with serving(tmp_path, Config(autodiscover_get_redirect=target)) as s:
        status, headers, _ = s.call("GET", "/autodiscover/autodiscover.xml",
                                    headers={"Host": "autodiscover.example.com"})
        assert status == 302 and headers["location"] == target
        # A POST is still answered here.
        _, root = s.post(request_xml())
        assert root.find("m:Response/m:Action/m:Settings", M) is not None


# -- autodiscover.json -----------------------------------------------------------------------


@pytest.mark.parametrize("target", [
    "/autodiscover/autodiscover.json?Email=alice@example.com&Protocol=ActiveSync",
    "/autodiscover/autodiscover.json?Email=alice%40example.com&Protocol=ActiveSync&RedirectCount=1",
    "/Autodiscover/Autodiscover.json/v1.0/alice@example.com?Protocol=ActiveSync",
    "/autodiscover/autodiscover.json/v1.0/someone@elsewhere.example?protocol=activesync",
])
def test_json_gives_the_activesync_url(served: Server, target: str) -> None:
    status, headers, data = served.call("GET", target, headers={"Host": "mail.example.com"})
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert json.loads(data) == {"Protocol": "ActiveSync", "Url": "https://mail.example.com/Microsoft-Server-ActiveSync"}


def test_json_autodiscover_v1(served: Server) -> None:
    status, _, data = served.call("GET", "/autodiscover/autodiscover.json/v1.0/alice@example.com?Protocol=AutodiscoverV1",
                                  headers={"Host": "mail.example.com:8443"})
    assert status == 200
    assert json.loads(data) == {"Protocol": "AutodiscoverV1",
                                "Url": "https://mail.example.com:8443/autodiscover/autodiscover.xml"}


@pytest.mark.parametrize(("target", "code"), [
    ("/autodiscover/autodiscover.json?Email=alice@example.com&Protocol=Ews", "InvalidProtocol"),
    ("/autodiscover/autodiscover.json?Email=alice@example.com", "InvalidProtocol"),
    ("/autodiscover/autodiscover.json?Protocol=ActiveSync", "InvalidUser"),
    ("/autodiscover/autodiscover.json?Email=%3Cscript%3E&Protocol=ActiveSync", "InvalidUser"),
    ("/autodiscover/autodiscover.json/v1.0/a/b@example.com?Protocol=ActiveSync", "InvalidUser"),
    ("/autodiscover/autodiscover.json?Email=alice@example.com&Protocol=ActiveSync" + "&x=1" * 40, "InvalidRequest"),
])
def test_json_errors(served: Server, target: str, code: str) -> None:
    status, _, data = served.call("GET", target)
    assert status == 400
    assert json.loads(data)["ErrorCode"] == code


# -- eas serve flags -------------------------------------------------------------------------


def test_serve_flags_reach_autodiscover(tmp_path: Path) -> None:
    import subprocess
    import sys

    from test_cli_server import _env, eas, serving

    data = tmp_path / "data"
    assert eas("user", "add", ALICE, "--password", ALICE_PW, data_dir=data).returncode == 0
    public = "https://mail.example.com/Microsoft-Server-ActiveSync"
    with serving(data, "--no-tls", "--public-url", public, "--autodiscover-redirect", "Old.Example=example.com",
                 "--autodiscover-get-redirect", "https://mail.example.com/autodiscover/autodiscover.xml") as running:
        s = Server(running.port, None, None)  # type: ignore[arg-type]
        _, root = s.post(request_xml())
        assert root.findtext("m:Response/m:Action/m:Settings/m:Server/m:Url", namespaces=M) == public
        _, root = s.post(request_xml("alice@old.example"))
        assert root.findtext("m:Response/m:Action/m:Redirect", namespaces=M) == "alice@example.com"
        status, headers, _ = s.call("GET", "/autodiscover/autodiscover.xml")
        assert status == 302 and headers["location"] == "https://mail.example.com/autodiscover/autodiscover.xml"
    for args, message in [(("--public-url", "mail.example.com"), b"--public-url needs an http(s) URL"),
                          (("--autodiscover-redirect", "example.net"), b"--autodiscover-redirect needs"),
                          (("--autodiscover-redirect", "a.example=ftp://x"), b"--autodiscover-redirect needs")]:
        r = subprocess.run([sys.executable, "-m", "eas", "serve", "--no-tls", "--data-dir", str(data), *args],
                           check=False, capture_output=True, env=_env("c"), timeout=30)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
    r = subprocess.run([sys.executable, "-m", "eas", "serve", "--no-tls", "--data-dir", str(data),
                        "--trust-store", str(tmp_path / "none.pem")],
                       check=False, capture_output=True, env=_env("c"), timeout=30)
    assert r.returncode == 1 and b"none.pem" in r.stderr


def test_the_wsgi_adapter_routes_autodiscover_too(tmp_path: Path) -> None:
    from test_adapters import wsgiref_server

    from eas.wsgi import WSGIApp

    activesync, store = make_app(tmp_path)
    try:
        with wsgiref_server(WSGIApp(activesync)) as port:
            s = Server(port, activesync, store)
            _, root = s.post(request_xml(), headers={"Host": "mail.example.com"})
            url = root.findtext("m:Response/m:Action/m:Settings/m:Server/m:Url", namespaces=M)
            assert url == "https://mail.example.com/Microsoft-Server-ActiveSync"
            status, _, data = s.call("GET", "/autodiscover/autodiscover.json/v1.0/alice@example.com?Protocol=ActiveSync",
                                     headers={"Host": "mail.example.com"})
            assert status == 200 and json.loads(data)["Url"] == url
            assert s.call("POST", "/autodiscover/autodiscover.xml", request_xml())[0] == 401
    finally:
        store.close()

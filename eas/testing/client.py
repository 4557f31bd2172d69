"""A small ActiveSync client for tests: it writes requests from XML (the ``to_xml``
view, namespaces ``AirSync:`` ...), sends them and decodes the answer.

``InProcess(app)`` calls ``ActiveSync.handle`` directly; ``HTTPTransport(url)`` goes over
real HTTP. Both return an ``HTTPResponse``.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import http.client
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from eas import tags
from eas.protocol.http import WBXML_CONTENT_TYPE, HTTPRequest, HTTPResponse
from eas.wbxml import Node, decode, from_xml, to_xml

Transport = Callable[[HTTPRequest], Awaitable[HTTPResponse]]


class InProcess:
    """Sends requests straight to an ``ActiveSync`` object's ``handle``."""

    def __init__(self, app: object) -> None:
        self.app = app

    async def __call__(self, request: HTTPRequest) -> HTTPResponse:
        return await self.app.handle(request)  # type: ignore[attr-defined,no-any-return]


class HTTPTransport:
    """Sends requests over real HTTP(S) to ``base_url`` (``http://127.0.0.1:8080``, or
    with a path prefix that goes before the request's path). One connection per request,
    made with the stdlib ``http.client`` in a worker thread. ``verify=False`` accepts any
    certificate (a test server's self-signed one)."""

    def __init__(self, base_url: str, *, verify: bool = True, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.ssl_context: ssl.SSLContext | None = None
        if self.https:
            self.ssl_context = ssl.create_default_context()
            if not verify:
                self.ssl_context.check_hostname = False
                self.ssl_context.verify_mode = ssl.CERT_NONE

    async def __call__(self, request: HTTPRequest) -> HTTPResponse:
        return await asyncio.to_thread(self.send, request)

    def send(self, request: HTTPRequest) -> HTTPResponse:
        """The blocking exchange (also usable from threads without a loop)."""
        conn: http.client.HTTPConnection
        if self.https:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        target = self.prefix + request.path + (f"?{request.query}" if request.query else "")
        try:
            conn.putrequest(request.method, target, skip_accept_encoding=True)
            for name, value in request.headers:
                conn.putheader(name, value)
            if request.body or request.method == "POST":
                conn.putheader("content-length", str(len(request.body)))
            conn.endheaders(request.body or None)
            answer = conn.getresponse()
            body = answer.read()
            return HTTPResponse(answer.status, list(answer.getheaders()), body)
        finally:
            conn.close()


def elements_outside(node: Node, version: str) -> list[str]:
    """Names of the elements in ``node`` that protocol ``version`` does not have: a
    server must never send one (MS-ASWBXML lists each tag's versions)."""
    found: list[str] = []
    stack = [node]
    while stack:
        n = stack.pop()
        info = tags.BY_TAG.get(n.tag)
        if info is None or version not in info.versions:
            found.append(tags.name(n.tag))
        stack.extend(n.children)
    return found


@dataclass
class Reply:
    """A response: HTTP status, headers (lower-case names) and the decoded body."""

    status: int
    headers: dict[str, str]
    body: bytes
    node: Node | None

    @property
    def xml(self) -> str:
        return to_xml(self.node) if self.node is not None else ""

    def text(self, *path: int) -> str | None:
        """``findtext`` on the decoded body (its root is the first tag of ``path``'s parent)."""
        if self.node is None:
            return None
        value = self.node.findtext(*path)
        return value if value is None or isinstance(value, str) else value.decode()


@dataclass
class Client:
    """One device of one user. ``policy_key`` is sent once known."""

    transport: Transport
    user: str
    password: str
    device_id: str = "TestDevice0001"
    device_type: str = "TestPhone"
    version: str = "16.1"
    policy_key: int | None = None
    path: str = "/Microsoft-Server-ActiveSync"
    user_agent: str = "eas-testing/1.0"
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    check_versions: bool = True  # every response is checked for elements the version lacks

    def _auth(self) -> tuple[str, str]:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return ("authorization", f"Basic {token}")

    async def raw(self, command: str, body: bytes = b"", *, params: dict[str, str] | None = None,
                  headers: list[tuple[str, str]] | None = None, content_type: str = WBXML_CONTENT_TYPE) -> Reply:
        """POST ``body`` as ``command``; the reply is decoded when it is WBXML."""
        query = urlencode({"Cmd": command, "User": self.user, "DeviceId": self.device_id,
                           "DeviceType": self.device_type, **(params or {})})
        hdrs = [self._auth(), ("ms-asprotocolversion", self.version), ("user-agent", self.user_agent),
                *self.extra_headers, *(headers or [])]
        if body:
            hdrs.append(("content-type", content_type))
        if self.policy_key is not None:
            hdrs.append(("x-ms-policykey", str(self.policy_key)))
        return await self.send(HTTPRequest("POST", self.path, query, hdrs, body, "127.0.0.1"))

    async def send(self, request: HTTPRequest) -> Reply:
        response = await self.transport(request)
        headers = {k.lower(): v for k, v in response.headers}
        node = None
        body = response.body
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if body and headers.get("content-type", "").startswith(WBXML_CONTENT_TYPE):
            node = decode(body)
            if self.check_versions:
                outside = elements_outside(node, self.version)
                assert not outside, f"elements not in protocol {self.version}: {outside}"
        return Reply(response.status, headers, response.body, node)

    async def command(self, command: str, xml: str | None = None, **kw: object) -> Reply:
        """``command`` with a body given as XML (None: empty body)."""
        return await self.raw(command, from_xml(xml) if xml else b"", **kw)  # type: ignore[arg-type]

    async def options(self) -> Reply:
        return await self.send(HTTPRequest("OPTIONS", self.path, "", [self._auth()], b"", "127.0.0.1"))

    async def provision(self) -> int:
        """Both phases of Provision (MS-ASPROV 3.1.5.1); sets and returns the policy key."""
        from eas.tags import Provision as P

        policy_type = "MS-EAS-Provisioning-WBXML" if self.version != "2.5" else "MS-WAP-Provisioning-XML"
        self.policy_key = None
        device_info = ""
        if self.version in ("14.1", "16.0", "16.1"):
            device_info = ('<Set xmlns="Settings:"><Model>TestModel</Model><OS>TestOS 1</OS>'
                           '<UserAgent>eas-testing/1.0</UserAgent></Set>')
            device_info = f'<DeviceInformation xmlns="Settings:">{device_info}</DeviceInformation>'
        first = await self.command("Provision", f'<Provision xmlns="Provision:">{device_info}<Policies><Policy>'
                                                f"<PolicyType>{policy_type}</PolicyType></Policy></Policies></Provision>")
        temporary = first.text(P.Policies, P.Policy, P.PolicyKey)
        assert first.status == 200 and temporary, first
        second = await self.command("Provision", f'<Provision xmlns="Provision:"><Policies><Policy>'
                                                 f"<PolicyType>{policy_type}</PolicyType>"
                                                 f"<PolicyKey>{temporary}</PolicyKey><Status>1</Status>"
                                                 f"</Policy></Policies></Provision>")
        final = second.text(P.Policies, P.Policy, P.PolicyKey)
        assert second.status == 200 and final, second
        self.policy_key = int(final)
        return self.policy_key

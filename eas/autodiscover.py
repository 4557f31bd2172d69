"""Autodiscover: how a phone finds the ActiveSync URL from an e-mail address.

- ``POST /autodiscover/autodiscover.xml`` (MS-ASCMD 2.2.1.1; the path in any case): the
  plain-XML request, authenticated like every EAS request, answered in the mobilesync
  response schema. Outlook's schema (MS-OXDSCLI) is accepted too; its settings form has
  no protocol type for ActiveSync (EXCH/EXPR would send Outlook to RPC/MAPI, which this
  server does not speak), so settings are answered in the mobilesync form, which Outlook
  2013 and later set up an EAS account from; its redirects and errors use its own form.
- ``GET /autodiscover/autodiscover.xml``: a 302 to ``Config.autodiscover_get_redirect``
  when set (the plain-HTTP probe of ``autodiscover.DOMAIN``), else the error form.
- ``GET /autodiscover/autodiscover.json?Email=..&Protocol=ActiveSync`` and
  ``/autodiscover/autodiscover.json/v1.0/{email}?Protocol=..`` (what Outlook mobile and
  the newer Outlook ask first): ``{"Protocol": .., "Url": ..}``, without credentials,
  as Exchange answers it; it names a URL and nothing about the account.

Errors are answered with HTTP 200 in the schema's Error form, as Exchange does: 600 for a
request that cannot be read, 601 for a response schema this server does not provide.
The XML parser resolves no entities, loads no DTD and touches no network; a request with
a DOCTYPE is refused outright (no Autodiscover client sends one).
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlsplit

from lxml import etree

from eas.backend import BackendError
from eas.protocol.http import HTTPRequest, HTTPResponse

if TYPE_CHECKING:
    from eas.core import ActiveSync

XML_PATH = "/autodiscover/autodiscover.xml"
JSON_PATH = "/autodiscover/autodiscover.json"
MAX_BODY = 64 * 1024  # a request is a few hundred bytes

ROOT_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
MOBILESYNC = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
OUTLOOK = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"

INVALID_REQUEST = 600
PROVIDER_NOT_AVAILABLE = 601
ADDRESS_NOT_FOUND = 500  # MS-OXDSCLI 2.2.4.1.1.3.2 (Outlook form)
MOBILESYNC_PROTOCOL_ERROR = 2  # MS-ASCMD 2.2.3.177.1

XML_TYPE = "text/xml; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"

# user@domain: no spaces or controls, one @, a domain of dot-separated labels.
_ADDRESS = re.compile(r"[^\s@<>\"\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)+")
# host[:port] or [v6]:port, as a Host header may carry them.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}"
                   r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                          huge_tree=False, remove_comments=True, remove_pis=True)


class Invalid(Exception):
    """The request cannot be read (error 600)."""


async def handle(server: ActiveSync, http: HTTPRequest) -> HTTPResponse:
    """Answer a request under ``/autodiscover/``. Authentication errors are raised (the
    core answers them with 401 and the challenge)."""
    path = http.path.lower().rstrip("/")
    if path == XML_PATH:
        if http.method == "POST":
            return await _post(server, http)
        if http.method == "GET":
            if server.config.autodiscover_get_redirect:
                return HTTPResponse(302, [("Location", server.config.autodiscover_get_redirect)], b"")
            await server._authenticate(http)  # the same hook and challenge as EAS
            return _root_error(INVALID_REQUEST, "Invalid Request")
        return HTTPResponse(405, [("Allow", "GET, POST")], b"")
    if path == JSON_PATH or path.startswith(JSON_PATH + "/v1.0/"):
        if http.method != "GET":
            return HTTPResponse(405, [("Allow", "GET")], b"")
        return _json(server, http)
    return HTTPResponse(404, [], b"")


# -- POST autodiscover.xml --------------------------------------------------------------

async def _post(server: ActiveSync, http: HTTPRequest) -> HTTPResponse:
    _, account = await server._authenticate(http)
    try:
        email, schema = _read_request(http.body)
    except Invalid:
        return _root_error(INVALID_REQUEST, "Invalid Request")
    if schema not in (MOBILESYNC, OUTLOOK):
        return _root_error(PROVIDER_NOT_AVAILABLE, "Provider is not available")
    redirect = _redirect(server, email)
    if redirect is not None:
        return _redirect_response(schema, email, redirect)
    try:
        info = await server.backend.user_information(account)
    except BackendError:
        return _user_error(schema, email, "The directory service could not be reached")
    addresses = {a.lower() for a in info.emails} | {account.lower()}
    if email.lower() not in addresses:
        return _user_error(schema, email, "The e-mail address does not belong to the signed-in account")
    try:
        url = eas_url(server, http)
    except Invalid:
        return _root_error(INVALID_REQUEST, "Invalid Request")
    return _settings(email, info.display_name, url)


def _read_request(body: bytes) -> tuple[str, str]:
    """``(EMailAddress, AcceptableResponseSchema)`` of a request body, or ``Invalid``.
    Element names are matched without their namespace: clients send the mobilesync or
    the Outlook request namespace, and some none."""
    if not body or len(body) > MAX_BODY:
        raise Invalid
    try:
        tree = etree.fromstring(body, _PARSER).getroottree()
    except (etree.XMLSyntaxError, ValueError):
        raise Invalid from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise Invalid
    root = tree.getroot()
    if etree.QName(root).localname != "Autodiscover":
        raise Invalid
    request = _child(root, "Request")
    if request is None:
        raise Invalid
    email = _text(_child(request, "EMailAddress"))
    schema = _text(_child(request, "AcceptableResponseSchema"))
    if not _ADDRESS.fullmatch(email) or len(email) > 320 or not schema:
        raise Invalid
    return email, schema


def _child(node: etree._Element, name: str) -> etree._Element | None:
    """The one child of that name; None when absent, ``Invalid`` when repeated."""
    found = [c for c in node if isinstance(c.tag, str) and etree.QName(c).localname == name]
    if len(found) > 1:
        raise Invalid
    return found[0] if found else None


def _text(node: etree._Element | None) -> str:
    if node is None or len(node):
        return ""
    return (node.text or "").strip()


def _redirect(server: ActiveSync, email: str) -> tuple[str, str] | None:
    """``("url", autodiscover URL)`` or ``("address", new address)`` for a domain the
    configuration says is served elsewhere."""
    local, _, domain = email.rpartition("@")
    target = server.config.autodiscover_redirects.get(domain.lower())
    if not target:
        return None
    if target.lower().startswith(("https://", "http://")):
        return "url", target
    return "address", f"{local}@{target}"


def eas_url(server: ActiveSync, http: HTTPRequest) -> str:
    """The ActiveSync URL to give out: ``Config.public_url``, else the request's Host with
    https (http only when a trusted proxy says so with X-Forwarded-Proto)."""
    config = server.config
    if config.public_url:
        return config.public_url
    host = (http.header("host") or "").strip()
    if not _HOST.fullmatch(host):
        raise Invalid
    scheme = "https"
    if config.trust_forwarded_proto:
        forwarded = (http.header("x-forwarded-proto") or "").split(",")[0].strip().lower()
        if forwarded in ("http", "https"):
            scheme = forwarded
    return f"{scheme}://{host.lower()}{config.path}"


# -- the XML answers ---------------------------------------------------------------------

def _document(response: etree._Element) -> HTTPResponse:
    root = etree.Element(f"{{{ROOT_NS}}}Autodiscover", nsmap={None: ROOT_NS})
    root.append(response)
    body = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return HTTPResponse(200, [("Content-Type", XML_TYPE)], body)


def _sub(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        element.text = text
    return element


def _response(ns: str) -> etree._Element:
    return etree.Element(f"{{{ns}}}Response", nsmap={None: ns})


def _error(parent: etree._Element, ns: str, code_element: str, code: int, message: str) -> None:
    error = _sub(parent, ns, "Error")
    if ns != MOBILESYNC:
        error.set("Time", time.strftime("%H:%M:%S", time.gmtime()))
        error.set("Id", "0")
    _sub(error, ns, code_element, str(code))
    _sub(error, ns, "Message", message)
    _sub(error, ns, "DebugData", "")


def _root_error(code: int, message: str) -> HTTPResponse:
    """The response schema's own Error form (600, 601)."""
    response = _response(ROOT_NS)
    _error(response, ROOT_NS, "ErrorCode", code, message)
    return _document(response)


def _user_error(schema: str, email: str, message: str) -> HTTPResponse:
    """An error about the address: mobilesync Action/Error Status 2, or Outlook's
    Error 500."""
    if schema == OUTLOOK:
        response = _response(OUTLOOK)
        _error(response, OUTLOOK, "ErrorCode", ADDRESS_NOT_FOUND, message)
        return _document(response)
    response = _response(MOBILESYNC)
    _sub(response, MOBILESYNC, "Culture", "en:us")
    _sub(_sub(response, MOBILESYNC, "User"), MOBILESYNC, "EMailAddress", email)
    _error(_sub(response, MOBILESYNC, "Action"), MOBILESYNC, "Status", MOBILESYNC_PROTOCOL_ERROR, message)
    return _document(response)


def _redirect_response(schema: str, email: str, redirect: tuple[str, str]) -> HTTPResponse:
    kind, target = redirect
    if schema == OUTLOOK:
        response = _response(OUTLOOK)
        account = _sub(response, OUTLOOK, "Account")
        if kind == "url":
            _sub(account, OUTLOOK, "Action", "redirectUrl")
            _sub(account, OUTLOOK, "RedirectUrl", target)
        else:
            _sub(account, OUTLOOK, "Action", "redirectAddr")
            _sub(account, OUTLOOK, "RedirectAddr", target)
        return _document(response)
    if kind == "url":  # mobilesync has no element for it: an HTTP redirect (MS-OXDSCLI 3.2.5)
        return HTTPResponse(302, [("Location", target)], b"")
    response = _response(MOBILESYNC)
    _sub(response, MOBILESYNC, "Culture", "en:us")
    _sub(_sub(response, MOBILESYNC, "User"), MOBILESYNC, "EMailAddress", email)
    _sub(_sub(response, MOBILESYNC, "Action"), MOBILESYNC, "Redirect", target)
    return _document(response)


def _settings(email: str, display_name: str, url: str) -> HTTPResponse:
    response = _response(MOBILESYNC)
    _sub(response, MOBILESYNC, "Culture", "en:us")
    user = _sub(response, MOBILESYNC, "User")
    if display_name:
        _sub(user, MOBILESYNC, "DisplayName", display_name)
    _sub(user, MOBILESYNC, "EMailAddress", email)
    server = _sub(_sub(_sub(response, MOBILESYNC, "Action"), MOBILESYNC, "Settings"), MOBILESYNC, "Server")
    _sub(server, MOBILESYNC, "Type", "MobileSync")
    _sub(server, MOBILESYNC, "Url", url)
    _sub(server, MOBILESYNC, "Name", url)
    return _document(response)


# -- GET autodiscover.json ---------------------------------------------------------------

def _json(server: ActiveSync, http: HTTPRequest) -> HTTPResponse:
    try:
        query = dict(parse_qsl(http.query, keep_blank_values=True, max_num_fields=16))
    except ValueError:
        return _json_error(400, "InvalidRequest", "The query string cannot be read")
    query = {k.lower(): v for k, v in query.items()}
    tail = http.path[len(JSON_PATH):].strip("/")
    if tail:  # v1.0/{email}; the path comes decoded, and one more '/' is not an address here
        parts = tail.split("/")
        email = parts[1] if len(parts) == 2 else ""
    else:
        email = query.get("email", "")
    protocol = query.get("protocol", "")
    if not _ADDRESS.fullmatch(email) or len(email) > 320:
        return _json_error(400, "InvalidUser", "The e-mail address is missing or not valid")
    if protocol.lower() not in ("activesync", "autodiscoverv1"):
        return _json_error(400, "InvalidProtocol", f"The given protocol value '{protocol[:32]}' is invalid."
                           " Supported values are 'ActiveSync,AutodiscoverV1'")
    redirect = _redirect(server, email)
    if redirect is not None:
        kind, target = redirect
        if kind == "url":
            base = urlsplit(target)
            location = f"{base.scheme}://{base.netloc}{JSON_PATH}?Email={quote(email)}&Protocol={quote(protocol)}"
        else:
            location = f"{JSON_PATH}?Email={quote(target)}&Protocol={quote(protocol)}"
        return HTTPResponse(302, [("Location", location)], b"")
    try:
        url = eas_url(server, http)
    except Invalid:
        return _json_error(400, "InvalidRequest", "The Host header is missing or not valid")
    if protocol.lower() == "activesync":
        answer = {"Protocol": "ActiveSync", "Url": url}
    else:
        base = urlsplit(url)
        answer = {"Protocol": "AutodiscoverV1", "Url": f"{base.scheme}://{base.netloc}{XML_PATH}"}
    return HTTPResponse(200, [("Content-Type", JSON_TYPE)], json.dumps(answer).encode())


def _json_error(status: int, code: str, message: str) -> HTTPResponse:
    body = json.dumps({"ErrorCode": code, "ErrorMessage": message}).encode()
    return HTTPResponse(status, [("Content-Type", JSON_TYPE)], body)

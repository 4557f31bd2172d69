"""MS-ASHTTP request parsing: plain and base64 queries, headers, bodies, hostile input."""

from __future__ import annotations

import base64
import gzip

import pytest

from eas.protocol.errors import ProtocolError
from eas.protocol.http import HTTPRequest, parse_request
from eas.protocol.versions import Version

pytestmark = pytest.mark.kernel_independent

MAX = 1024


def req(query: str, headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> HTTPRequest:
    return HTTPRequest("POST", "/Microsoft-Server-ActiveSync", query, headers or [], body)


PLAIN = "Cmd=Sync&User=alice&DeviceId=ABC123&DeviceType=iPhone"


def test_plain_query() -> None:
    r = parse_request(req(PLAIN, [("ms-asprotocolversion", "14.1"), ("x-ms-policykey", "3942919513"),
                                  ("user-agent", "Apple-iPhone/1")]), max_body=MAX)
    assert (r.command, r.user, r.device_id, r.device_type) == ("Sync", "alice", "ABC123", "iPhone")
    assert r.version == Version("14.1") and r.policy_key == 3942919513 and r.user_agent == "Apple-iPhone/1"
    assert not r.base64_query


def test_plain_query_parameters() -> None:
    r = parse_request(req(PLAIN.replace("Sync", "SmartReply") + "&ItemId=5%3A12&CollectionId=5&SaveInSent=T",
                          [("ms-asprotocolversion", "12.1")]), max_body=MAX)
    assert r.params == {"ItemId": "5:12", "CollectionId": "5", "SaveInSent": "T"} and r.save_in_sent


def test_spec_base64_example() -> None:
    """The worked example of MS-ASHTTP 2.2.1.1.1.1."""
    r = parse_request(req("jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l"), max_body=MAX)
    assert (r.version, r.command, r.locale) == (Version("14.0"), "Sync", 0x0409)
    assert (r.device_id, r.device_type, r.policy_key) == ("v140Device", "SmartPhone", None)
    assert r.base64_query


def base64_query(version: int, code: int, device: bytes, key: bytes, dtype: bytes, params: bytes = b"") -> str:
    raw = bytes([version, code]) + b"\x09\x04" + bytes([len(device)]) + device + bytes([len(key)]) + key
    raw += bytes([len(dtype)]) + dtype + params
    return base64.b64encode(raw).decode()


def test_base64_query_with_key_user_and_options() -> None:
    params = bytes([8, 5]) + b"alice" + bytes([7, 1, 0x03]) + bytes([1, 1]) + b"5"
    q = base64_query(161, 1, b"DEV1", (1234567).to_bytes(4, "little"), b"Android", params)
    r = parse_request(req(q), max_body=MAX)
    assert (r.command, r.user, r.policy_key, r.params) == ("SendMail", "alice", 1234567, {"CollectionId": "5"})
    assert r.save_in_sent and r.accept_multipart


@pytest.mark.parametrize(
    ("query", "headers", "fragment"),
    [
        (PLAIN, [], "MS-ASProtocolVersion"),
        (PLAIN, [("ms-asprotocolversion", "13.0")], "unsupported protocol version"),
        ("Cmd=Sync&User=a&DeviceId=A&DeviceType=x&Cmd=Ping", [("ms-asprotocolversion", "14.1")], "twice"),
        ("Cmd=Nope&User=a&DeviceId=A&DeviceType=x", [("ms-asprotocolversion", "14.1")], "unknown command"),
        ("Cmd=Sync&User=a&DeviceId=A/../B&DeviceType=x", [("ms-asprotocolversion", "14.1")], "DeviceId"),
        ("Cmd=Sync&User=a&DeviceId=" + "A" * 65 + "&DeviceType=x", [("ms-asprotocolversion", "14.1")], "DeviceId"),
        ("Cmd=Sync&User=a&DeviceType=x", [("ms-asprotocolversion", "14.1")], "DeviceId"),
        ("Cmd=Sync&User=a&DeviceId=A&DeviceType=", [("ms-asprotocolversion", "14.1")], "DeviceType"),
        ("Cmd=Sync&User=a&DeviceId=A&DeviceType=x", [("ms-asprotocolversion", "14.1"), ("x-ms-policykey", "-1")],
         "PolicyKey"),
        ("Cmd=Sync&User=a&DeviceId=A&DeviceType=x", [("ms-asprotocolversion", "14.1"),
                                                     ("x-ms-policykey", "99999999999")], "PolicyKey"),
        ("Cmd=Sync&&&", [("ms-asprotocolversion", "14.1")], "malformed query"),
        ("%%%", [], "base64"),
        ("A" * 5000, [], "too long"),
        (base64_query(25, 0, b"D", b"", b"T"), [], "12.1 or later"),
        (base64_query(99, 0, b"D", b"", b"T"), [], "version byte"),
        (base64_query(141, 77, b"D", b"", b"T"), [], "command code"),
        (base64_query(141, 0, b"D", b"\x01\x02", b"T"), [], "policy key length"),
        (base64_query(141, 0, b"D", b"", b"T", b"\x08\x09ab"), [], "truncated"),
        (base64_query(141, 0, b"D", b"", b"T", b"\x02\x01a"), [], "parameter tag"),
        (base64_query(141, 0, b"\xff\xfe", b"", b"T"), [], "not UTF-8"),
        (base64.b64encode(b"\x8d").decode(), [], "truncated"),
    ],
)
def test_bad_queries(query: str, headers: list[tuple[str, str]], fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment) as info:
        parse_request(req(query, headers), max_body=MAX)
    assert info.value.http_status in (400, 501)


def test_unknown_command_is_not_implemented_and_garbage_is_bad_request() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(req("Cmd=Frobnicate&User=a&DeviceId=A&DeviceType=x", [("ms-asprotocolversion", "14.1")]),
                      max_body=MAX)
    assert info.value.http_status == 501
    with pytest.raises(ProtocolError) as info:
        parse_request(req("Cmd=<script>&User=a&DeviceId=A&DeviceType=x", [("ms-asprotocolversion", "14.1")]),
                      max_body=MAX)
    assert info.value.http_status == 400


H = [("ms-asprotocolversion", "14.1")]


def test_gzip_request_body() -> None:
    r = parse_request(req(PLAIN, [*H, ("content-encoding", "gzip")], gzip.compress(b"x" * 100)), max_body=MAX)
    assert r.body == b"x" * 100


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        (H, b"x" * (MAX + 1), 413),
        ([*H, ("content-encoding", "gzip")], gzip.compress(b"x" * (MAX + 1)), 413),  # a gzip bomb stops at MAX
        ([*H, ("content-encoding", "gzip")], b"not gzip", 400),
        ([*H, ("content-encoding", "gzip")], gzip.compress(b"x" * 100)[:-12], 400),
        ([*H, ("content-encoding", "br")], b"x", 415),
    ],
)
def test_bad_bodies(headers: list[tuple[str, str]], body: bytes, code: int) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(req(PLAIN, headers, body), max_body=MAX)
    assert info.value.http_status == code


def test_versions_compare_and_print() -> None:
    assert Version("2.5") < Version("12.0") < Version("16.1") and Version("14.1") == "14.1"
    assert Version.from_byte(161) == Version("16.1") and str(Version("12.1")) == "12.1"
    with pytest.raises(ValueError, match="unknown"):
        Version("15.0")

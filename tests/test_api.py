"""The public surface of eas.wbxml: Node, Writer, encode, decode, the XML view, limits."""

from __future__ import annotations

import pytest

import eas.wbxml
from eas.tags import AirSync, AirSyncBase, ComposeMail, Email, Email2, FolderHierarchy, GAL, Ping
from eas.wbxml import Limits, Node, WBXMLError, Writer, decode, encode, from_xml, to_xml

HEADER = b"\x03\x01\x6a\x00"


def test_public_names() -> None:
    assert set(eas.wbxml.__all__) == {
        "IMPLEMENTATION", "Limits", "Node", "WBXMLError", "Writer", "decode", "encode", "from_xml", "to_xml",
    }
    assert issubclass(WBXMLError, ValueError)


def test_implementation_follows_the_selected_kernel(implementation: str) -> None:
    assert eas.wbxml.IMPLEMENTATION == implementation


def test_writer_bytes_by_hand() -> None:
    # Ping request: <Ping><HeartbeatInterval>480</HeartbeatInterval><Folders><Folder>
    # <Id>5</Id><Class>Email</Class></Folder></Folders></Ping>, page 13 (MS-ASWBXML 2.1.2.1.14).
    w = Writer()
    with w.tag(Ping.Ping):
        w.leaf(Ping.HeartbeatInterval, 480)
        with w.tag(Ping.Folders):
            with w.tag(Ping.Folder):
                w.leaf(Ping.Id, "5")
                w.leaf(Ping.Class, "Email")
    expected = (
        HEADER + b"\x00\x0d" + b"\x45"
        + b"\x48\x03480\x00\x01"
        + b"\x49\x4a" + b"\x4b\x035\x00\x01" + b"\x4c\x03Email\x00\x01" + b"\x01\x01"
        + b"\x01"
    )
    assert w.getvalue() == expected


def test_page_switches_only_when_the_page_changes() -> None:
    w = Writer()
    with w.tag(AirSync.ApplicationData):
        w.leaf(Email.Subject, "a")
        w.leaf(Email.Read, "1")
        w.opaque(Email2.ConversationId, b"\x00\xff")
        w.empty(AirSync.Status)
    assert w.getvalue() == (
        HEADER + b"\x5d" + b"\x00\x02\x54\x03a\x00\x01\x55\x031\x00\x01"
        + b"\x00\x16\x49\xc3\x02\x00\xff\x01" + b"\x00\x00\x0e" + b"\x01"
    )


def test_opaque_length_is_mb_u_int32() -> None:
    blob = bytes(range(256)) * 4  # 1024 = 0x88 0x00
    w = Writer()
    w.opaque(ComposeMail.Mime, blob)
    assert w.getvalue() == HEADER + b"\x00\x15\x50\xc3\x88\x00" + blob + b"\x01"


def test_decode_tree_and_navigation() -> None:
    w = Writer()
    with w.tag(FolderHierarchy.FolderSync):
        w.leaf(FolderHierarchy.Status, 1)
        w.leaf(FolderHierarchy.SyncKey, "2")
        with w.tag(FolderHierarchy.Changes):
            w.leaf(FolderHierarchy.Count, 2)
            for sid, name in (("1", "Inbox"), ("2", "Sent")):
                with w.tag(FolderHierarchy.Add):
                    w.leaf(FolderHierarchy.ServerId, sid)
                    w.leaf(FolderHierarchy.DisplayName, name)
    node = decode(w.getvalue())
    assert node.tag == FolderHierarchy.FolderSync
    assert node.findtext(FolderHierarchy.SyncKey) == "2"
    changes = node.find(FolderHierarchy.Changes)
    assert changes is not None and len(changes) == 3
    assert [a.findtext(FolderHierarchy.DisplayName) for a in changes.findall(FolderHierarchy.Add)] == ["Inbox", "Sent"]
    assert node.find(FolderHierarchy.Changes, FolderHierarchy.Add, FolderHierarchy.ServerId) == Node(
        FolderHierarchy.ServerId, "1"
    )
    assert node.find(FolderHierarchy.Changes, FolderHierarchy.Update) is None
    assert node.findtext(FolderHierarchy.Update, default="none") == "none"
    assert [c.tag for c in node] == [FolderHierarchy.Status, FolderHierarchy.SyncKey, FolderHierarchy.Changes]


def test_empty_versus_empty_string() -> None:
    w = Writer()
    with w.tag(AirSync.Sync):
        w.empty(AirSync.GetChanges)
        w.leaf(AirSync.SyncKey, "")
    node = decode(w.getvalue())
    assert node.children == [Node(AirSync.GetChanges), Node(AirSync.SyncKey, "")]
    assert node.findtext(AirSync.GetChanges) == ""
    assert encode(node) == w.getvalue()


def test_node_equality_and_repr() -> None:
    a = Node(AirSync.Sync, children=[Node(AirSync.SyncKey, "0")])
    b = Node(AirSync.Sync, children=[Node(AirSync.SyncKey, "0")])
    assert a == b and a != Node(AirSync.Sync) and a != Node(AirSync.Sync, children=[Node(AirSync.SyncKey, "1")])
    assert repr(a) == "Node(AirSync:Sync, [Node(AirSync:SyncKey, '0')])"
    assert repr(Node(GAL.Data, b"\x01")) == "Node(GAL:Data, b'\\x01')"
    with pytest.raises(TypeError):
        hash(a)


def test_encode_refuses_mixed_content_and_bad_text() -> None:
    with pytest.raises(WBXMLError, match="mixed content"):
        encode(Node(AirSync.Sync, "x", [Node(AirSync.SyncKey, "0")]))
    w = Writer()
    with pytest.raises(TypeError):
        w.leaf(AirSync.SyncKey, b"0")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        w.leaf(AirSync.SyncKey, True)  # type: ignore[arg-type]


def test_xml_view_matches_the_protocol_documents() -> None:
    w = Writer()
    with w.tag(AirSync.Sync):
        with w.tag(AirSync.Collections):
            with w.tag(AirSync.Collection):
                w.leaf(AirSync.SyncKey, "0")
                with w.tag(AirSync.Options):
                    with w.tag(AirSyncBase.BodyPreference):
                        w.leaf(AirSyncBase.Type, 2)
                w.opaque(Email2.ConversationId, b"\x01\x02\x03")
    xml = to_xml(w.getvalue())
    assert xml.startswith('<?xml version="1.0" encoding="utf-8"?>\n<Sync xmlns="AirSync:"')
    assert 'xmlns:airsyncbase="AirSyncBase:"' in xml and "<airsyncbase:Type>2</airsyncbase:Type>" in xml
    assert "<email2:ConversationId>AQID</email2:ConversationId>" in xml
    assert "\n      <SyncKey>0</SyncKey>\n" in xml  # pretty printed
    assert from_xml(xml) == w.getvalue()
    assert to_xml(decode(w.getvalue())) == xml


@pytest.mark.parametrize(
    "ns",
    ["AirSync:", "AirSync", "airsync:", "AIRSYNC"],
)
def test_from_xml_namespace_spellings(ns: str) -> None:
    xml = f'<Sync xmlns="{ns}" xmlns:g="Gal:"><SyncKey>0</SyncKey><g:DisplayName>A</g:DisplayName></Sync>'
    assert decode(from_xml(xml)) == Node(AirSync.Sync, children=[Node(AirSync.SyncKey, "0"), Node(GAL.DisplayName, "A")])


def test_from_xml_accepts_other_implementations_names() -> None:
    # libwbxml and Z-Push say BusinessCity and POOMCONTACTS for Contacts:BusinessAddressCity.
    from eas.tags import Contacts

    xml = '<ApplicationData xmlns="AirSync:" xmlns:c="POOMCONTACTS"><c:BusinessCity>Oslo</c:BusinessCity></ApplicationData>'
    assert decode(from_xml(xml)).children == [Node(Contacts.BusinessAddressCity, "Oslo")]


@pytest.mark.parametrize(
    ("xml", "fragment"),
    [
        ("<Sync xmlns='AirSync:'><Nope/></Sync>", "no tag Nope on code page AirSync"),
        ("<Sync xmlns='Nowhere:'/>", "unknown namespace"),
        ("<Sync/>", "has no namespace"),
        ("<Sync xmlns='AirSync:'>text<SyncKey>0</SyncKey></Sync>", "mixed content"),
        ("<Mime xmlns='ComposeMail:'>not base64!</Mime>", "not base64"),
        ("<Sync xmlns='AirSync:'>", "not well formed"),
        ('<!DOCTYPE x [<!ENTITY e "boom">]><Sync xmlns="AirSync:"><SyncKey>&e;</SyncKey></Sync>', "entit"),
        ('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Sync xmlns="AirSync:">&e;</Sync>', "entit"),
    ],
)
def test_from_xml_refuses_clearly(xml: str, fragment: str) -> None:
    with pytest.raises(WBXMLError, match=fragment):
        from_xml(xml)


def test_to_xml_replaces_what_xml_cannot_carry() -> None:
    w = Writer()
    w.leaf(Email.Subject, "a\x01b\udcffc")
    assert "<Subject xmlns=\"Email:\">a\ufffdb\ufffdc</Subject>" in to_xml(w.getvalue())


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        Limits(max_depth=0)
    with pytest.raises(ValueError):
        Limits(max_depth=1000)
    with pytest.raises(ValueError):
        Limits(max_tokens=2**40)
    with pytest.raises(WBXMLError, match="larger than the limit") as e:
        decode(HEADER + b"\x05", limits=Limits(max_message_size=4))
    assert e.value.offset == 4


def test_decode_accepts_bytes_like() -> None:
    data = HEADER + b"\x45\x4b\x030\x00\x01\x01"
    expected = Node(AirSync.Sync, children=[Node(AirSync.SyncKey, "0")])
    assert decode(bytearray(data)) == decode(memoryview(data)) == expected

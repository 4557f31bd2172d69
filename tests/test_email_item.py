"""eas.items.email and eas.items.body: Options parsing, a mail's ApplicationData per
version and body preference, client changes, drafts; through the real codec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from typing import Any

import pytest

from eas import tags
from eas.backend import Attachment, Email, Flag
from eas.items import body as bodies
from eas.items.email import (
    draft_mime,
    format_date,
    mime_mode,
    parse_body_options,
    parse_date,
    parse_email_change,
    write_email,
    write_email_flags,
)
from eas.protocol.errors import ProtocolError
from eas.protocol.versions import Version
from eas.tags import AirSync, AirSyncBase, Email2, Tasks
from eas.tags import Email as E
from eas.wbxml import Node, Writer, decode, from_xml

VERSIONS = ("2.5", "12.0", "12.1", "14.0", "14.1", "16.0", "16.1")


def assert_in_version(node: Node, version: str) -> None:
    """Every element of the tree exists in ``version`` (MS-ASWBXML code pages)."""
    info = tags.BY_TAG.get(node.tag)
    assert info is not None and version in info.versions, f"{tags.name(node.tag)} is not in {version}"
    for child in node.children:
        assert_in_version(child, version)


def mail(**kw: Any) -> Email:
    fields: dict[str, Any] = {
        "id": "7", "subject": "Quarterly report", "sender": "Bob <bob@example.com>", "to": "alice@example.com",
        "cc": "carol@example.com", "display_to": "Alice", "thread_topic": "Quarterly report",
        "date_received": datetime(2024, 3, 5, 14, 7, 9, 250000, tzinfo=UTC), "importance": 2, "read": True,
        "body_text": "Hello Alice,\nnumbers attached.", "conversation_id": b"\x01" * 16,
        "conversation_index": b"\x02" * 22, "categories": ["Work", "Urgent"],
    }
    fields.update(kw)
    return Email(**fields)


def render(email: Email, version: str, options: dict[str, Any] | None = None) -> Node:
    """The ApplicationData written for ``email``, decoded again, checked against the version."""
    w = Writer()
    with w.tag(AirSync.ApplicationData):
        write_email(w, email, Version(version), options if options is not None else parse_body_options(None, Version(version)))
    node = decode(w.getvalue())
    assert_in_version(node, version)
    return node


def options_of(xml: str, version: str = "14.1") -> dict[str, Any]:
    return parse_body_options(decode(from_xml(xml)), Version(version))


def pref_options(*prefs: str, mime_support: int | None = None, version: str = "14.1") -> dict[str, Any]:
    inner = "".join(f'<BodyPreference xmlns="AirSyncBase:">{p}</BodyPreference>' for p in prefs)
    if mime_support is not None:
        inner += f"<MIMESupport>{mime_support}</MIMESupport>"
    return options_of(f'<Options xmlns="AirSync:">{inner}</Options>', version)


# -- Options ---------------------------------------------------------------------------------


def test_options_parse_every_element() -> None:
    opts = options_of(
        '<Options xmlns="AirSync:"><FilterType>3</FilterType><Class>Email</Class><MIMESupport>1</MIMESupport>'
        "<MIMETruncation>1</MIMETruncation><Conflict>0</Conflict><MaxItems>20</MaxItems>"
        '<BodyPreference xmlns="AirSyncBase:"><Type>2</Type><TruncationSize>5120</TruncationSize>'
        "<AllOrNone>1</AllOrNone><Preview>100</Preview></BodyPreference>"
        '<BodyPreference xmlns="AirSyncBase:"><Type>1</Type></BodyPreference></Options>')
    assert opts["filter_type"] == 3 and opts["class"] == "Email" and opts["mime_support"] == 1
    assert opts["mime_truncation"] == 4096 and opts["conflict"] == 0 and opts["max_items"] == 20
    assert opts["body_preferences"] == [
        {"type": 2, "truncation_size": 5120, "all_or_none": True, "preview": 100},
        {"type": 1, "truncation_size": None, "all_or_none": False, "preview": 0},
    ]


def test_options_defaults_and_25_truncation() -> None:
    default = parse_body_options(None, Version("14.1"), default_class="Calendar")
    assert default["class"] == "Calendar" and default["filter_type"] == 0 and default["body_preferences"] == []
    assert default["conflict"] == 1
    for code, chars in ((0, 0), (1, 512), (4, 5120), (8, 102400), (9, None)):
        assert options_of(f'<Options xmlns="AirSync:"><Truncation>{code}</Truncation></Options>', "2.5")[
            "truncation"] == chars


@pytest.mark.parametrize("xml", [
    "<FilterType>9</FilterType>",
    "<FilterType>-1</FilterType>",
    "<FilterType>one</FilterType>",
    "<FilterType/>",
    "<MIMESupport>3</MIMESupport>",
    "<MIMETruncation>9</MIMETruncation>",
    "<Truncation>10</Truncation>",
    "<Conflict>3</Conflict>",
    "<MaxItems>99999999999</MaxItems>",
    '<BodyPreference xmlns="AirSyncBase:"><Type>5</Type></BodyPreference>',
    '<BodyPreference xmlns="AirSyncBase:"><Type>0</Type></BodyPreference>',
    '<BodyPreference xmlns="AirSyncBase:"><TruncationSize>10</TruncationSize></BodyPreference>',
    '<BodyPreference xmlns="AirSyncBase:"><Type>1</Type><TruncationSize>4294967296</TruncationSize></BodyPreference>',
    '<BodyPreference xmlns="AirSyncBase:"><Type>1</Type><Preview>256</Preview></BodyPreference>',
    '<BodyPreference xmlns="AirSyncBase:"><Type>1</Type><AllOrNone>2</AllOrNone></BodyPreference>',
    ('<BodyPreference xmlns="AirSyncBase:"><Type>1</Type></BodyPreference>'
     '<BodyPreference xmlns="AirSyncBase:"><Type>1</Type></BodyPreference>'),
])
def test_options_refuse_invalid_values(xml: str) -> None:
    with pytest.raises(ProtocolError):
        options_of(f'<Options xmlns="AirSync:">{xml}</Options>')


def test_options_leave_other_commands_elements_alone() -> None:
    opts = options_of('<Options xmlns="ItemOperations:"><Schema/><Range>0-99</Range>'
                      '<MIMESupport xmlns="AirSync:">2</MIMESupport></Options>')
    assert opts["mime_support"] == 2


def test_mime_mode() -> None:
    v14, v25 = Version("14.1"), Version("2.5")
    assert mime_mode(pref_options("<Type>4</Type>", mime_support=2), v14) == 2
    assert mime_mode(pref_options("<Type>4</Type>", "<Type>2</Type>", mime_support=1), v14) == 1
    assert mime_mode(pref_options("<Type>4</Type>", "<Type>2</Type>", mime_support=0), v14) == 0
    assert mime_mode(pref_options("<Type>4</Type>"), v14) == 2  # MIME is all it asked for
    assert mime_mode(pref_options("<Type>2</Type>", mime_support=2), v14) == 0
    assert mime_mode(options_of('<Options xmlns="AirSync:"><MIMESupport>1</MIMESupport></Options>', "2.5"), v25) == 1


# -- writing a mail --------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_write_email_fields_per_version(version: str) -> None:
    node = render(mail(flag=Flag(status=2, flag_type="Follow up",
                                 due_date=datetime(2024, 3, 8, tzinfo=UTC))), version)
    assert node.findtext(E.Subject) == "Quarterly report"
    assert node.findtext(E.From) == "Bob <bob@example.com>"
    assert node.findtext(E.To) == "alice@example.com" and node.findtext(E.Cc) == "carol@example.com"
    assert node.findtext(E.DateReceived) == "2024-03-05T14:07:09.250Z"
    assert node.findtext(E.Importance) == "2" and node.findtext(E.Read) == "1"
    assert node.findtext(E.MessageClass) == "IPM.Note" and node.findtext(E.InternetCPID) == "65001"
    v = Version(version)
    if v >= Version("12.0"):
        flag = node.find(E.Flag)
        assert flag is not None and flag.findtext(E.Status) == "2"
        assert flag.findtext(Tasks.UtcDueDate) == "2024-03-08T00:00:00.000Z"
        assert node.findtext(AirSyncBase.NativeBodyType) == "1"
        assert node.find(AirSyncBase.Body, AirSyncBase.Data) is not None
    else:
        assert node.find(E.Flag) is None and node.findtext(E.Body) == "Hello Alice,\nnumbers attached."
    if v >= Version("14.0"):
        assert node.findtext(Email2.ConversationId) == b"\x01" * 16
        assert node.findtext(Email2.ConversationIndex) == b"\x02" * 22
        assert [c.text for c in node.find(E.Categories).children] == ["Work", "Urgent"]  # type: ignore[union-attr]
    else:
        assert node.find(E.Categories) is None and node.find(Email2.ConversationId) is None
    assert (node.find(Email2.IsDraft) is not None) == (v >= Version("16.0"))


def test_no_flag_is_an_empty_flag_and_clearing_change() -> None:
    node = render(mail(flag=None, categories=[]), "14.1")
    flag = node.find(E.Flag)
    assert flag is not None and not flag.children and not flag.text
    assert node.find(E.Categories) is None  # an Add leaves empty categories out
    w = Writer()
    with w.tag(AirSync.ApplicationData):
        write_email_flags(w, mail(flag=None, categories=[], read=False), Version("14.1"))
    change = decode(w.getvalue())
    assert_in_version(change, "14.1")
    assert [tags.name(c.tag) for c in change.children] == ["Email:Read", "Email:Flag", "Email:Categories"]
    assert change.findtext(E.Read) == "0"


@pytest.mark.parametrize("version", ["2.5", "12.1", "16.1"])
def test_flags_only_change_per_version(version: str) -> None:
    w = Writer()
    with w.tag(AirSync.ApplicationData):
        write_email_flags(w, mail(flag=Flag(status=1, complete_time=datetime(2024, 1, 2, tzinfo=UTC))),
                          Version(version))
    node = decode(w.getvalue())
    assert_in_version(node, version)
    assert node.find(E.Subject) is None and node.findtext(E.Read) == "1"
    if version != "2.5":
        assert node.findtext(E.Flag, E.Status) == "1"
        assert node.findtext(E.Flag, E.CompleteTime) == "2024-01-02T00:00:00.000Z"


def test_plain_truncation_at_utf8_boundary() -> None:
    text = "héllo wörld €uro"  # é and ö are 2 bytes, € is 3
    node = render(mail(body_text=text), "14.1", pref_options("<Type>1</Type><TruncationSize>7</TruncationSize>"))
    body = node.find(AirSyncBase.Body)
    assert body is not None
    assert body.findtext(AirSyncBase.Type) == "1"
    assert body.findtext(AirSyncBase.Truncated) == "1"
    assert body.findtext(AirSyncBase.EstimatedDataSize) == str(len(text.encode()))
    data = body.findtext(AirSyncBase.Data)
    assert data == "héllo " and len(data.encode()) <= 7  # "héllo w" would be 8 bytes
    # A cut that would split the 3-byte euro sign backs up before it.
    cut = len("héllo wörld ".encode()) + 2
    data2 = render(mail(body_text=text), "14.1", pref_options(f"<Type>1</Type><TruncationSize>{cut}</TruncationSize>"))
    assert data2.findtext(AirSyncBase.Body, AirSyncBase.Data) == "héllo wörld "


def test_untruncated_body_has_no_truncated_flag() -> None:
    node = render(mail(body_text="short"), "14.1", pref_options("<Type>1</Type><TruncationSize>100</TruncationSize>"))
    body = node.find(AirSyncBase.Body)
    assert body is not None and body.find(AirSyncBase.Truncated) is None
    assert body.findtext(AirSyncBase.Data) == "short" and body.findtext(AirSyncBase.EstimatedDataSize) == "5"


def test_truncation_size_zero_sends_no_data() -> None:
    node = render(mail(body_text="abc"), "14.1", pref_options("<Type>1</Type><TruncationSize>0</TruncationSize>"))
    body = node.find(AirSyncBase.Body)
    assert body is not None and body.find(AirSyncBase.Data) is None
    assert body.findtext(AirSyncBase.Truncated) == "1" and body.findtext(AirSyncBase.EstimatedDataSize) == "3"


def test_html_native_and_plain_conversion() -> None:
    html = ("<html><head><style>p{color:red}</style><title>t</title></head><body><p>Dear&nbsp;Alice,</p>"
            "<div>Line <b>two</b><br>Line three</div><script>alert(1)</script></body></html>")
    email = mail(body_text=None, body_html=html)
    as_html = render(email, "14.1", pref_options("<Type>2</Type>", "<Type>1</Type>"))
    assert as_html.findtext(AirSyncBase.Body, AirSyncBase.Type) == "2"  # the native type wins
    assert as_html.findtext(AirSyncBase.Body, AirSyncBase.Data) == html
    assert as_html.findtext(AirSyncBase.NativeBodyType) == "2"
    as_text = render(email, "14.1", pref_options("<Type>1</Type>"))
    assert as_text.findtext(AirSyncBase.Body, AirSyncBase.Type) == "1"
    assert as_text.findtext(AirSyncBase.Body, AirSyncBase.Data) == "Dear Alice,\n\nLine two\nLine three"
    as_25 = render(email, "2.5")
    assert as_25.findtext(E.Body) == "Dear Alice,\n\nLine two\nLine three"


def test_plain_native_asked_as_html_is_escaped() -> None:
    node = render(mail(body_text="a < b\nc"), "14.1", pref_options("<Type>2</Type>"))
    data = node.findtext(AirSyncBase.Body, AirSyncBase.Data)
    assert isinstance(data, str) and "a &lt; b<br>" in data and data.startswith("<html>")


def test_all_or_none_falls_back_to_next_preference() -> None:
    html = "<p>" + "x" * 500 + "</p>"
    email = mail(body_text=None, body_html=html)
    node = render(email, "14.1", pref_options("<Type>2</Type><TruncationSize>100</TruncationSize><AllOrNone>1</AllOrNone>",
                                             "<Type>1</Type><TruncationSize>1000</TruncationSize>"))
    assert node.findtext(AirSyncBase.Body, AirSyncBase.Type) == "1"
    assert node.findtext(AirSyncBase.Body, AirSyncBase.Data) == "x" * 500
    # With nothing to fall back on, the body is announced but not sent.
    alone = render(email, "14.1", pref_options("<Type>2</Type><TruncationSize>100</TruncationSize><AllOrNone>1</AllOrNone>"))
    body = alone.find(AirSyncBase.Body)
    assert body is not None and body.find(AirSyncBase.Data) is None and body.findtext(AirSyncBase.Truncated) == "1"


def test_preview_only_from_14() -> None:
    email = mail(body_text="  Preview   me\n\nplease " + "y" * 400)
    node = render(email, "14.1", pref_options("<Type>1</Type><TruncationSize>10</TruncationSize><Preview>20</Preview>"))
    assert node.findtext(AirSyncBase.Body, AirSyncBase.Preview) == "Preview me please yy"
    assert node.findtext(AirSyncBase.Body, AirSyncBase.Data) == "  Preview "
    older = render(email, "12.1", pref_options("<Type>1</Type><TruncationSize>10</TruncationSize>", version="12.1"))
    assert older.find(AirSyncBase.Body, AirSyncBase.Preview) is None


MIME = (b"From: bob@example.com\r\nTo: alice@example.com\r\nSubject: M\r\nContent-Type: text/plain; charset=utf-8"
        b"\r\n\r\nMIME body \xc3\xa9 \xff raw\r\n")


def test_mime_body_when_mimesupport_asks() -> None:
    email = mail(mime=MIME)
    node = render(email, "14.1", pref_options("<Type>4</Type>", "<Type>1</Type>", mime_support=2))
    body = node.find(AirSyncBase.Body)
    assert body is not None and body.findtext(AirSyncBase.Type) == "4"
    data = body.findtext(AirSyncBase.Data)
    assert isinstance(data, str) and data.encode("utf-8", "surrogateescape") == MIME
    assert body.findtext(AirSyncBase.EstimatedDataSize) == str(len(MIME))
    # MIMESupport 1: only S/MIME mail comes as MIME.
    plain = render(email, "14.1", pref_options("<Type>4</Type>", "<Type>1</Type>", mime_support=1))
    assert plain.findtext(AirSyncBase.Body, AirSyncBase.Type) == "1"
    smime = render(mail(mime=MIME, message_class="IPM.Note.SMIME.MultipartSigned"), "14.1",
                   pref_options("<Type>4</Type>", "<Type>1</Type>", mime_support=1))
    assert smime.findtext(AirSyncBase.Body, AirSyncBase.Type) == "4"
    # MIME truncated at a byte count that never splits a character.
    cut = render(email, "14.1", pref_options("<Type>4</Type><TruncationSize>90</TruncationSize>", mime_support=2))
    assert cut.findtext(AirSyncBase.Body, AirSyncBase.Truncated) == "1"
    data = cut.findtext(AirSyncBase.Body, AirSyncBase.Data)
    assert isinstance(data, str) and MIME.startswith(data.encode("utf-8", "surrogateescape"))


def test_mime_asked_but_not_fetched_falls_back_to_text() -> None:
    node = render(mail(mime=None), "14.1", pref_options("<Type>4</Type>", mime_support=2))
    assert node.findtext(AirSyncBase.Body, AirSyncBase.Type) == "1"


def test_25_body_truncation_and_mime() -> None:
    email = mail(body_text="z" * 600)
    truncated = render(email, "2.5", options_of('<Options xmlns="AirSync:"><Truncation>1</Truncation></Options>', "2.5"))
    assert truncated.findtext(E.Body) == "z" * 512
    assert truncated.findtext(E.BodyTruncated) == "1" and truncated.findtext(E.BodySize) == "600"
    whole = render(email, "2.5", options_of('<Options xmlns="AirSync:"><Truncation>9</Truncation></Options>', "2.5"))
    assert whole.findtext(E.Body) == "z" * 600 and whole.findtext(E.BodyTruncated) == "0"
    assert whole.find(E.BodySize) is None
    mime = render(mail(mime=MIME), "2.5", options_of(
        '<Options xmlns="AirSync:"><MIMESupport>2</MIMESupport><MIMETruncation>8</MIMETruncation></Options>', "2.5"))
    data = mime.findtext(E.MIMEData)
    assert isinstance(data, str) and data.encode("utf-8", "surrogateescape") == MIME
    assert mime.findtext(E.MIMETruncated) == "0" and mime.find(E.Body) is None


def test_attachments_per_version() -> None:
    email = mail(attachments=[Attachment("7:2", "report.pdf", 12345, "application/pdf"),
                              Attachment("7:3", "logo.png", 99, "image/png", content_id="logo@x", is_inline=True)])
    new = render(email, "14.1")
    atts = new.find(AirSyncBase.Attachments)
    assert atts is not None and len(atts.children) == 2
    first, second = atts.children
    assert first.findtext(AirSyncBase.DisplayName) == "report.pdf"
    assert first.findtext(AirSyncBase.FileReference) == "7:2" and first.findtext(AirSyncBase.Method) == "1"
    assert first.findtext(AirSyncBase.EstimatedDataSize) == "12345" and first.find(AirSyncBase.IsInline) is None
    assert second.findtext(AirSyncBase.ContentId) == "logo@x" and second.findtext(AirSyncBase.IsInline) == "1"
    old = render(email, "2.5")
    assert old.find(AirSyncBase.Attachments) is None
    att = old.find(E.Attachments, E.Attachment)
    assert att is not None and att.findtext(E.AttName) == "7:2" and att.findtext(E.AttSize) == "12345"
    assert att.findtext(E.DisplayName) == "report.pdf"


def test_draft_fields_in_16() -> None:
    node = render(mail(is_draft=True, bcc="dave@example.com"), "16.1")
    assert node.findtext(Email2.IsDraft) == "1" and node.findtext(Email2.Bcc) == "dave@example.com"
    sent = render(mail(is_draft=False, bcc="dave@example.com"), "16.1")
    assert sent.findtext(Email2.IsDraft) == "0" and sent.find(Email2.Bcc) is None


def test_out_of_range_importance_and_empty_optional_fields() -> None:
    node = render(mail(importance=7, cc="", to="", reply_to="", display_to="", thread_topic="",
                       date_received=None), "14.1")
    assert node.findtext(E.Importance) == "1"
    for tag in (E.Cc, E.To, E.ReplyTo, E.DisplayTo, E.ThreadTopic, E.DateReceived):
        assert node.find(tag) is None


# -- body helpers ----------------------------------------------------------------------------


def test_truncate_utf8_never_splits() -> None:
    text = "aé€😀b"
    raw = text.encode()
    for size in range(len(raw) + 2):
        data, full, truncated = bodies.truncate_utf8(text, size)
        assert full == len(raw)
        assert len(data.encode()) <= size or not truncated
        assert raw.startswith(data.encode())
        assert truncated == (size < len(raw))


def test_html_to_text_survives_broken_markup() -> None:
    assert bodies.html_to_text("<p>a<b>b</p></div><!bogus <<<>>> c &amp; d") .startswith("a")
    assert bodies.html_to_text("") == ""


# -- client changes --------------------------------------------------------------------------


def change_of(xml: str, version: str = "14.1") -> Any:
    return parse_email_change(decode(from_xml(
        f'<ApplicationData xmlns="AirSync:" xmlns:e="Email:" xmlns:t="Tasks:">{xml}</ApplicationData>')),
        Version(version))


def test_parse_change_read_flag_categories() -> None:
    change = change_of("<e:Read>1</e:Read><e:Flag><e:Status>2</e:Status><e:FlagType>Follow up</e:FlagType>"
                       "<t:StartDate>2024-01-01T00:00:00.000Z</t:StartDate>"
                       "<t:UtcStartDate>2024-01-01T08:00:00.000Z</t:UtcStartDate>"
                       "<t:DueDate>2024-01-02T00:00:00.000Z</t:DueDate><t:ReminderSet>1</t:ReminderSet>"
                       "<t:ReminderTime>2024-01-01T09:00:00Z</t:ReminderTime></e:Flag>"
                       "<e:Categories><e:Category>A</e:Category><e:Category>B</e:Category></e:Categories>"
                       "<e:Subject>ignored</e:Subject>")
    assert change.read is True and change.categories == ["A", "B"]
    flag = change.flag
    assert flag.status == 2 and flag.flag_type == "Follow up" and flag.reminder_set
    assert flag.start_date == datetime(2024, 1, 1, 8, tzinfo=UTC)  # the UTC form wins
    assert flag.due_date == datetime(2024, 1, 2, tzinfo=UTC)
    assert flag.reminder_time == datetime(2024, 1, 1, 9, tzinfo=UTC)


def test_parse_change_clearing() -> None:
    change = change_of("<e:Flag/><e:Categories/>")
    assert change.read is None and change.flag.status == 0 and change.categories == []
    done = change_of("<e:Flag><e:Status>1</e:Status><e:CompleteTime>2024-01-03T10:00:00.000Z</e:CompleteTime>"
                     "</e:Flag>")
    assert done.flag.status == 1 and done.flag.complete_time == datetime(2024, 1, 3, 10, tzinfo=UTC)
    assert change_of("<e:Read>0</e:Read>").read is False
    # 2.5 has neither Flag nor Categories: they are not applied.
    old = change_of("<e:Read>1</e:Read><e:Categories><e:Category>A</e:Category></e:Categories>", "2.5")
    assert old.read is True and old.categories is None


@pytest.mark.parametrize("xml", [
    "<e:Read>yes</e:Read>",
    "<e:Read/>",
    "<e:Flag><e:Status>5</e:Status></e:Flag>",
    "<e:Flag><e:Status>2</e:Status><t:DueDate>tomorrow</t:DueDate></e:Flag>",
    "<e:Flag><e:Status>2</e:Status><t:ReminderSet>x</t:ReminderSet></e:Flag>",
    "<e:Categories>" + "<e:Category>c</e:Category>" * 301 + "</e:Categories>",
    "<e:Categories><e:Category>" + "c" * 256 + "</e:Category></e:Categories>",
])
def test_parse_change_refuses_bad_values(xml: str) -> None:
    with pytest.raises(ProtocolError):
        change_of(xml)


def test_dates() -> None:
    assert format_date(datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=2)))) == \
        "2024-02-29T21:59:59.999Z"
    assert format_date(datetime(2024, 1, 1)) == "2024-01-01T00:00:00.000Z"
    for text in ("2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00Z", "20240101T000000Z", "2024-01-01T00:00:00"):
        assert parse_date(text) == datetime(2024, 1, 1, tzinfo=UTC)
    for bad in ("", "yesterday", "2024-13-01T00:00:00Z", None, b"2024", "2" * 50):
        with pytest.raises(ProtocolError):
            parse_date(bad)


# -- drafts ----------------------------------------------------------------------------------


def test_draft_mime() -> None:
    app = decode(from_xml(
        '<ApplicationData xmlns="AirSync:" xmlns:e="Email:" xmlns:e2="Email2:" xmlns:b="AirSyncBase:">'
        "<e:To>bob@example.com</e:To><e:Cc>carol@example.com</e:Cc><e2:Bcc>dave@example.com</e2:Bcc>"
        "<e:Subject>Plans ü</e:Subject><e:Importance>2</e:Importance>"
        "<b:Body><b:Type>2</b:Type><b:Data>&lt;p&gt;Hi&lt;/p&gt;</b:Data></b:Body></ApplicationData>"))
    msg = message_from_bytes(draft_mime(app, Version("16.1"), "alice@example.com"), policy=policy.default)
    assert msg["To"] == "bob@example.com" and msg["Cc"] == "carol@example.com" and msg["Bcc"] == "dave@example.com"
    assert msg["Subject"] == "Plans ü" and msg["From"] == "alice@example.com" and msg["Importance"] == "high"
    assert msg.get_content_type() == "text/html" and "<p>Hi</p>" in msg.get_content()
    bad = decode(from_xml('<ApplicationData xmlns="AirSync:" xmlns:b="AirSyncBase:">'
                          "<b:Body><b:Type>9</b:Type></b:Body></ApplicationData>"))
    with pytest.raises(ProtocolError):
        draft_mime(bad, Version("16.1"), "alice@example.com")

"""eas.items.notes: a Note written for 14.0 and later through the real codec and read back
as a device's Add would be; older versions have no Notes class."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eas.items import notes
from eas.items.email import parse_body_options
from eas.items.notes import Note
from eas.protocol.errors import ProtocolError
from eas.protocol.versions import Version
from eas.tags import AirSync, AirSyncBase
from eas.tags import Notes as N
from eas.testing.client import elements_outside
from eas.wbxml import Node, Writer, decode, from_xml

NOTE_VERSIONS = ("14.0", "14.1", "16.0", "16.1")


def render(note: Note, version: str, options: dict[str, Any] | None = None) -> Node:
    v = Version(version)
    w = Writer()
    with w.tag(AirSync.ApplicationData):
        notes.write(w, note, v, options if options is not None else parse_body_options(None, v, default_class="Notes"))
    node = decode(w.getvalue())
    assert elements_outside(node, version) == []
    return node


def options_for(version: str, xml: str) -> dict[str, Any]:
    return parse_body_options(decode(from_xml(f"<Options xmlns='AirSync:' xmlns:B='AirSyncBase:'>{xml}</Options>")),
                              Version(version))


@pytest.mark.parametrize("version", NOTE_VERSIONS)
def test_every_field_round_trips(version: str) -> None:
    note = Note(subject="Shopping \u00e9", body="eggs\nflour", message_class="IPM.StickyNote",
                last_modified=datetime(2024, 3, 1, 12, 30, 5, tzinfo=UTC), categories=["Home", "Food"])
    assert notes.parse(render(note, version), Version(version)) == note


@pytest.mark.parametrize("version", NOTE_VERSIONS)
def test_html_note_round_trips_when_the_device_takes_html(version: str) -> None:
    note = Note(subject="s", body="", body_html="<p>bold <b>idea</b></p>")
    node = render(note, version, options_for(version, "<B:BodyPreference><B:Type>2</B:Type></B:BodyPreference>"))
    assert node.findtext(AirSyncBase.Body, AirSyncBase.Type) == "2"
    back = notes.parse(node, Version(version))
    assert back.body_html == note.body_html
    assert back.body == "bold idea"


def test_html_note_as_plain_text() -> None:
    node = render(Note(subject="s", body_html="<p>bold <b>idea</b></p>"), "16.1")
    assert node.findtext(AirSyncBase.Body, AirSyncBase.Type) == "1"
    assert node.findtext(AirSyncBase.Body, AirSyncBase.Data) == "bold idea"


@pytest.mark.parametrize("version", ["2.5", "12.0", "12.1"])
def test_no_notes_before_14(version: str) -> None:
    with pytest.raises(ProtocolError):
        render(Note(subject="s"), version)
    with pytest.raises(ProtocolError):
        notes.parse(Node(AirSync.ApplicationData), Version(version))


def test_default_message_class_is_written() -> None:
    assert render(Note(subject="s", message_class=""), "14.0").findtext(N.MessageClass) == "IPM.StickyNote"


def device_data(body: str) -> Node:
    return decode(from_xml(f"<ApplicationData xmlns='AirSync:' xmlns:N='Notes:' xmlns:B='AirSyncBase:'>"
                           f"{body}</ApplicationData>"))


def test_parse_without_message_class_is_a_sticky_note() -> None:
    note = notes.parse(device_data("<N:Subject>x</N:Subject>"), Version("14.1"))
    assert note.message_class == "IPM.StickyNote"
    assert note.body == "" and note.body_html is None


@pytest.mark.parametrize("body", [
    "<N:MessageClass>IPM.Note</N:MessageClass>",
    "<N:LastModifiedDate>soon</N:LastModifiedDate>",
    "<N:Categories>" + "<N:Category>c</N:Category>" * 10_000 + "</N:Categories>",
    "<N:Subject>" + "s" * 40_000 + "</N:Subject>",
    "<B:Body><B:Type>x</B:Type></B:Body>",
])
def test_bad_values_are_status_6(body: str) -> None:
    with pytest.raises(ProtocolError) as e:
        notes.parse(device_data(body), Version("16.0"))
    assert e.value.status == 6


_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)


@settings(max_examples=60, deadline=None)
@given(subject=_text, body=_text, categories=st.lists(_text.filter(bool), max_size=4),
       modified=st.none() | st.datetimes(min_value=datetime(1901, 1, 1), max_value=datetime(2100, 1, 1)).map(
           lambda d: d.replace(microsecond=0, tzinfo=UTC)),
       suffix=st.sampled_from(["", ".Blue", ".Yellow"]), version=st.sampled_from(NOTE_VERSIONS))
def test_property_round_trip(subject: str, body: str, categories: list[str], modified: datetime | None,
                             suffix: str, version: str) -> None:
    note = Note(subject=subject, body=body, categories=categories, last_modified=modified,
                message_class="IPM.StickyNote" + suffix)
    assert notes.parse(render(note, version), Version(version)) == note

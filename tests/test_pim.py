"""Contacts, Tasks and Notes codecs against whatever a device might send: random
ApplicationData trees of the classes' own elements with plausible and hostile contents.
A tree is either read (and what is read can be written back, in the version, and read
again to the same item) or refused with ProtocolError status 6; nothing else escapes."""

from __future__ import annotations

from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st

from eas import tags
from eas.items import contacts, notes, pim, tasks
from eas.items.email import parse_body_options
from eas.protocol.errors import ProtocolError
from eas.protocol.versions import Version
from eas.tags import AirSync
from eas.testing.client import elements_outside
from eas.wbxml import Node, Writer, decode, encode

VERSIONS = ("2.5", "12.0", "12.1", "14.0", "14.1", "16.0", "16.1")
CLASSES: dict[str, tuple[ModuleType, tuple[int, ...]]] = {
    "Contacts": (contacts, (tags.Contacts.Alias >> 8, tags.Contacts2.NickName >> 8, tags.AirSyncBase.Body >> 8)),
    "Tasks": (tasks, (tags.Tasks.Subject >> 8, tags.AirSyncBase.Body >> 8)),
    "Notes": (notes, (tags.Notes.Subject >> 8, tags.AirSyncBase.Body >> 8)),
}


def _tags_of(pages: tuple[int, ...]) -> list[int]:
    return sorted(t for t in tags.BY_TAG if t >> 8 in pages)


_contents = st.one_of(
    st.none(), st.just(""), st.sampled_from(["0", "1", "2", "3", "-1", "--1", " 2 ", "\u0663", "99999999999", "IPM.StickyNote", "x"]),
    st.sampled_from(["2024-02-29T10:00:00.000Z", "20240229T100000Z", "1601-01-01T00:00:00Z",
                     "0001-01-01T00:00:00+05:00", "2024-13-01T00:00:00Z", "/9j/4AAQ", "!!"]),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30),
    st.binary(max_size=8),
)


@st.composite
def app_data(draw: st.DrawFn, pages: tuple[int, ...]) -> Node:
    names = st.sampled_from(_tags_of(pages))
    leaf = st.builds(Node, names, _contents)
    node = st.recursive(leaf, lambda kids: st.builds(Node, names, st.none(), st.lists(kids, max_size=4)),
                        max_leaves=12)
    return Node(AirSync.ApplicationData, None, draw(st.lists(node, max_size=12)))


def _check(module: ModuleType, tree: Node, version: str) -> None:
    v = Version(version)
    node = decode(encode(tree))  # as a device's request would arrive
    try:
        item = module.parse(node, v)
    except ProtocolError as e:
        assert e.status == pim.CONVERSION_ERROR
        return
    once = _round_trip(module, item, v)
    assert _round_trip(module, once, v) == once
    if isinstance(item, contacts.Contact) and isinstance(once, contacts.Contact) and not item.file_as:
        once.file_as = ""  # a FileAs is always sent (test_contact_item.test_file_as_is_always_sent)
    assert once == item


def _round_trip(module: ModuleType, item: object, v: Version) -> object:
    w = Writer()
    with w.tag(AirSync.ApplicationData):
        module.write(w, item, v, parse_body_options(None, v))
    written = decode(w.getvalue())
    assert elements_outside(written, v.text) == []
    return module.parse(written, v)


@settings(max_examples=60, deadline=None)
@given(tree=app_data(CLASSES["Contacts"][1]), version=st.sampled_from(VERSIONS))
def test_contacts_from_any_tree(tree: Node, version: str) -> None:
    _check(contacts, tree, version)


@settings(max_examples=60, deadline=None)
@given(tree=app_data(CLASSES["Tasks"][1]), version=st.sampled_from(VERSIONS))
def test_tasks_from_any_tree(tree: Node, version: str) -> None:
    _check(tasks, tree, version)


@settings(max_examples=60, deadline=None)
@given(tree=app_data(CLASSES["Notes"][1]), version=st.sampled_from(VERSIONS[3:]))
def test_notes_from_any_tree(tree: Node, version: str) -> None:
    _check(notes, tree, version)

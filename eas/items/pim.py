"""What the Contacts, Tasks and Notes codecs share: reading a device's values with the
bounds the protocol documents set, the 2.5 in-page bodies, the AirSyncBase Body of a
device's Add or Change, Categories, and how a Change merges into the stored item (for
the Calendar class too).

Every bad value raises ``ProtocolError`` with status 6 (MS-ASCMD 2.2.3.177.17, "error in
client/server conversion"), the per-item status a Sync Add or Change gets for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any, TypeVar

from eas import tags
from eas.items import body as bodies
from eas.items.email import parse_date
from eas.protocol.errors import ProtocolError
from eas.protocol.versions import Version
from eas.tags import AirSyncBase
from eas.wbxml import Node, Writer

CONVERSION_ERROR = 6
MAX_TEXT = 32 * 1024  # characters of one property; no client field comes near it
MAX_BODY = 4 * 1024 * 1024  # characters of a body a device sends
MAX_LIST = 300  # Category and Child elements (MS-ASCNTC 2.2.2.14, 2.2.2.22; MS-ASTASK 2.2.2.6)
MAX_CATEGORY = 255  # characters of one Category (as for mail, MS-ASEMAIL 2.2.2.15)

_Item = TypeVar("_Item")


def bad(message: str) -> ProtocolError:
    return ProtocolError(message, status=CONVERSION_ERROR)


def has(tag: int, version: Version) -> bool:
    """Whether ``version`` has the element (MS-ASWBXML code pages, via ``eas.tags``)."""
    return version.text in tags.BY_TAG[tag].versions


def text(node: Node, limit: int = MAX_TEXT) -> str:
    """The text of an element (an empty element is ""), at most ``limit`` characters."""
    value = node.text
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad(f"{tags.name(node.tag)} must be text")
    if len(value) > limit:
        raise bad(f"{tags.name(node.tag)} is longer than {limit} characters")
    return value


def integer(node: Node, lo: int, hi: int) -> int:
    value = text(node, 12).strip()
    digits = value.removeprefix("-")
    if value.isascii() and digits.isdigit() and lo <= int(value) <= hi:
        return int(value)
    raise bad(f"{tags.name(node.tag)} must be an integer in {lo}..{hi}, not {value!r}")


def boolean(node: Node) -> bool:
    value = text(node, 12).strip()
    if value in ("0", "1"):
        return value == "1"
    raise bad(f"{tags.name(node.tag)} must be 0 or 1, not {value!r}")


def date(node: Node) -> datetime:
    """A dateTime (MS-ASDTYPE 2.3) as an aware UTC datetime."""
    try:
        return parse_date(text(node, 40).strip())
    except ProtocolError:
        raise bad(f"{tags.name(node.tag)} is not a date: {node.text!r}") from None


def local_date(node: Node) -> datetime:
    """A local wall-clock dateTime (Tasks StartDate, DueDate): sent with a ``Z`` that does
    not mean UTC, kept naive."""
    return date(node).replace(tzinfo=None)


def strings(node: Node, child_tag: int, limit: int = MAX_TEXT) -> list[str]:
    """The texts of the ``child_tag`` children of a list element (Categories, Children);
    at most MAX_LIST of them."""
    out = [text(c, limit) for c in node.children if c.tag == child_tag]
    if len(out) > MAX_LIST:
        raise bad(f"more than {MAX_LIST} elements in {tags.name(node.tag)}")
    return out


def write_strings(w: Writer, list_tag: int, child_tag: int, values: list[str]) -> None:
    """A list element with at most MAX_LIST children; nothing for an empty list."""
    if values:
        with w.tag(list_tag):
            for value in values[:MAX_LIST]:
                w.leaf(child_tag, value)


def parse_fields(node: Node, target: Any, handlers: dict[int, Callable[[Node], Any]],
                 names: dict[int, str]) -> None:
    """Sets ``target.<names[tag]>`` to ``handlers[tag](child)`` for each known child;
    unknown elements are ignored (a later version's, or ones this class does not keep)."""
    for child in node.children:
        handler = handlers.get(child.tag)
        if handler is not None:
            setattr(target, names[child.tag], handler(child))


# -- Bodies ----------------------------------------------------------------------------------


def write_body_25(w: Writer, body: str, options: dict[str, Any], page_tags: tuple[int, int, int]) -> None:
    """A 2.5 class's own Body, BodySize and BodyTruncated (MS-ASCNTC 2.2.2.9-2.2.2.11,
    MS-ASTASK 2.2.2.2-2.2.2.4), truncated to the Truncation code's characters."""
    if not body:
        return
    body_tag, size_tag, truncated_tag = page_tags
    limit = options.get("truncation")
    if limit is not None and len(body) > limit:
        if limit:
            w.leaf(body_tag, body[:limit])
        w.leaf(size_tag, len(body))
        w.leaf(truncated_tag, "1")
    else:
        w.leaf(body_tag, body)
        w.leaf(truncated_tag, "0")


def parse_body(node: Node) -> tuple[str, str | None]:
    """``(text, html)`` of a device's AirSyncBase Body (MS-ASAIRS 2.2.2.9): plain text, or
    HTML with its text. RTF (Type 3) is not converted: it reads as no body."""
    kind = bodies.PLAIN
    data = ""
    for child in node.children:
        if child.tag == AirSyncBase.Type:
            kind = integer(child, 1, 4)
        elif child.tag == AirSyncBase.Data:
            data = text(child, MAX_BODY)
    if kind == bodies.HTML:
        return bodies.html_to_text(data), data
    if kind == bodies.PLAIN:
        return data, None
    return "", None


# -- A device's Change -----------------------------------------------------------------------
#
# Each class module has ``ATTRIBUTES`` (top-level element tag -> the item fields it carries)
# and ``merge_change(old, new, ghosted=None, *, keep_body=False)``, built on ``merge``.
# Which elements are ghosted is the Sync command's business (``eas.commands.sync``).

BODY_FIELDS = ("body", "body_html")
# The 2.5 in-page body elements and their BodyTruncated flags.
_BODIES_25 = {tags.Calendar.Body, tags.Contacts.Body, tags.Tasks.Body}
_TRUNCATED_25 = {tags.Calendar.BodyTruncated, tags.Contacts.BodyTruncated, tags.Tasks.BodyTruncated}


def sent_fields(node: Node, attributes: dict[int, tuple[str, ...]]) -> frozenset[str]:
    """The fields a device's ApplicationData carried (for ``merge``)."""
    out: set[str] = set()
    for child in node.children:
        out.update(attributes.get(child.tag, ()))
    return frozenset(out)


def ghosted(attributes: dict[int, tuple[str, ...]], supported: Collection[int]) -> frozenset[int]:
    """The elements a Supported list leaves out (MS-ASCMD 2.2.3.179). An element naming
    the same fields as a listed one (airsyncbase:Body for calendar:Body, the 16.x
    airsyncbase:Location for calendar:Location) counts as listed."""
    named = {name for tag in supported for name in attributes.get(tag, ())}
    return frozenset(tag for tag, names in attributes.items() if not named.intersection(names))


def merge(old: _Item, new: _Item, attributes: dict[int, tuple[str, ...]], ghosted: Collection[int] | None,
          keep_body: bool = False) -> _Item:
    """``new`` (parsed, with ``sent``) with ``old``'s value for each field of a ghosted
    element it does not carry (``ghosted`` None: every element); with ``keep_body`` the
    old body whatever was sent. The id and UID are always ``old``'s."""
    merged = dataclasses.replace(new)  # type: ignore[type-var]
    sent: Collection[str] = getattr(new, "sent", None) or frozenset()
    if keep_body:
        sent = set(sent).difference(BODY_FIELDS)
    kept = {name for tag, names in attributes.items() if ghosted is None or tag in ghosted for name in names}
    if keep_body:
        kept.update(name for name in BODY_FIELDS if hasattr(old, name))
    for name in kept:
        if name not in sent:
            setattr(merged, name, getattr(old, name))
    merged.id = old.id  # type: ignore[attr-defined]
    merged.uid = old.uid or new.uid  # type: ignore[attr-defined]
    return merged


def echoes_truncation(node: Node, stored: str, options: dict[str, Any]) -> bool:
    """Whether the body in a device's Change is the truncated copy the server sent, not
    an edit: marked truncated (2.5 BodyTruncated, AirSyncBase Truncated), or exactly as
    long as the collection's truncation while the stored body (``stored``, its longest
    form) is longer, so the server cut it. Such a body must not replace the stored one."""
    for child in node.children:
        tag = child.tag
        if tag in _TRUNCATED_25:
            if (child.text or "").strip() == "1":
                return True
        elif tag in _BODIES_25:
            limit = options.get("truncation")
            value = child.text if isinstance(child.text, str) else ""
            if limit is not None and len(stored) > limit and len(value) == limit:
                return True
        elif tag == AirSyncBase.Body:
            if (child.findtext(AirSyncBase.Truncated) or "").strip() == "1":
                return True
            data = child.findtext(AirSyncBase.Data)
            size = bodies.utf8_size(data if isinstance(data, str) else "")
            full = bodies.utf8_size(stored)
            for pref in options.get("body_preferences") or ():
                limit = pref.get("truncation_size")
                # a cut never splits a character: up to 3 bytes short of the limit
                if limit is not None and full > limit and limit - 4 < size <= limit:
                    return True
    return False

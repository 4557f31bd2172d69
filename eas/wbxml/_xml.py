"""The XML view of WBXML (lxml), for logs, the CLI and tests; not for the hot path.

Namespaces are the code page names with a colon (``AirSync:``, ``Email:``), as in the
protocol documents' examples and libwbxml. ``from_xml`` also takes them without the
colon, in any case, and in other implementations' spellings (``Gal:``, ``POOMMAIL``);
tag names may be other implementations' too (``Recurrence_Type``). Opaque content is
base64 text. The parser resolves no entity and loads nothing.
"""

from __future__ import annotations

import base64
import binascii
import re

from lxml import etree

from eas import tags
from eas.wbxml._errors import WBXMLError
from eas.wbxml._node import Node
from eas.wbxml._writer import Writer

# Z-Push's and Horde's names of the pages that have one of their own.
_PAGE_ALIASES = {"poomcontacts": 1, "poommail": 2, "poomcal": 4, "poomtasks": 9, "poomcontacts2": 12,
                 "poommail2": 22, "gal": 16}
_PAGES = {p.name.lower(): p.page for p in tags.PAGES} | _PAGE_ALIASES
_NAMES: list[dict[str, int]] = [
    {alias: t.tag for t in p.tags for alias in (*t.other_names, t.name)} for p in tags.PAGES
]
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def namespace(page: int) -> str:
    return tags.PAGES[page].name + ":"


def to_xml(data: bytes | Node) -> str:
    """Pretty XML for a WBXML message or a tree. Characters XML cannot carry (control
    characters, bytes that were not UTF-8) show as U+FFFD."""
    if isinstance(data, Node):
        node = data
    else:
        from eas.wbxml import decode

        node = decode(data)
    pages = sorted(_pages(node))
    nsmap = {None if p == node.tag >> 8 else tags.PAGES[p].name.lower(): namespace(p) for p in pages}
    root = etree.Element(_qname(node.tag), nsmap=nsmap)  # type: ignore[arg-type]
    _fill(root, node)
    body = etree.tostring(root, pretty_print=True, encoding="unicode")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + body


def _pages(node: Node) -> set[int]:
    pages = {node.tag >> 8}
    for child in node.children:
        pages |= _pages(child)
    return pages


def _qname(tag: int) -> str:
    info = tags.BY_TAG.get(tag)
    if info is None:
        raise WBXMLError(f"tag 0x{tag:04X} is not in the code page table")
    return f"{{{namespace(info.page)}}}{info.name}"


def _fill(el: etree._Element, node: Node) -> None:
    text = node.text
    if isinstance(text, bytes):
        el.text = base64.b64encode(text).decode("ascii")
    elif text:
        el.text = _NOT_XML.sub("\ufffd", text)
    for child in node.children:
        _fill(etree.SubElement(el, _qname(child.tag)), child)


def from_xml(text: str | bytes) -> bytes:
    """WBXML for an XML document in the view's form."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        huge_tree=False, remove_comments=True, remove_pis=True,
    )
    try:
        root = etree.fromstring(text.encode("utf-8") if isinstance(text, str) else text, parser)
    except etree.XMLSyntaxError as e:
        raise WBXMLError(f"XML is not well formed: {e.msg}") from None
    w = Writer()
    _write(w, root)
    return w.getvalue()


def _tag(el: etree._Element) -> int:
    if not isinstance(el.tag, str):
        raise WBXMLError(f"line {el.sourceline}: entity references are not allowed")
    qname = etree.QName(el)
    ns = qname.namespace
    if ns is None:
        raise WBXMLError(f"line {el.sourceline}: element {qname.localname} has no namespace")
    page = _PAGES.get(ns.rstrip(":").lower())
    if page is None:
        raise WBXMLError(f"line {el.sourceline}: unknown namespace {ns!r}")
    tag = _NAMES[page].get(qname.localname)
    if tag is None:
        raise WBXMLError(f"line {el.sourceline}: no tag {qname.localname} on code page {tags.PAGES[page].name}")
    return tag


def _write(w: Writer, el: etree._Element) -> None:
    tag = _tag(el)
    children = list(el)
    text = el.text
    if children:
        if (text and text.strip()) or any(c.tail and c.tail.strip() for c in children):
            raise WBXMLError(f"line {el.sourceline}: text beside child elements (mixed content)")
        with w.tag(tag):
            for child in children:
                _write(w, child)
    elif text is None:
        w.empty(tag)
    elif tags.BY_TAG[tag].opaque:
        try:
            w.opaque(tag, base64.b64decode("".join(text.split()), validate=True))
        except binascii.Error:
            raise WBXMLError(f"line {el.sourceline}: opaque {etree.QName(el).localname} is not base64") from None
    else:
        w.leaf(tag, text)

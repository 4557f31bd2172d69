"""Node: the decoded tree of a WBXML document."""

from __future__ import annotations

from collections.abc import Iterator

from eas import tags


class Node:
    """An element: ``tag`` (``page << 8 | token``), ``text`` (``str``, ``bytes`` for opaque
    content, or ``None``) and ``children``. ActiveSync has no mixed content, so a node
    carries text or children, not both."""

    __slots__ = ("children", "tag", "text")

    def __init__(self, tag: int, text: str | bytes | None = None, children: list[Node] | None = None) -> None:
        self.tag = tag
        self.text = text
        self.children = [] if children is None else children

    def find(self, *path: int) -> Node | None:
        """The first child with the tag; several tags walk down a path of first matches."""
        node: Node | None = self
        for tag in path:
            assert node is not None
            for child in node.children:
                if child.tag == tag:
                    node = child
                    break
            else:
                return None
        return node

    def findall(self, tag: int) -> list[Node]:
        """Every child with the tag, in document order."""
        return [child for child in self.children if child.tag == tag]

    def findtext(self, *path: int, default: str | bytes | None = None) -> str | bytes | None:
        """The text of ``find(*path)``; ``default`` when the element is missing.
        A present element without text gives ``''``, as ElementTree does."""
        node = self.find(*path)
        if node is None:
            return default
        return "" if node.text is None else node.text

    def __iter__(self) -> Iterator[Node]:
        return iter(self.children)

    def __len__(self) -> int:
        return len(self.children)

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Node):
            return NotImplemented
        return self.tag == other.tag and self.text == other.text and self.children == other.children

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        args = [tags.name(self.tag)]
        if self.text is not None:
            args.append(repr(self.text))
        if self.children:
            args.append(repr(self.children))
        return f"Node({', '.join(args)})"

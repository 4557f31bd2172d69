"""The codec's one error class and its limits, shared by the C kernels and the pure twin."""

from __future__ import annotations

from dataclasses import dataclass

DEPTH_CAP = 256  # EAS_WBXML_DEPTH_CAP in _wbxml.h: the C decoder's fixed per-depth array


class WBXMLError(ValueError):
    """Malformed or unencodable WBXML. ``offset`` is the byte offset at fault, when known."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.offset = offset
        super().__init__(message if offset is None else f"{message} at offset {offset}")


@dataclass(frozen=True)
class Limits:
    """Bounds on what ``decode`` accepts; each refusal is a ``WBXMLError``.

    The defaults fit the largest real EAS messages (a SendMail with a 40 MB attachment,
    a Sync window of 512 contacts) while keeping a hostile message's decoded tree to a
    few hundred bytes per input token.
    """

    max_depth: int = 64
    max_tokens: int = 1_000_000
    max_string_length: int = 64 * 1024 * 1024
    max_message_size: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_tokens", "max_string_length", "max_message_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 < value <= 0xFFFFFFFF:
                raise ValueError(f"Limits.{name} must be a positive 32-bit int, not {value!r}")
        if self.max_depth > DEPTH_CAP:
            raise ValueError(f"Limits.max_depth is at most {DEPTH_CAP}")


DEFAULT_LIMITS = Limits()

# Error codes of both kernels: the E_* enum of _wbxml.c, with the same names and numbers.
E_TRUNCATED = 1
E_VERSION = 2
E_MB_OVERFLOW = 3
E_CHARSET = 4
E_STRTBL_LENGTH = 5
E_UNKNOWN_PAGE = 6
E_UNKNOWN_TAG = 7
E_ATTRIBUTES = 8
E_LITERAL = 9
E_EXT = 10
E_PI = 11
E_END_WITHOUT_START = 12
E_TEXT_OUTSIDE = 13
E_MIXED = 14
E_DEPTH = 15
E_TOKENS = 16
E_STRING_LENGTH = 17
E_UNTERMINATED = 18
E_STRTBL_REF = 19
E_OPAQUE_LENGTH = 20
E_ENTITY = 21
E_TRAILING = 22
E_TAPE_FULL = 23
E_SIZE = 24
# encoder
E_BAD_OP = 40
E_ENC_TAG = 41
E_UNBALANCED = 42
E_STRINGS = 43
E_BLOBS = 44
E_ROOTS = 45
E_OUT_FULL = 46

# What each code means; a WBXMLError carries the message.
MESSAGES = {
    E_TRUNCATED: "unexpected end of data",
    E_VERSION: "unsupported WBXML version (1.1 to 1.3 are read)",
    E_MB_OVERFLOW: "multi-byte integer overflows 32 bits",
    E_CHARSET: "unsupported charset (UTF-8, US-ASCII and ISO-8859-1 are read)",
    E_STRTBL_LENGTH: "string table longer than the message",
    E_UNKNOWN_PAGE: "unknown code page",
    E_UNKNOWN_TAG: "unknown tag on this code page",
    E_ATTRIBUTES: "attributes are not used by ActiveSync",
    E_LITERAL: "LITERAL tokens are not used by ActiveSync",
    E_EXT: "EXT tokens are not used by ActiveSync",
    E_PI: "processing instructions are not used by ActiveSync",
    E_END_WITHOUT_START: "END without a start tag",
    E_TEXT_OUTSIDE: "content outside the root element",
    E_MIXED: "mixed content (text, opaque data and child elements in one element)",
    E_DEPTH: "elements nested deeper than the limit",
    E_TOKENS: "more tokens than the limit",
    E_STRING_LENGTH: "string or opaque data longer than the limit",
    E_UNTERMINATED: "string without its terminating NUL",
    E_STRTBL_REF: "string table reference out of range",
    E_OPAQUE_LENGTH: "opaque length exceeds the message",
    E_ENTITY: "entity is not a valid character",
    E_TRAILING: "data after the root element",
    E_TAPE_FULL: "decode tape full",  # internal: the wrapper retries with a larger tape
    E_SIZE: "message larger than the limit",  # checked before the kernel runs
    E_BAD_OP: "invalid writer operation",
    E_ENC_TAG: "tag not in the code page table",
    E_UNBALANCED: "unbalanced start and end of elements",
    E_STRINGS: "strings do not match the writer's operations",
    E_BLOBS: "opaque data does not match the writer's operations",
    E_ROOTS: "a document has exactly one root element",
    E_OUT_FULL: "output buffer too small",
}


def error(code: int, offset: int | None) -> WBXMLError:
    return WBXMLError(MESSAGES.get(code, f"error {code}"), offset)


def encode_error(code: int, index: int) -> WBXMLError:
    return WBXMLError(f"{MESSAGES.get(code, f'error {code}')} (writer operation {index})")

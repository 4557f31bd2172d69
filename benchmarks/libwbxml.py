"""A small cffi binding (ABI mode) of libwbxml2's tree API, as a reference point.

libwbxml2 installs only its conversion API's headers (``wbxml_conv.h``); the tree
functions are exported by ``libwbxml2.so.1`` but their prototypes live in the source's
``wbxml_tree.h``. The declarations below follow libwbxml 0.11's documented API:

    wbxml_tree_from_wbxml(wbxml, len, lang, charset, &tree)
    wbxml_tree_to_wbxml(tree, &wbxml, &len, &params)
    wbxml_tree_destroy(tree), wbxml_free(p), wbxml_errors_string(code)

Enums are passed as ``int``; ``WBXML_LANG_ACTIVESYNC`` is 2402 in the installed
``wbxml_conv.h`` (checked by ``check_headers``). ``WBXMLTree`` stays opaque.

Run ``python benchmarks/libwbxml.py`` to check libwbxml against the corpus: every
message must decode, and libwbxml's re-encoding must decode with ``eas.wbxml`` to the
same tree.
"""

from __future__ import annotations

import glob
import re
import sys

from cffi import FFI

ffi = FFI()
ffi.cdef(
    """
    typedef struct WBXMLTree_s WBXMLTree;
    typedef struct {
        int wbxml_version;            /* WBXMLVersion */
        unsigned char keep_ignorable_ws;
        unsigned char use_strtbl;
        unsigned char produce_anonymous;
    } WBXMLGenWBXMLParams;

    int wbxml_tree_from_wbxml(char *wbxml, unsigned int wbxml_len, int lang, int charset,
                              WBXMLTree **tree);
    int wbxml_tree_to_wbxml(WBXMLTree *tree, unsigned char **wbxml, unsigned int *wbxml_len,
                            WBXMLGenWBXMLParams *params);
    void wbxml_tree_destroy(WBXMLTree *tree);
    void wbxml_free(void *memblock);
    const char *wbxml_errors_string(int error_code);
    """
)

WBXML_OK = 0
WBXML_LANG_ACTIVESYNC = 2402
WBXML_CHARSET_UNKNOWN = 0  # take the charset from the document
WBXML_VERSION_13 = 0x03

lib = None
load_error = None
for _name in ("libwbxml2.so.1", "libwbxml2.so"):
    try:
        lib = ffi.dlopen(_name)
        break
    except OSError as e:  # pragma: no cover - depends on the machine
        load_error = e

available = lib is not None

# WBXML 1.3, no string table, anonymous (public id 1, as ActiveSync wants), and text kept
# as is: with keep_ignorable_ws off, libwbxml strips blanks around text and drops
# whitespace-only text, which changes mail bodies.
params = ffi.new("WBXMLGenWBXMLParams *")
params.wbxml_version = WBXML_VERSION_13
params.keep_ignorable_ws = 1
params.use_strtbl = 0
params.produce_anonymous = 1


class LibWBXMLError(Exception):
    pass


def _check(rc: int, what: str) -> None:
    if rc != WBXML_OK:
        raise LibWBXMLError(f"{what}: {ffi.string(lib.wbxml_errors_string(rc)).decode()} ({rc})")


def check_headers() -> str | None:
    """The value of WBXML_LANG_ACTIVESYNC in the installed headers, if found, as a check."""
    for path in glob.glob("/usr/include/libwbxml*/wbxml/wbxml_conv.h"):
        with open(path, encoding="utf-8", errors="replace") as f:
            m = re.search(r"WBXML_LANG_ACTIVESYNC\s*=\s*(\d+)", f.read())
        if m:
            if int(m.group(1)) != WBXML_LANG_ACTIVESYNC:
                raise RuntimeError(f"{path} says WBXML_LANG_ACTIVESYNC = {m.group(1)}")
            return path
    return None


class Tree:
    """A parsed libwbxml tree; ``to_wbxml`` re-encodes it; ``close`` frees it."""

    __slots__ = ("ptr",)

    def __init__(self, data: bytes) -> None:
        out = ffi.new("WBXMLTree **")
        _check(lib.wbxml_tree_from_wbxml(data, len(data), WBXML_LANG_ACTIVESYNC, WBXML_CHARSET_UNKNOWN, out),
               "wbxml_tree_from_wbxml")
        self.ptr = out[0]

    def to_wbxml(self) -> bytes:
        buf = ffi.new("unsigned char **")
        n = ffi.new("unsigned int *")
        _check(lib.wbxml_tree_to_wbxml(self.ptr, buf, n, params), "wbxml_tree_to_wbxml")
        try:
            return ffi.unpack(ffi.cast("char *", buf[0]), n[0])
        finally:
            lib.wbxml_free(buf[0])

    def close(self) -> None:
        if self.ptr is not None:
            lib.wbxml_tree_destroy(self.ptr)
            self.ptr = None

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_decoder():
    """A function data -> None that parses into a libwbxml tree and destroys it (what
    the benchmark times); the cffi objects are made once."""
    out = ffi.new("WBXMLTree **")
    parse, destroy = lib.wbxml_tree_from_wbxml, lib.wbxml_tree_destroy
    lang, cs = WBXML_LANG_ACTIVESYNC, WBXML_CHARSET_UNKNOWN

    def decode(data: bytes) -> None:
        if parse(data, len(data), lang, cs, out):
            raise LibWBXMLError("wbxml_tree_from_wbxml failed")
        destroy(out[0])

    return decode


def make_encoder():
    """A function tree_ptr -> int that encodes a pre-built tree and frees the output."""
    buf = ffi.new("unsigned char **")
    n = ffi.new("unsigned int *")
    encode, free, p = lib.wbxml_tree_to_wbxml, lib.wbxml_free, params

    def enc(tree_ptr) -> int:
        if encode(tree_ptr, buf, n, p):
            raise LibWBXMLError("wbxml_tree_to_wbxml failed")
        free(buf[0])
        return n[0]

    return enc


def verify(corpus: list[tuple[str, bytes]]) -> tuple[list[str], dict[str, str]]:
    """(names libwbxml handles, {name: why not} for the others): decode with libwbxml,
    re-encode, and compare eas.wbxml's trees of the original and the re-encoding."""
    from eas import wbxml

    ok: list[str] = []
    bad: dict[str, str] = {}
    for name, data in corpus:
        try:
            with Tree(data) as t:
                again = t.to_wbxml()
        except LibWBXMLError as e:
            bad[name] = str(e)
            continue
        try:
            same = wbxml.decode(again) == wbxml.decode(data)
        except wbxml.WBXMLError as e:
            bad[name] = f"re-encoding does not decode: {e}"
            continue
        if not same:
            bad[name] = "re-encoding decodes to a different tree"
            continue
        ok.append(name)
    return ok, bad


def main() -> int:
    if not available:
        print(f"libwbxml2 not loadable: {load_error}")
        return 1
    print("header check:", check_headers() or "wbxml_conv.h not found (value 2402 assumed)")
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import corpus

    msgs = corpus.corpus()
    ok, bad = verify(msgs)
    print(f"libwbxml handles {len(ok)}/{len(msgs)} messages")
    for name, why in bad.items():
        print(f"  {name}: {why}")
    return 0 if not bad else 2


if __name__ == "__main__":
    sys.exit(main())

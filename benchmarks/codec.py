"""Decode and encode throughput of eas.wbxml (C and pure kernels) against libwbxml2's
tree API and pyactivesync's pure-Python codec, on the corpus of ``corpus.py``.

    python benchmarks/codec.py            # full run (7 repeats of ~0.25 s per figure)
    python benchmarks/codec.py --quick    # short run (3 repeats of ~0.05 s)

What each implementation does per message:

decode
    eas C / eas pure  ``eas.wbxml.decode(data)`` -> Node tree (kernel switched with
                      ``eas.wbxml._impl.select``)
    libwbxml          ``wbxml_tree_from_wbxml`` (ActiveSync) + ``wbxml_tree_destroy``
    pyactivesync      ``WBXMLReader(data).parse()`` -> its tuple tree
encode
    eas C / eas pure  a compiled message-specific ``write(w)`` (nested ``with w.tag``,
                      ``w.leaf``/``w.opaque``/``w.empty``) on a fresh Writer +
                      ``getvalue()``
    libwbxml          ``wbxml_tree_to_wbxml`` from a tree built beforehand + ``wbxml_free``
    pyactivesync      nested ``wtag(...)`` builders for the message, run on a fresh
                      ``WBXMLWriter`` + ``render()`` (only messages its code page tables
                      can express; compared with libwbxml on those same messages)

Timing: timeit-style loops (number of passes over the message set calibrated to
``--target`` seconds, gc disabled unless ``--gc``), best of ``--repeat`` repeats, the
implementations interleaved within each repeat. "spread" is (worst - best) / best over
the repeats. MB/s counts WBXML bytes (10^6).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import corpus  # noqa: E402
import libwbxml  # noqa: E402

from eas import tags, wbxml  # noqa: E402
from eas.wbxml import Writer, _impl  # noqa: E402

try:
    from pyactivesync import _wbxml as pyas  # type: ignore[import-not-found]
    from pyactivesync._codepages import CODEPAGES as PYAS_PAGES, PAGE_INDEX as PYAS_INDEX
    import importlib.metadata as _md

    PYAS_VERSION = _md.version("pyactivesync")
except ImportError:  # the benchmark runs without it
    pyas = None
    PYAS_VERSION = None


# ---------------------------------------------------------------------------------------
# Per-message preparation


def pyas_plan(node: wbxml.Node):
    """The node as pyactivesync's (page name, tag name, children, text, opaque), or None
    when its code page tables lack a tag of the message."""
    names = {v: k for k, v in PYAS_INDEX.items()}

    def walk(n):
        page = names.get(n.tag >> 8)
        name = tags.BY_TAG[n.tag].name
        if page is None or PYAS_PAGES[page].get(name) != (n.tag & 0x3F):
            raise KeyError(tags.name(n.tag))
        kids = [walk(c) for c in n.children]
        text = n.text if isinstance(n.text, str) else None
        opq = n.text if isinstance(n.text, bytes) else None
        return (page, name, kids, text, opq)

    try:
        return walk(node)
    except KeyError:
        return None


def pyas_write(plan) -> bytes:
    """Write a message with pyactivesync's builder API (what its client code does)."""
    wtag = pyas.wtag

    def build(p):
        page, name, kids, text, opq = p
        return wtag(page, name, [build(k) for k in kids] if kids else None, text, opq)

    w = pyas.WBXMLWriter()
    build(plan)(w)
    return w.render()


class Msg:
    __slots__ = ("name", "data", "node", "write", "tree", "plan")

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self.data = name, data
        self.node = wbxml.decode(data)
        self.write = corpus.writer_function(self.node)
        self.tree = libwbxml.Tree(data) if libwbxml.available else None
        self.plan = pyas_plan(self.node) if pyas else None


def verify(msgs: list[Msg]) -> None:
    """Every implementation does its job right on every message before it is timed."""
    for m in msgs:
        for which in _impl.available():
            _impl.select(which)
            assert wbxml.decode(m.data) == m.node, (which, m.name)
            w = Writer()
            m.write(w)
            assert w.getvalue() == m.data, (which, m.name)
        if m.tree is not None:
            assert wbxml.decode(m.tree.to_wbxml()) == m.node, ("libwbxml", m.name)
        if m.plan is not None:
            assert pyas_write(m.plan) == m.data, ("pyactivesync", m.name)
        if pyas:
            pyas.WBXMLReader(m.data).parse()
    _impl.select("c" if "c" in _impl.available() else "python")


# ---------------------------------------------------------------------------------------
# Timed bodies: each makes one pass over a message set


def eas_decode(which: str, msgs: list[Msg]) -> tuple[Callable[[], None], Callable[[], None]]:
    datas = [m.data for m in msgs]
    decode = wbxml.decode

    def run() -> None:
        for d in datas:
            decode(d)

    return (lambda: _impl.select(which)), run


def eas_encode(which: str, msgs: list[Msg]):
    fns = [m.write for m in msgs]

    def run() -> None:
        for f in fns:
            w = Writer()
            f(w)
            w.getvalue()

    return (lambda: _impl.select(which)), run


def lib_decode(msgs: list[Msg]):
    datas = [m.data for m in msgs]
    dec = libwbxml.make_decoder()

    def run() -> None:
        for d in datas:
            dec(d)

    return None, run


def lib_encode(msgs: list[Msg]):
    trees = [m.tree.ptr for m in msgs]
    enc = libwbxml.make_encoder()

    def run() -> None:
        for t in trees:
            enc(t)

    return None, run


def pyas_decode(msgs: list[Msg]):
    datas = [m.data for m in msgs]
    Reader = pyas.WBXMLReader

    def run() -> None:
        for d in datas:
            Reader(d).parse()

    return None, run


def pyas_encode(msgs: list[Msg]):
    plans = [m.plan for m in msgs]

    def run() -> None:
        for p in plans:
            pyas_write(p)

    return None, run


CLOCK = time.perf_counter


class Case:
    def __init__(self, impl: str, op: str, setname: str, msgs: list[Msg], made) -> None:
        self.impl, self.op, self.setname = impl, op, setname
        self.nbytes = sum(len(m.data) for m in msgs)
        self.nmsgs = len(msgs)
        self.setup, self.run = made
        self.loops = 1
        self.times: list[float] = []

    def once(self, loops: int) -> float:
        if self.setup:
            self.setup()
        run = self.run
        clock = CLOCK
        t0 = clock()
        for _ in range(loops):
            run()
        return clock() - t0

    def calibrate(self, target: float) -> None:
        loops = 1
        while True:
            t = self.once(loops)
            if t >= target / 5 or loops >= 1 << 20:
                break
            loops *= min(100, max(2, int(target / 5 / max(t, 1e-9))))
        self.loops = max(1, round(loops * target / max(t, 1e-9)))

    def best(self) -> float:
        return min(self.times) / self.loops

    @property
    def mbps(self) -> float:
        return self.nbytes / self.best() / 1e6

    @property
    def msgps(self) -> float:
        return self.nmsgs / self.best()

    @property
    def spread(self) -> float:
        return (max(self.times) - min(self.times)) / min(self.times)

    @property
    def median_over_best(self) -> float:
        return statistics.median(self.times) / min(self.times) - 1


def build_cases(sets: dict[str, list[Msg]]) -> list[Case]:
    cases: list[Case] = []
    impls = _impl.available()
    for setname in ("all", "small"):
        msgs = sets[setname]
        for op in ("decode", "encode"):
            if libwbxml.available:
                cases.append(Case("libwbxml", op, setname, msgs, (lib_decode if op == "decode" else lib_encode)(msgs)))
            for which in impls:
                label = "eas C" if which == "c" else "eas pure"
                maker = eas_decode if op == "decode" else eas_encode
                cases.append(Case(label, op, setname, msgs, maker(which, msgs)))
            if pyas and op == "decode":
                cases.append(Case("pyactivesync", op, setname, msgs, pyas_decode(msgs)))
    if pyas:
        # pyactivesync can write only the messages its tables cover: compare on those.
        for setname in ("pyas-all", "pyas-small"):
            msgs = sets.get(setname)
            if not msgs:
                continue
            if libwbxml.available:
                cases.append(Case("libwbxml", "encode", setname, msgs, lib_encode(msgs)))
            if "c" in impls:
                cases.append(Case("eas C", "encode", setname, msgs, eas_encode("c", msgs)))
            cases.append(Case("pyactivesync", "encode", setname, msgs, pyas_encode(msgs)))
    return cases


# ---------------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()} "
            f"({platform.python_implementation()}), {platform.system()} {platform.release()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short run: 3 repeats of ~0.05 s")
    ap.add_argument("--repeat", type=int, help="repeats per figure (default 7, quick 3)")
    ap.add_argument("--target", type=float, help="seconds per repeat (default 0.25, quick 0.05)")
    ap.add_argument("--gc", action="store_true", help="leave the cyclic GC on while timing")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: time.perf_counter (as timeit); cpu: time.process_time, steadier "
                         "when other processes share the cores")
    args = ap.parse_args()
    repeat = args.repeat or (3 if args.quick else 7)
    target = args.target or (0.05 if args.quick else 0.25)

    raw = corpus.corpus()
    msgs = [Msg(n, d) for n, d in raw]
    small_names = {n for n, _ in corpus.small(raw)}
    sets = {"all": msgs, "small": [m for m in msgs if m.name in small_names]}
    if pyas:
        sets["pyas-all"] = [m for m in msgs if m.plan is not None]
        sets["pyas-small"] = [m for m in sets["small"] if m.plan is not None]
        if len(sets["pyas-all"]) == len(sets["pyas-small"]):
            del sets["pyas-all"]  # the same messages: time them once

    print(f"machine: {machine()}")
    print(f"eas.wbxml implementations: {', '.join(_impl.available())}; "
          f"libwbxml: {'libwbxml2.so.1 (ABI mode cffi)' if libwbxml.available else 'not loadable: %s' % libwbxml.load_error}; "
          f"pyactivesync: {PYAS_VERSION or 'not installed'}")
    for s in ("all", "small"):
        print(f"set {s!r}: {len(sets[s])} messages, {sum(len(m.data) for m in sets[s])} bytes")
    if pyas:
        missing = [m.name for m in msgs if m.plan is None]
        print(f"pyactivesync can write {sum(m.plan is not None for m in msgs)}/{len(msgs)} messages "
              f"({len(sets['pyas-small'])}/{len(sets['small'])} small); its tables lack tags of: {', '.join(missing)}")
    print(f"timing: best of {repeat}, ~{target}s per repeat, {args.clock} clock, gc {'on' if args.gc else 'off'}; "
          "verifying ...", flush=True)
    verify(msgs)

    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    cases = build_cases(sets)
    gc_was = gc.isenabled()
    for c in cases:
        c.calibrate(target)
    try:
        if not args.gc:
            gc.disable()
        for _ in range(repeat):
            for c in cases:
                gc.collect() if not args.gc else None
                c.times.append(c.once(c.loops))
    finally:
        if gc_was:
            gc.enable()
    _impl.select("c" if "c" in _impl.available() else "python")

    report(cases)
    return 0


def find(cases: list[Case], impl: str, op: str, setname: str) -> Case | None:
    for c in cases:
        if (c.impl, c.op, c.setname) == (impl, op, setname):
            return c
    return None


def report(cases: list[Case]) -> None:
    titles = {"all": "whole corpus", "small": "small messages (<= 2 KB)",
              "pyas-all": "messages pyactivesync can write",
              "pyas-small": "small messages pyactivesync can write"}
    print()
    print(f"{'set':<14} {'op':<7} {'implementation':<13} {'MB/s':>9} {'msg/s':>11} {'x libwbxml':>11} {'spread':>7}")
    for setname in ("all", "small", "pyas-all", "pyas-small"):
        for op in ("decode", "encode"):
            rows = [c for c in cases if c.setname == setname and c.op == op]
            if not rows:
                continue
            ref = find(cases, "libwbxml", op, setname)
            for c in rows:
                ratio = f"{c.msgps / ref.msgps:10.2f}x" if ref else "         -"
                print(f"{setname:<14} {op:<7} {c.impl:<13} {c.mbps:9.2f} {c.msgps:11.0f} {ratio:>11} {c.spread * 100:6.1f}%")
        if setname == "small" and pyas is None:
            print(f"{setname:<14} {'both':<7} {'pyactivesync':<13} not installed")
    present = {c.setname for c in cases}
    print("  (sets: " + "; ".join(f"{k} = {v}" for k, v in titles.items() if k in present) + ")")

    print("\nC / pure:")
    for setname in ("all", "small"):
        for op in ("decode", "encode"):
            c, p = find(cases, "eas C", op, setname), find(cases, "eas pure", op, setname)
            if c and p:
                print(f"  {op} {titles[setname]}: {c.msgps / p.msgps:.2f}x")

    print("\nTargets:")
    def tgt(label: str, a: Case | None, b: Case | None, need: float) -> None:
        if not (a and b):
            print(f"  {label}: cannot measure here")
            return
        r = a.msgps / b.msgps
        print(f"  {label}: {r:.2f}x (need >= {need}x) {'MET' if r >= need else 'MISSED by %.0f%%' % ((1 - r / need) * 100)}")
    tgt("decode whole corpus, eas C vs libwbxml", find(cases, "eas C", "decode", "all"), find(cases, "libwbxml", "decode", "all"), 1.5)
    tgt("decode small messages, eas C vs libwbxml", find(cases, "eas C", "decode", "small"), find(cases, "libwbxml", "decode", "small"), 1.0)
    tgt("encode whole corpus, eas C Writer vs libwbxml", find(cases, "eas C", "encode", "all"), find(cases, "libwbxml", "encode", "all"), 1.0)
    tgt("decode small messages, eas C vs eas pure", find(cases, "eas C", "decode", "small"), find(cases, "eas pure", "decode", "small"), 5.0)
    tgt("encode small messages, eas C vs eas pure", find(cases, "eas C", "encode", "small"), find(cases, "eas pure", "encode", "small"), 5.0)

    spreads = [c.spread for c in cases]
    print(f"\nNoise: spread (worst - best) / best over the repeats: median {statistics.median(spreads) * 100:.1f}%, "
          f"max {max(spreads) * 100:.1f}% ({max(cases, key=lambda c: c.spread).impl} "
          f"{max(cases, key=lambda c: c.spread).op} {max(cases, key=lambda c: c.spread).setname}); "
          f"median - best: median {statistics.median(c.median_over_best for c in cases) * 100:.1f}%")


if __name__ == "__main__":
    sys.exit(main())

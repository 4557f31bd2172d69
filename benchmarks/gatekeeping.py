"""What the built-in access engines cost per request: a quiet FolderSync (nothing changed)
through the whole core, in process, with the ABQ and policy engines at work against the
same request with the plain hooks (``allow_all``, ``permissive_policy``) in their place.

    python benchmarks/gatekeeping.py            # 2,000 requests per run, 5 runs each
    python benchmarks/gatekeeping.py --quick    # 500

The engines get a realistic load: ABQ in strict mode with ``--entries`` device-list
entries (the device measured among them, allowed personally) and ``--rules`` rules, half
of them regular expressions; a global and a group policy level. Runs alternate between
the two setups on the same data dir, and each prints its best and median microseconds per
request; the last line is the ratio of the medians (engines / plain hooks).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from eas.access import abq, policies
from eas.access.mobile import group_add
from eas.core import allow_all, permissive_policy
from eas.tags import FolderHierarchy as FH
from eas.testing.harness import client, make_app

FOLDERSYNC = '<FolderSync xmlns="FolderHierarchy:"><SyncKey>{}</SyncKey></FolderSync>'
USER = "alice@example.com"


async def main(requests: int, runs: int, entries: int, rules: int) -> None:
    app, _ = make_app(Path(tempfile.mkdtemp(prefix="eas-gate-")))
    store = app.store
    await abq.import_devices(store, [f"Device{n} {USER}" for n in range(entries)], "allowed", actor="bench")
    for n in range(rules):
        await abq.add_rule(store, "block", "model", f"^Model-{n}-" if n % 2 else f"Model {n}", regex=bool(n % 2),
                           actor="bench")
    await group_add(store, "staff", ["@example.com"], actor="bench")
    await policies.set_values(store, "global", None, {"MaxAttachmentSize": 10_000_000}, actor="bench")
    await policies.set_values(store, "group", "staff", {"AllowCamera": 0}, actor="bench")
    await abq.set_device(store, "BenchPhone", "allowed", user=USER, actor="bench")
    await abq.set_mode(store, "strict", actor="bench")
    engines = (app.access, app.policy)
    plain = (allow_all, permissive_policy)

    c = client(app, version="14.1", device_id="BenchPhone")
    await c.provision()
    key = (await c.command("FolderSync", FOLDERSYNC.format(0))).text(FH.SyncKey)
    body = FOLDERSYNC.format(key)

    async def run(hooks: tuple[object, object]) -> float:
        app.access, app.policy = hooks  # type: ignore[assignment]
        await c.provision()  # the policy (and its key) differs between the two setups
        start = time.perf_counter()
        for _ in range(requests):
            reply = await c.command("FolderSync", body)
        elapsed = time.perf_counter() - start
        assert reply.text(FH.Status) == "1", reply.xml
        return elapsed / requests * 1e6

    timings: dict[str, list[float]] = {"engines": [], "plain hooks": []}
    for _ in range(runs):
        timings["engines"].append(await run(engines))
        timings["plain hooks"].append(await run(plain))
    decision = await app.abq(None, USER, (await store.get_device(USER, "BenchPhone")))  # type: ignore[arg-type]
    assert (decision.access, decision.reason) == ("allowed", "individual"), decision
    for name, values in timings.items():
        print(f"{name:12} best {min(values):7.1f} us, median {statistics.median(values):7.1f} us per request")
    ratio = statistics.median(timings["engines"]) / statistics.median(timings["plain hooks"])
    print(f"engines / plain hooks: {ratio:.3f} ({entries} list entries, {rules} rules, strict mode, "
          "global and group policy)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="500 requests per run instead of 2,000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--entries", type=int, default=2000)
    ap.add_argument("--rules", type=int, default=50)
    args = ap.parse_args()
    asyncio.run(main(500 if args.quick else 2000, args.runs, args.entries, args.rules))

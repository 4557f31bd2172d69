"""The reference server of ``ping.py``: the same uvicorn, configured as ``eas serve``
configures it (h11, keep-alive, backlog, no concurrency limit), running a trivial ASGI
app that reads each request and then holds it open until the client leaves.

    python benchmarks/holdapp.py --port 8099

What a parked Ping costs beyond this is what eas adds to an idle long poll.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

from eas import server

Message = MutableMapping[str, Any]


async def hold(scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Message]],
               send: Callable[[Message], Awaitable[None]]) -> None:
    """Read the request's body, then wait for the client to go (nothing is ever sent)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    while (await receive())["type"] != "http.disconnect":
        pass


async def main(port: int) -> None:
    sock = server.listen("127.0.0.1", port, backlog=server.BACKLOG)
    config = uvicorn.Config(
        hold, host="127.0.0.1", port=port, http="h11", lifespan="on", timeout_keep_alive=server.KEEP_ALIVE_SECONDS,
        limit_concurrency=None, timeout_graceful_shutdown=server.SHUTDOWN_GRACE_SECONDS, log_level="warning",
        server_header=False, backlog=server.BACKLOG)
    print(f"holdapp: listening on 127.0.0.1:{port}", flush=True)
    try:
        await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        sock.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    asyncio.run(main(ap.parse_args().port))

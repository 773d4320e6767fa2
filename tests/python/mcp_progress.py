"""A long MCP call with the official `mcp` SDK (tests/e2e/mcp.rs runs it): progress while it
runs, and a call the client gives up on.

Usage: mcp_progress.py URL KEY MODE
Calls `slow` for 2.5 s with a progress callback, then starts a 1.5 s call and abandons it after
0.3 s (the SDK cancels it: `notifications/cancelled` in a session, closing the request's stream
without), waits for it to end on the server, and sends it again with the same Idempotency-Key.
Prints one JSON object: the progress notifications, and both results.
"""

import asyncio
import json
import sys

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_results import result

META = "dev.visakeys"


async def main(url, key, mode):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    out = {"progress": []}

    async def progress(value, total, message):
        out["progress"].append({"progress": value, "total": total, "message": message})

    async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        out["long"] = result(await client.call_tool("slow", {"ms": 2500}, progress_callback=progress))
        once = {f"{META}/idempotency_key": "abandoned-call"}
        with anyio.move_on_after(0.3) as scope:
            await client.call_tool("slow", {"ms": 1500}, meta=once)
        out["abandoned"] = scope.cancelled_caught
        await asyncio.sleep(2.5)
        out["again"] = result(await client.call_tool("slow", {"ms": 1500}, meta=once))
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))

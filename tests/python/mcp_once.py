"""One MCP session with the official `mcp` SDK (tests/e2e/mcp.rs runs it): `tools/list` and one
`tools/call` of `echo`, or the error the SDK raised.

Usage: mcp_once.py URL KEY
Prints one JSON object: `{"tools": [...], "result": {...}}`, or `{"error": "...", "statuses":
[...]}` (the HTTP statuses the server answered) when the SDK could not connect or call.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_results import result


async def main(url, key):
    statuses = []

    async def record(response):
        statuses.append(response.status_code)

    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {key}"}, timeout=30, event_hooks={"response": [record]}
    )
    try:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            r = await client.call_tool("echo", {"hello": "preview"})
            out = {"tools": tools, "result": result(r)}
    except BaseException as e:  # an ExceptionGroup from the SDK's task group, or one error
        out = {"error": repr(e), "statuses": statuses}
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))

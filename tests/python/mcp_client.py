"""Drives Visa Keys' MCP endpoint with the official `mcp` SDK (tests/e2e/mcp.rs runs it).

Usage: mcp_client.py URL KEY MODE FORBIDDEN_TOOL
MODE is the SDK's connection mode: `legacy` (initialize, a session) or `auto` (the newest
revision the server supports). Prints one JSON object: what `tools/list` answered, and each
`tools/call` result as the SDK decoded it (the last, `capped`, the first call the key's daily
cap refused), for the Rust test to check against the ledger.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_results import result

META = "dev.visakeys"


async def main(url, key, mode, forbidden):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    out = {}
    async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        listed = await client.list_tools()
        out["tools"] = [
            {"name": t.name, "input_schema": t.input_schema, "meta": dict(t.meta or {})} for t in listed.tools
        ]
        once = {f"{META}/idempotency_key": "mcp-call-1"}
        out["first"] = result(await client.call_tool("echo", {"n": 1}, meta=once))
        out["again"] = result(await client.call_tool("echo", {"n": 1}, meta=once))
        out["other"] = result(await client.call_tool("echo", {"n": 2}))
        out["forbidden"] = result(await client.call_tool(forbidden, {}))
        # Calls until the key's daily cap refuses one (the test gives the key a small cap).
        out["capped"] = None
        for n in range(10, 20):
            r = result(await client.call_tool("echo", {"n": n}))
            if r["is_error"]:
                out["capped"] = r
                break
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))

"""What the MCP test scripts print of a `tools/call` result, as the SDK decoded it (shared by
mcp_client.py, mcp_progress.py, mcp_oauth_client.py and mcp_once.py)."""


def result(r):
    return {
        "is_error": bool(r.is_error),
        "structured": r.structured_content,
        "text": [c.text for c in r.content if getattr(c, "type", "") == "text"],
        "meta": dict(r.meta or {}),
    }

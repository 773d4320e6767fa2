-- MCP sessions (clients of the revisions that have them): what the client sent with
-- `initialize`, so that any node can continue a session another opened, and a restarted node
-- its own. The id is the `Mcp-Session-Id` the server minted; the key is checked on every
-- request, so the session itself grants nothing.
CREATE TABLE mcp_sessions (
    id          TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX mcp_sessions_by_age ON mcp_sessions (created_at);

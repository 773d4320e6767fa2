-- OAuth for MCP clients that cannot hold a key (docs/mcp.md, "OAuth"). A client registers
-- itself (RFC 7591); a member's consent mints a tool key for it (the grant); the access token
-- is a short-lived secret of that key (key_secrets), so every check of a key applies to it and
-- revoking the key ends the grant at once. Codes and refresh tokens are stored as hashes only.
CREATE TABLE oauth_clients (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id      TEXT NOT NULL UNIQUE,
    client_name    TEXT NOT NULL,
    redirect_uris  TEXT NOT NULL,
    metadata       TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);

-- One grant per minted key: which client it is for, who approved it, and the one resource
-- (the MCP URL) its tokens are accepted at.
CREATE TABLE oauth_grants (
    key_id      INTEGER PRIMARY KEY REFERENCES keys(id),
    client_id   INTEGER NOT NULL REFERENCES oauth_clients(id),
    member_id   INTEGER NOT NULL REFERENCES members(id),
    resource    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX oauth_grants_by_client ON oauth_grants(client_id);

CREATE TABLE oauth_codes (
    hash            BLOB PRIMARY KEY,
    key_id          INTEGER NOT NULL REFERENCES keys(id),
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER
);
CREATE INDEX oauth_codes_by_age ON oauth_codes(expires_at);

CREATE TABLE oauth_refresh_tokens (
    hash        BLOB PRIMARY KEY,
    key_id      INTEGER NOT NULL REFERENCES keys(id),
    created_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX oauth_refresh_tokens_by_key ON oauth_refresh_tokens(key_id);

-- An OAuth client acting on its grant (redeeming a code, refreshing) is an audit log actor.
-- SQLite's recipe for a changed CHECK: rebuild the table, same rows, same index and triggers.
CREATE TABLE audit_log_v2 (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    actor_type   TEXT NOT NULL CHECK (actor_type IN ('operator', 'member', 'admin_key', 'oauth_client')),
    actor_id     INTEGER,
    actor_label  TEXT,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    changes      TEXT NOT NULL,
    ip           TEXT,
    user_agent   TEXT,
    created_at   INTEGER NOT NULL
);
DROP TRIGGER audit_no_update;
DROP TRIGGER audit_no_delete;
INSERT INTO audit_log_v2 (id, account_id, actor_type, actor_id, actor_label, action, target, changes, ip, user_agent, created_at)
    SELECT id, account_id, actor_type, actor_id, actor_label, action, target, changes, ip, user_agent, created_at FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_v2 RENAME TO audit_log;
CREATE INDEX audit_by_account ON audit_log(account_id, id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;

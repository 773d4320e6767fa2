-- A key's cap alert percentage (docs/webhooks.md: `key.cap.threshold` when its spend passes
-- this share of a cap), and the server itself as an audit log actor: it disables a webhook
-- endpoint that has failed for five days in a row.
ALTER TABLE keys ADD COLUMN cap_alert_percent INTEGER NOT NULL DEFAULT 80
    CHECK (cap_alert_percent BETWEEN 1 AND 100);

-- SQLite's recipe for a changed CHECK: rebuild the table, same rows, same index and triggers.
CREATE TABLE audit_log_v3 (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    actor_type   TEXT NOT NULL CHECK (actor_type IN ('operator', 'member', 'admin_key', 'oauth_client', 'system')),
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
INSERT INTO audit_log_v3 (id, account_id, actor_type, actor_id, actor_label, action, target, changes, ip, user_agent, created_at)
    SELECT id, account_id, actor_type, actor_id, actor_label, action, target, changes, ip, user_agent, created_at FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_v3 RENAME TO audit_log;
CREATE INDEX audit_by_account ON audit_log(account_id, id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;

-- `key.revoked` with reason `secret_ended` when an old secret of a rotation stops working
-- (docs/webhooks.md): once per secret. Secrets already ended, and those of OAuth grants (their
-- access tokens end every hour), count as told.
ALTER TABLE key_secrets ADD COLUMN end_announced INTEGER NOT NULL DEFAULT 0;
UPDATE key_secrets SET end_announced = 1
    WHERE revoked_at IS NOT NULL OR expires_at <= CAST(strftime('%s', 'now') AS INTEGER) * 1000000
       OR key_id IN (SELECT key_id FROM oauth_grants);
CREATE INDEX key_secrets_ending ON key_secrets(id)
    WHERE NOT end_announced AND (revoked_at IS NOT NULL OR expires_at IS NOT NULL);

-- The end user a paid call was made for (docs/end-users.md): kept on the execution and in its
-- receipt, as the caller sent it.
ALTER TABLE executions ADD COLUMN end_user TEXT;

-- A key may require every paid call to name its end user (docs/end-users.md).
ALTER TABLE keys ADD COLUMN end_user_required INTEGER NOT NULL DEFAULT 0;

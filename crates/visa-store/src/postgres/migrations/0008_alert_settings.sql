-- A key's cap alert percentage (docs/webhooks.md: `key.cap.threshold` when its spend passes
-- this share of a cap), and the server itself as an audit log actor: it disables a webhook
-- endpoint that has failed for five days in a row.
ALTER TABLE keys ADD COLUMN cap_alert_percent BIGINT NOT NULL DEFAULT 80
    CHECK (cap_alert_percent BETWEEN 1 AND 100);
ALTER TABLE audit_log DROP CONSTRAINT audit_log_actor_type_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_actor_type_check
    CHECK (actor_type IN ('operator', 'member', 'admin_key', 'oauth_client', 'system'));

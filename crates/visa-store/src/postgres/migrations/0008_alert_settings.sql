-- A key's cap alert percentage (docs/webhooks.md: `key.cap.threshold` when its spend passes
-- this share of a cap), and the server itself as an audit log actor: it disables a webhook
-- endpoint that has failed for five days in a row.
ALTER TABLE keys ADD COLUMN cap_alert_percent BIGINT NOT NULL DEFAULT 80
    CHECK (cap_alert_percent BETWEEN 1 AND 100);
ALTER TABLE audit_log DROP CONSTRAINT audit_log_actor_type_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_actor_type_check
    CHECK (actor_type IN ('operator', 'member', 'admin_key', 'oauth_client', 'system'));

-- `key.revoked` with reason `secret_ended` when an old secret of a rotation stops working
-- (docs/webhooks.md): once per secret. Secrets already ended, and those of OAuth grants (their
-- access tokens end every hour), count as told.
ALTER TABLE key_secrets ADD COLUMN end_announced BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE key_secrets SET end_announced = TRUE
    WHERE revoked_at IS NOT NULL OR expires_at <= (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
       OR key_id IN (SELECT key_id FROM oauth_grants);
CREATE INDEX key_secrets_ending ON key_secrets(id)
    WHERE NOT end_announced AND (revoked_at IS NOT NULL OR expires_at IS NOT NULL);

-- The end user a paid call was made for (docs/end-users.md): kept on the execution and in its
-- receipt, as the caller sent it.
ALTER TABLE executions ADD COLUMN end_user TEXT;

-- A key may require every paid call to name its end user (docs/end-users.md).
ALTER TABLE keys ADD COLUMN end_user_required BOOLEAN NOT NULL DEFAULT FALSE;

-- Webhooks (docs/webhooks.md): an account's endpoints, the events written to an outbox in
-- the transaction of their cause, one delivery per event and endpoint (leased by the node that
-- attempts it), and the log of attempts. An endpoint's signing secret is not stored: it is
-- derived from the server's webhook key and the endpoint's salt, which alone reveals nothing.
CREATE TABLE webhook_endpoints (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id       INTEGER NOT NULL REFERENCES accounts(id),
    url              TEXT NOT NULL,
    events           TEXT NOT NULL,
    description      TEXT NOT NULL,
    enabled          INTEGER NOT NULL,
    disabled_reason  TEXT,
    secret_salt      BLOB NOT NULL,
    previous_salt    BLOB,
    previous_until   INTEGER,
    failing_since    INTEGER,
    created_at       INTEGER NOT NULL,
    deleted_at       INTEGER
);
CREATE INDEX webhook_endpoints_by_account ON webhook_endpoints(account_id);

CREATE TABLE webhook_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id   TEXT NOT NULL UNIQUE,
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    type        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX webhook_events_by_account ON webhook_events(account_id, created_at);

CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id         INTEGER NOT NULL REFERENCES webhook_events(id),
    endpoint_id      INTEGER NOT NULL REFERENCES webhook_endpoints(id),
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    leased_by        INTEGER,
    leased_until     INTEGER,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_attempt_at);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries(endpoint_id, event_id);

CREATE TABLE webhook_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id  INTEGER NOT NULL REFERENCES webhook_deliveries(id),
    endpoint_id  INTEGER NOT NULL REFERENCES webhook_endpoints(id),
    attempt      INTEGER NOT NULL,
    status       INTEGER,
    error        TEXT,
    latency_ms   INTEGER NOT NULL,
    response     TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts(endpoint_id, id);

-- Low-balance alerts: the thresholds (cents) under which the available balance fires
-- `balance.low`, and those that fired and wait for a credit to lift the balance above them.
ALTER TABLE accounts ADD COLUMN low_balance_thresholds TEXT NOT NULL DEFAULT '[1000]';
ALTER TABLE accounts ADD COLUMN low_balance_fired TEXT NOT NULL DEFAULT '[]';

-- Cap alerts already sent (bit 1: passed 80 % of the cap, bit 2: a call refused by it): the
-- daily cap's per key and day, the total cap's per key.
ALTER TABLE key_days ADD COLUMN alerts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE key_spend ADD COLUMN alerts INTEGER NOT NULL DEFAULT 0;

-- Expiry alerts already sent for the key's current expiry (bit 1: a week before, bit 2: a day).
ALTER TABLE keys ADD COLUMN expiry_alerts INTEGER NOT NULL DEFAULT 0;

-- The per-key rate limit: GCRA's theoretical arrival time (unix microseconds), moved by the
-- hold's first statement.
ALTER TABLE key_spend ADD COLUMN rate_tat_micros INTEGER NOT NULL DEFAULT 0;
-- One counter that every change to what authentication reads moves in the same transaction;
-- the credential cache polls it.
CREATE TABLE auth_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
);
INSERT INTO auth_version (id, version) VALUES (1, 0);

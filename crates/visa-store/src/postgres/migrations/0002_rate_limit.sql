-- The per-key rate limit, shared by every node: GCRA's theoretical arrival time (unix
-- microseconds), moved by the statement that locks the key's row for a hold.
ALTER TABLE key_spend ADD COLUMN rate_tat_micros BIGINT NOT NULL DEFAULT 0;
-- One counter that every change to what authentication reads (a key's policy, its secrets,
-- its account's approval) moves in the same transaction; each node's credential cache polls
-- it, and the trigger wakes the nodes listening as soon as the change commits.
CREATE TABLE auth_version (
    id       BIGINT PRIMARY KEY CHECK (id = 1),
    version  BIGINT NOT NULL
);
INSERT INTO auth_version (id, version) VALUES (1, 0);
CREATE FUNCTION visa_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('visa_auth', NEW.version::text);
    RETURN NEW;
END $$;
CREATE TRIGGER auth_version_notify AFTER UPDATE ON auth_version
    FOR EACH ROW EXECUTE FUNCTION visa_auth_changed();

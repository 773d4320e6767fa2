-- Members: the people of an account, each with a role. Logins are unique server-wide. The
-- account's creator (its login) becomes its first owner; passwords move from the account to
-- its members. An invited member has an invitation hash until it is accepted.
CREATE TABLE members (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id         INTEGER NOT NULL REFERENCES accounts(id),
    login              TEXT NOT NULL UNIQUE,
    role               TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
    password_hash      TEXT,
    invite_hash        BLOB UNIQUE,
    invite_expires_at  INTEGER,
    created_at         INTEGER NOT NULL
);
CREATE INDEX members_by_account ON members(account_id, id);
INSERT INTO members (account_id, login, role, password_hash, created_at)
    SELECT id, login, 'owner', password_hash, created_at FROM accounts;
ALTER TABLE accounts DROP COLUMN password_hash;

-- A session belongs to a member; its role is read on every request, so a role change or a
-- removal takes effect at once.
ALTER TABLE sessions ADD COLUMN member_id INTEGER REFERENCES members(id);
UPDATE sessions SET member_id = (SELECT m.id FROM members m WHERE m.account_id = sessions.account_id);
CREATE INDEX sessions_by_member ON sessions(member_id);

-- Append-only: one row per control-plane change, written in the change's own transaction.
-- `changes` is a JSON object: field -> {"before": .., "after": ..}.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    actor_type   TEXT NOT NULL CHECK (actor_type IN ('operator', 'member', 'admin_key')),
    actor_id     INTEGER,
    actor_label  TEXT,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    changes      TEXT NOT NULL,
    ip           TEXT,
    user_agent   TEXT,
    created_at   INTEGER NOT NULL
);
CREATE INDEX audit_by_account ON audit_log(account_id, id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;

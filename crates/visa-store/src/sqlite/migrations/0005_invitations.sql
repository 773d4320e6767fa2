-- A pending invitation no longer holds its login: only members who accepted (or owners made
-- with their account) own a login server-wide; within an account a login is invited once.
-- (Rebuilt by SQLite's recipe: a UNIQUE column constraint cannot be dropped in place.)
CREATE TABLE members_rebuilt (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id         INTEGER NOT NULL REFERENCES accounts(id),
    login              TEXT NOT NULL,
    role               TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
    password_hash      TEXT,
    invite_hash        BLOB UNIQUE,
    invite_expires_at  INTEGER,
    created_at         INTEGER NOT NULL
);
INSERT INTO members_rebuilt SELECT id, account_id, login, role, password_hash, invite_hash, invite_expires_at, created_at FROM members;
DROP TABLE members;
ALTER TABLE members_rebuilt RENAME TO members;
CREATE INDEX members_by_account ON members(account_id, id);
CREATE UNIQUE INDEX members_login_active ON members(login) WHERE invite_hash IS NULL;
CREATE UNIQUE INDEX members_login_in_account ON members(account_id, login);
CREATE INDEX members_invitations_by_expiry ON members(invite_expires_at) WHERE invite_hash IS NOT NULL;
-- Sessions say where they were opened, so a member can tell theirs from a thief's; expired
-- ones are pruned.
ALTER TABLE sessions ADD COLUMN ip TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
CREATE INDEX sessions_by_expiry ON sessions(expires_at);

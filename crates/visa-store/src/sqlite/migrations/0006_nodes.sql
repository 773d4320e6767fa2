-- Server processes and their leases: an execution records the node running it, and only a
-- node whose lease expired has its running executions turned reconcile_required.
CREATE TABLE nodes (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT NOT NULL,
    started_at        INTEGER NOT NULL,
    lease_expires_at  INTEGER NOT NULL,
    reclaimed_at      INTEGER
);
ALTER TABLE executions ADD COLUMN node_id INTEGER REFERENCES nodes(id);
-- The calls in flight, by node: small (entries leave as calls settle) and written at its
-- right edge, so reclaiming a dead node's calls never scans the executions.
CREATE INDEX executions_running_by_node ON executions(node_id) WHERE state = 'running';

//! The PostgreSQL schema as an ordered list of migrations (`migrations/NNNN_*.sql`, one file
//! each, never edited once released); `visa_schema` records how many have run. The shape is
//! SQLite's newest one (`crate::sqlite::schema`), so the shared SQL reads
//! both alike: every integer is `BIGINT` (each parameter binds as an `i64`), hashes are
//! `BYTEA`, flags `BOOLEAN`, times integer microseconds, JSON is text. The ledger and the audit
//! log refuse `UPDATE` and `DELETE` by trigger. The money path's own rows (executions, their
//! Idempotency-Key records and stored answers, the ledger) have no foreign keys, for speed
//! (see the migration that dropped them); SQLite keeps them, where they cost little.
//!
//! Nodes starting together migrate once: each runs the migrations in one transaction holding
//! an advisory lock, and a node refuses a schema newer than the migrations it knows.

use crate::StoreError;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_rate_limit.sql"),
    include_str!("migrations/0003_idempotency_optional.sql"),
    include_str!("migrations/0004_no_money_foreign_keys.sql"),
    include_str!("migrations/0005_mcp_sessions.sql"),
    include_str!("migrations/0006_oauth.sql"),
    include_str!("migrations/0007_webhooks.sql"),
    include_str!("migrations/0008_alert_settings.sql"),
    include_str!("migrations/0009_end_user_caps.sql"),
];

/// The advisory lock nodes migrate under ("visa" and 1).
const MIGRATION_LOCK: i64 = 0x7669_7361_0000_0001;

/// Brings the database up to the newest schema in one transaction, under the advisory lock;
/// refuses a schema newer than this build knows.
pub fn migrate(client: &mut postgres::Client) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(super::map_pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(super::map_pg_error)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS visa_schema (version BIGINT NOT NULL)")
        .map_err(super::map_pg_error)?;
    let applied: Option<i64> = tx
        .query_opt("SELECT version FROM visa_schema", &[])
        .map_err(super::map_pg_error)?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(super::map_pg_error)?;
    let applied = applied.unwrap_or(0);
    let known = MIGRATIONS.len() as i64;
    if applied > known {
        return Err(StoreError::Internal(format!(
            "the database's schema is version {applied}, newer than this build knows ({known}): run the newer release"
        )));
    }
    for sql in MIGRATIONS.iter().skip(applied as usize) {
        tx.batch_execute(sql).map_err(super::map_pg_error)?;
    }
    tx.execute("DELETE FROM visa_schema", &[]).map_err(super::map_pg_error)?;
    tx.execute("INSERT INTO visa_schema (version) VALUES ($1)", &[&known]).map_err(super::map_pg_error)?;
    tx.commit().map_err(super::map_pg_error)
}

//! The credential caches' change counter: every change to what authentication reads (a key's
//! policy or secrets, an account's approval) moves it in the same transaction, so a node that
//! reads it after the change committed knows to forget what it cached. On PostgreSQL its
//! trigger also notifies the nodes listening (`crate::postgres`), so they look at once.

use super::db::{Db, params};
use crate::StoreResult;

/// Counts a change, in the changing transaction.
pub(crate) fn bump(conn: &dyn Db) -> StoreResult<()> {
    conn.execute("UPDATE auth_version SET version = version + 1 WHERE id = ?1", params![1i64]).map(drop)
}

pub(crate) fn current(conn: &dyn Db) -> StoreResult<i64> {
    Ok(conn.query_row("SELECT version FROM auth_version WHERE id = ?1", params![1i64], |r| r.get(0))?.unwrap_or(0))
}

//! The SQL helpers every resource module shares: timestamps as integer microseconds, a
//! corrupt-row error, and the one-row select.

use super::map_sqlite_error;
use crate::StoreResult;
use rusqlite::{Connection, OptionalExtension, Row};

pub(crate) use crate::columns::{from_db, to_db};

pub(crate) fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, what.to_owned(), rusqlite::types::Type::Text)
}

/// The one row of `select` (a `SELECT ... FROM ...` without a WHERE) matching `clause`.
pub(crate) fn select_one<T>(
    conn: &Connection,
    select: &str,
    clause: &str,
    value: impl rusqlite::ToSql,
    from_row: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Option<T>> {
    conn.query_row(&format!("{select} WHERE {clause}"), [value], from_row).optional().map_err(map_sqlite_error)
}

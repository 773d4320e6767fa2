//! The SQL helpers every resource module shares: timestamps as integer microseconds, a
//! corrupt-row error, and the one-row select.

use super::map_sqlite_error;
use crate::StoreResult;
use crate::model::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row};

pub(crate) fn to_db(t: Timestamp) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub(crate) fn from_db(micros: i64) -> Timestamp {
    Timestamp::from_unix_timestamp_nanos(i128::from(micros) * 1_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

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

//! The shared SQL on SQLite: `SqliteDb` runs its statements on a rusqlite connection, each
//! prepared once (the writer's kept in `Statements`, the readers' in rusqlite's cache), and
//! `SqliteEngine` hands write work to the group-committing writer and reads to the reader
//! pool. SQLite has one writer, so both isolations are the same there: every write
//! transaction runs alone.

use super::statements::Statements;
use super::{SqliteEngine, in_snapshot, map_sqlite_error};
use crate::metrics::StoreMetrics;
use crate::sql::{Db, Dialect, Engine, Isolation, Row, Value};
use crate::{Durability, StoreError, StoreResult};
use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, Statement};

/// The shared SQL's view of one SQLite connection: the writer's, with its own statement cache
/// (`Statements`), or a reader's, with rusqlite's.
pub(crate) enum SqliteDb<'a, 'conn> {
    Writer(&'a Statements<'conn>),
    Reader(&'a Connection),
}

impl SqliteDb<'_, '_> {
    fn conn(&self) -> &Connection {
        match self {
            SqliteDb::Writer(statements) => statements,
            SqliteDb::Reader(conn) => conn,
        }
    }

    /// Runs `use_it` on the prepared statement for `sql`.
    fn with_statement<T>(
        &self,
        sql: &str,
        use_it: impl FnOnce(&mut Statement<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        match self {
            SqliteDb::Writer(statements) => statements.with(sql, use_it),
            SqliteDb::Reader(conn) => use_it(&mut *conn.prepare_cached(sql).map_err(map_sqlite_error)?),
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Array(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure("SQLite binds no array".into()));
            }
        })
    }
}

fn value_of(column: ValueRef<'_>) -> StoreResult<Value> {
    Ok(match column {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(v) => Value::Int(v),
        ValueRef::Text(t) => Value::Text(
            String::from_utf8(t.to_vec()).map_err(|_| StoreError::Internal("a stored text is not UTF-8".into()))?,
        ),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        ValueRef::Real(_) => return Err(StoreError::Internal("a stored number is not an integer".into())),
    })
}

impl Db for SqliteDb<'_, '_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, params: &[Value]) -> StoreResult<usize> {
        self.with_statement(sql, |stmt| stmt.execute(rusqlite::params_from_iter(params)).map_err(map_sqlite_error))
    }

    fn insert(&self, sql: &str, params: &[Value]) -> StoreResult<i64> {
        let Some(plain) = sql.strip_suffix(" RETURNING id") else {
            return Err(StoreError::Internal("an insert must end with RETURNING id".into()));
        };
        self.execute(plain, params)?;
        Ok(self.conn().last_insert_rowid())
    }

    fn query(&self, sql: &str, params: &[Value]) -> StoreResult<Vec<Row>> {
        self.with_statement(sql, |stmt| {
            let columns = stmt.column_count();
            let mut found = stmt.query(rusqlite::params_from_iter(params)).map_err(map_sqlite_error)?;
            let mut rows = vec![];
            while let Some(row) = found.next().map_err(map_sqlite_error)? {
                let values = (0..columns)
                    .map(|i| row.get_ref(i).map_err(map_sqlite_error).and_then(value_of))
                    .collect::<StoreResult<Vec<_>>>()?;
                rows.push(Row(values));
            }
            Ok(rows)
        })
    }
}

#[async_trait]
impl Engine for SqliteEngine {
    async fn write<R, F>(&self, _: Isolation, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static,
    {
        self.writer.write(move |statements: &Statements| work(&SqliteDb::Writer(statements))).await
    }

    async fn write_committed<R, F>(&self, _: Isolation, work: F) -> StoreResult<(R, Durability)>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static,
    {
        self.writer.write_committed(move |statements: &Statements| work(&SqliteDb::Writer(statements))).await
    }

    async fn read<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Db) -> StoreResult<R> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with_connection(|conn| work(&SqliteDb::Reader(conn))))
            .await
            .map_err(|_| StoreError::Internal("a read task failed".into()))?
    }

    async fn snapshot<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Db) -> StoreResult<R> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            readers.with_connection(|conn| in_snapshot(conn, |conn| work(&SqliteDb::Reader(conn))))
        })
        .await
        .map_err(|_| StoreError::Internal("a read task failed".into()))?
    }

    fn metrics(&self) -> &StoreMetrics {
        self.writer.metrics()
    }

    async fn ready(&self) -> StoreResult<()> {
        self.writer.running()?;
        self.read(|conn| conn.query("SELECT 1", &[]).map(drop)).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A migrated in-memory database, for the shared SQL's unit tests.
    pub(crate) fn memory() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        conn
    }
}

//! The shared SQL on one PostgreSQL connection: `?N` placeholders become `$N`, each statement
//! is prepared once per connection (after that, one Bind/Execute per call), parameters bind
//! by the type the server inferred for them, and rows are read column by column with
//! `try_get` (a column of an unexpected type is an error, never a panic).

use super::map_pg_error;
use crate::sql::{Array, Db, Dialect, Row, Value};
use crate::{StoreError, StoreResult};
use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// A pooled connection with its prepared statements.
pub(crate) struct Conn {
    pub client: postgres::Client,
    /// The server process serving this connection (`pg_backend_pid()`).
    pub backend_pid: i32,
    statements: HashMap<String, postgres::Statement>,
}

impl Conn {
    pub fn new(client: postgres::Client) -> Self {
        Self { client, backend_pid: 0, statements: HashMap::new() }
    }

    fn prepare(&mut self, sql: &str) -> Result<postgres::Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&numbered(sql))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// `?N` → `$N` (the shared SQL has no `?` anywhere else).
pub(super) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// The shared SQL's view of a connection inside a transaction. Remembers whether a statement
/// failed in a way that running the transaction again may cure (a serialization failure or
/// a deadlock), so the engine retries it.
pub(crate) struct PgDb<'a> {
    conn: RefCell<&'a mut Conn>,
    retryable: Cell<bool>,
}

impl<'a> PgDb<'a> {
    pub fn new(conn: &'a mut Conn) -> Self {
        Self { conn: RefCell::new(conn), retryable: Cell::new(false) }
    }

    pub fn retryable(&self) -> bool {
        self.retryable.get()
    }

    fn failed(&self, e: postgres::Error) -> StoreError {
        if is_retryable(&e) {
            self.retryable.set(true);
        }
        map_pg_error(e)
    }
}

/// A serialization failure or a deadlock: the transaction may succeed if run again.
pub(crate) fn is_retryable(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.code().is_some_and(|c| *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

pub(super) fn bind(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl Db for PgDb<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, params: &[Value]) -> StoreResult<usize> {
        let mut conn = self.conn.borrow_mut();
        let statement = conn.prepare(sql).map_err(|e| self.failed(e))?;
        let changed = conn.client.execute(&statement, &bind(params)).map_err(|e| self.failed(e))?;
        Ok(changed as usize)
    }

    fn query(&self, sql: &str, params: &[Value]) -> StoreResult<Vec<Row>> {
        let mut conn = self.conn.borrow_mut();
        let statement = conn.prepare(sql).map_err(|e| self.failed(e))?;
        let rows = conn.client.query(&statement, &bind(params)).map_err(|e| self.failed(e))?;
        rows.iter().map(row_of).collect()
    }
}

pub(super) fn row_of(row: &postgres::Row) -> StoreResult<Row> {
    let column = |i: usize| -> Result<Value, postgres::Error> {
        let ty = row.columns()[i].type_();
        Ok(match *ty {
            Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map_or(Value::Null, Value::Int),
            Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map_or(Value::Null, |v| Value::Int(v.into())),
            Type::INT2 => row.try_get::<_, Option<i16>>(i)?.map_or(Value::Null, |v| Value::Int(v.into())),
            Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map_or(Value::Null, Value::Bool),
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map_or(Value::Null, Value::Blob),
            _ => row.try_get::<_, Option<String>>(i)?.map_or(Value::Null, Value::Text),
        })
    };
    (0..row.len()).map(|i| column(i).map_err(map_pg_error)).collect::<StoreResult<Vec<_>>>().map(Row)
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                _ => Err(format!("an integer cannot bind to a {ty} parameter").into()),
            },
            Value::Bool(b) => match *ty {
                Type::BOOL => b.to_sql(ty, out),
                _ => Value::Int(i64::from(*b)).to_sql(ty, out),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
            Value::Array(Array::Ints(v)) => v.to_sql(ty, out),
            Value::Array(Array::Bools(v)) => v.to_sql(ty, out),
            Value::Array(Array::Texts(v)) => v.to_sql(ty, out),
            Value::Array(Array::Blobs(v)) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_as_postgresql_spells_them() {
        assert_eq!(super::numbered("a = ?1 AND b = ?12 OR c = '?'"), "a = $1 AND b = $12 OR c = '?'");
    }
}

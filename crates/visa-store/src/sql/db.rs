//! The one interface the shared SQL runs through: a statement with `?N` placeholders and
//! its parameters as `Value`s in, rows of `Value`s out. Each SQL backend implements `Db`
//! over its own driver (rusqlite, the PostgreSQL wire protocol) and owns the transaction the
//! statements run in; the resource modules beside this one never name a driver.
//!
//! Both backends read the same SQL: placeholders are `?N` (PostgreSQL's backend rewrites them
//! to `$N` when it prepares a statement), scalar minimum and maximum are written as `CASE`,
//! sums are `CAST(SUM(..) AS BIGINT)`, columns in an upsert's `SET` are qualified. What cannot
//! be written once (the JSON merge of usage error counts, row locks) asks `Db::dialect`.

use crate::{StoreError, StoreResult};

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
    Blob(Vec<u8>),
    /// An array, for PostgreSQL's set-based statements (`unnest`); SQLite binds none.
    Array(Array),
}

/// The arrays a set-based statement binds, one per column of the rows it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Array {
    Ints(Vec<Option<i64>>),
    Bools(Vec<bool>),
    Texts(Vec<Option<String>>),
    Blobs(Vec<Vec<u8>>),
}

impl Value {
    /// What kind of value this is, for an error message (never the value: it may be a hash).
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Bool(_) => "a boolean",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
            Value::Array(_) => "an array",
        }
    }
}

/// Which SQL a backend speaks, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Whether every write transaction runs alone (SQLite's single writer), so that what a
    /// transaction reads cannot change before it writes. Otherwise the money path takes row
    /// locks before it reads (`SELECT … FOR UPDATE`), in one order (docs/money.md).
    pub fn single_writer(self) -> bool {
        matches!(self, Dialect::Sqlite)
    }

    /// The database's own clock in microseconds since the Unix epoch, as an SQL expression:
    /// node leases are written and compared by it, so a node whose clock is wrong can neither
    /// take a healthy node's calls nor keep its own past their lease.
    pub fn clock(self) -> &'static str {
        match self {
            Dialect::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)",
            Dialect::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT",
        }
    }
}

/// A statement that names the database's clock as `{clock}`, spelled for each dialect once
/// (the first time it runs), so a hot path formats nothing per call.
pub struct ClockSql {
    text: &'static str,
    spelled: std::sync::OnceLock<[String; 2]>,
}

impl ClockSql {
    pub const fn new(text: &'static str) -> Self {
        Self { text, spelled: std::sync::OnceLock::new() }
    }

    /// The statement for `dialect`.
    pub fn get(&self, dialect: Dialect) -> &str {
        let spelled = self
            .spelled
            .get_or_init(|| [Dialect::Sqlite, Dialect::Postgres].map(|d| self.text.replace("{clock}", d.clock())));
        &spelled[usize::from(dialect == Dialect::Postgres)]
    }
}

/// A transaction (or a read) the shared SQL runs in.
pub trait Db {
    fn dialect(&self) -> Dialect;
    /// Runs a statement; how many rows it changed.
    fn execute(&self, sql: &str, params: &[Value]) -> StoreResult<usize>;
    /// Runs a query; every row it returns.
    fn query(&self, sql: &str, params: &[Value]) -> StoreResult<Vec<Row>>;
    /// Runs an `INSERT … RETURNING id`; the new row's id. (A backend may answer it another
    /// way: SQLite's RETURNING buffers the row in a temporary table, a paid call's costliest
    /// statement, while the connection already knows the last rowid it inserted.)
    fn insert(&self, sql: &str, params: &[Value]) -> StoreResult<i64> {
        self.query(sql, params)?
            .first()
            .map(|row| row.get(0))
            .transpose()?
            .ok_or_else(|| StoreError::Internal("an insert returned no id".into()))
    }
}

impl dyn Db + '_ {
    /// The first row of `sql`, read by `from_row`.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[Value],
        from_row: impl FnOnce(&Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        self.query(sql, params)?.first().map(from_row).transpose()
    }

    /// Every row of `sql`, each read by `from_row`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[Value],
        from_row: impl FnMut(&Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.query(sql, params)?.iter().map(from_row).collect()
    }
}

/// One row of a result.
#[derive(Debug, Clone, Default)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `index` as a `T`; a column that does not read as one is a corrupt row.
    pub fn get<T: FromValue>(&self, index: usize) -> StoreResult<T> {
        let value = self.0.get(index).unwrap_or(&Value::Null);
        T::from_value(value).ok_or_else(|| {
            StoreError::Internal(format!("column {index} holds {}, not the expected type", value.kind()))
        })
    }
}

/// A corrupt row: a column that holds something its record cannot be.
pub fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("a stored {what} does not parse"))
}

/// A Rust value as a parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

/// The parameters of a statement: `params![a, b]` is `&[Value]`.
macro_rules! params {
    ($($x:expr),* $(,)?) => {
        &[$($crate::sql::db::ToValue::to_value(&$x)),*] as &[$crate::sql::db::Value]
    };
}
pub(crate) use params;

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

macro_rules! integer_values {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
integer_values!(i64, i32, u8, u16, u32, u64, usize);

/// Typed ids bind and read as the integers they wrap.
macro_rules! id_values {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(self.get())
            }
        }

        impl FromValue for $t {
            fn from_value(value: &Value) -> Option<Self> {
                i64::from_value(value).map(<$t>::new)
            }
        }
    )*};
}
use visa_core::id::{AccountId, AdminKeyId, KeyId, MemberId, SecretId, SessionId, WebhookId};
id_values!(AccountId, KeyId, SecretId, MemberId, AdminKeyId, SessionId, WebhookId);

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

impl ToValue for Array {
    fn to_value(&self) -> Value {
        Value::Array(self.clone())
    }
}

impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

/// A column value as a Rust value (`None`: it is not one).
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(v) => Some(*v),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}

macro_rules! narrow_integers {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> Option<Self> {
                i64::from_value(value).and_then(|v| <$t>::try_from(v).ok())
            }
        }
    )*};
}
narrow_integers!(u8, u16, u32, u64);

impl FromValue for bool {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Bool(b) => Some(*b),
            Value::Int(v) => Some(*v != 0),
            _ => None,
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_as_the_types_they_were_written_from() {
        let row = Row(params![7i64, true, "text", [1u8, 2], None::<i64>, 0i64].to_vec());
        assert_eq!(row.get::<i64>(0).unwrap(), 7);
        assert!(row.get::<bool>(1).unwrap());
        assert_eq!(row.get::<String>(2).unwrap(), "text");
        assert_eq!(row.get::<Vec<u8>>(3).unwrap(), vec![1, 2]);
        assert_eq!(row.get::<Option<i64>>(4).unwrap(), None);
        assert!(!row.get::<bool>(5).unwrap(), "SQLite's booleans are integers");
        let wrong = row.get::<i64>(2).unwrap_err();
        assert!(matches!(wrong, StoreError::Internal(m) if m.contains("column 2 holds text")));
        assert!(row.get::<i64>(9).is_err(), "a missing column is not a value");
    }
}

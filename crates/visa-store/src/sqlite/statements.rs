//! The writer's prepared statements, found by where their SQL text lives. rusqlite's own cache
//! hashes the whole text of a statement twice and copies it once on every use; the money path's
//! SQL is static, so its address and length name it, and one comparison of the text (a
//! `memcmp`, which also tells a reused heap address from the string that lived there before)
//! confirms the match. Least recently used statements are finalized past `CAPACITY`, so SQL
//! built at run time cannot grow the cache.

use super::map_sqlite_error;
use crate::StoreResult;
use hashlink::LruCache;
use rusqlite::{Connection, PrepFlags, Statement};
use std::cell::RefCell;

/// More than every statement the writer runs in steady state (a paid call alone runs fifteen).
const CAPACITY: usize = 64;

/// Where a SQL text lives: its address and length.
type TextAt = (usize, usize);
/// A prepared statement with the text it was prepared from.
type Prepared<'conn> = (Box<str>, Statement<'conn>);

/// The writer's connection with its prepared statements (it derefs to the connection).
pub struct Statements<'conn> {
    conn: &'conn Connection,
    cache: RefCell<LruCache<TextAt, Prepared<'conn>>>,
}

impl<'conn> Statements<'conn> {
    pub fn new(conn: &'conn Connection) -> Self {
        Self { conn, cache: RefCell::new(LruCache::new(CAPACITY)) }
    }

    /// Runs `use_it` on the statement prepared for `sql` (prepared now if it is not cached).
    pub fn with<T>(&self, sql: &str, use_it: impl FnOnce(&mut Statement<'conn>) -> StoreResult<T>) -> StoreResult<T> {
        let key = (sql.as_ptr() as usize, sql.len());
        let cached = self.cache.borrow_mut().remove(&key).filter(|(text, _)| **text == *sql);
        let (text, mut statement) = match cached {
            Some(found) => found,
            None => {
                let prepared = self.conn.prepare_with_flags(sql, PrepFlags::SQLITE_PREPARE_PERSISTENT);
                (Box::from(sql), prepared.map_err(map_sqlite_error)?)
            }
        };
        let result = use_it(&mut statement);
        // As rusqlite's cache does: a kept statement keeps no copy of the values it last ran
        // with (a stored answer's body among them).
        statement.clear_bindings();
        self.cache.borrow_mut().insert(key, (text, statement));
        result
    }
}

impl std::ops::Deref for Statements<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A statement is found by its text's address, and only while that address holds the same
    /// text: SQL built at run time that reuses a freed address gets its own statement.
    #[test]
    fn a_statement_is_reused_only_for_the_same_text() {
        let conn = Connection::open_in_memory().unwrap();
        let statements = Statements::new(&conn);
        let value =
            |sql: &str| statements.with(sql, |s| s.query_row([], |r| r.get::<_, i64>(0)).map_err(map_sqlite_error));
        const ONE: &str = "SELECT 1";
        assert_eq!(value(ONE).unwrap(), 1);
        assert_eq!(value(ONE).unwrap(), 1);
        assert_eq!(statements.cache.borrow().len(), 1, "the same static text is prepared once");
        let mut built = String::from("SELECT 2");
        assert_eq!(value(&built).unwrap(), 2);
        // Same address and length, other text: not the cached statement.
        built.replace_range(7..8, "3");
        assert_eq!(value(&built).unwrap(), 3);
        // Texts that all live at once, so each has an address of its own.
        let texts: Vec<String> = (0..2 * CAPACITY).map(|n| format!("SELECT {n}")).collect();
        for (n, text) in texts.iter().enumerate() {
            assert_eq!(value(text).unwrap(), n as i64);
        }
        assert_eq!(statements.cache.borrow().len(), CAPACITY, "bounded");
        assert!(value("SELECT nothing FROM nowhere").is_err(), "a bad statement is an error, not a panic");
    }
}

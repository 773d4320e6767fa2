//! A money writer's connection (`super::batcher`), whose statements can travel together: the
//! `postgres` crate waits for each answer before it sends the next statement, so this one
//! speaks through `tokio-postgres` on a runtime of its own, where requests issued together are
//! pipelined (sent back to back, answered in order). A batch is then two round trips: `BEGIN`
//! with its locks and its reads, and its write with the `COMMIT` (`BatchDb`).
//!
//! A `COMMIT` whose answer is lost is resolved here, as `super::transaction` does for the
//! pool's transactions (the same `resolve_doubt`): the writer hears "committed" or "not
//! committed", and "in doubt" only when the database stayed out of reach.

use super::db::{bind, numbered, row_of};
use super::map_pg_error;
use super::pool::Pool;
use super::transaction::{resolve_doubt, txid_of};
use crate::sql::money::batch::BatchDb;
use crate::sql::{Db, Dialect, Row, Value};
use crate::{StoreError, StoreResult};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, Statement};

/// How a batch's transaction starts: its lock waits bounded, and marked as a batch's (the
/// batch's first write only changes rows when it runs inside this transaction, so a `BEGIN`
/// that failed cannot leave its pipelined statements running on their own).
const BEGIN: &str = "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = '200ms'; \
    SET LOCAL visa.batch = 'on'; SELECT txid_current()";

pub(super) struct PipeConn {
    runtime: tokio::runtime::Runtime,
    client: Client,
    pool: Arc<Pool>,
    statements: RefCell<HashMap<String, Statement>>,
    /// The server process serving this connection, and the transaction under way.
    backend_pid: i32,
    xid: Cell<i64>,
    /// The last `commit_with` failed and its outcome could not be learnt: its steps must not
    /// run again.
    in_doubt: Cell<bool>,
    /// How long the round trip carrying the last `COMMIT` took.
    commit_took: Cell<Duration>,
}

impl PipeConn {
    /// Opens a connection set up as the pool's are, with generic plans: a batch's statements
    /// take arrays whose values never change the best plan, and re-planning its write on
    /// every execution would cost more than running it.
    pub fn connect(pool: &Arc<Pool>) -> StoreResult<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot start a database writer's runtime: {e}")))?;
        let (client, backend_pid) = runtime.block_on(async {
            let (client, pid) = pool.connect_async().await?;
            client.batch_execute("SET plan_cache_mode = force_generic_plan").await.map_err(map_pg_error)?;
            StoreResult::Ok((client, pid))
        })?;
        Ok(Self {
            runtime,
            client,
            pool: pool.clone(),
            statements: RefCell::default(),
            backend_pid,
            xid: Cell::new(0),
            in_doubt: Cell::new(false),
            commit_took: Cell::new(Duration::ZERO),
        })
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    pub fn in_doubt(&self) -> bool {
        self.in_doubt.get()
    }

    pub fn commit_took(&self) -> Duration {
        self.commit_took.get()
    }

    /// Ends a transaction that failed before its COMMIT; false if the connection cannot be
    /// trusted with another.
    pub fn rollback(&self) -> bool {
        self.runtime.block_on(self.client.batch_execute("ROLLBACK")).is_ok()
    }

    fn prepared(&self, sql: &str) -> StoreResult<Statement> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.runtime.block_on(self.client.prepare(&numbered(sql))).map_err(map_pg_error)?;
        self.statements.borrow_mut().insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl Db for PipeConn {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, params: &[Value]) -> StoreResult<usize> {
        let statement = self.prepared(sql)?;
        let changed = self.runtime.block_on(self.client.execute(&statement, &bind(params))).map_err(map_pg_error)?;
        Ok(changed as usize)
    }

    fn query(&self, sql: &str, params: &[Value]) -> StoreResult<Vec<Row>> {
        let statement = self.prepared(sql)?;
        let rows = self.runtime.block_on(self.client.query(&statement, &bind(params))).map_err(map_pg_error)?;
        rows.iter().map(row_of).collect()
    }
}

impl BatchDb for PipeConn {
    fn begin_with(&self, statements: &[(&str, &[Value])]) -> StoreResult<Vec<Vec<Row>>> {
        self.in_doubt.set(false);
        let prepared = statements.iter().map(|(sql, _)| self.prepared(sql)).collect::<StoreResult<Vec<_>>>()?;
        let binds: Vec<_> = statements.iter().map(|(_, params)| bind(params)).collect();
        // Each request goes out when its future is first polled, and `join!` polls in order.
        let (begun, answers) = self.runtime.block_on(async {
            let queries = prepared.iter().zip(&binds).map(|(statement, params)| self.client.query(statement, params));
            futures::join!(self.client.simple_query(BEGIN), futures::future::join_all(queries))
        });
        self.xid.set(txid_of(&begun.map_err(map_pg_error)?)?);
        answers
            .into_iter()
            .map(|rows| rows.map_err(map_pg_error)?.iter().map(row_of).collect::<StoreResult<Vec<_>>>())
            .collect()
    }

    fn commit_with(&self, last: Option<(&str, &[Value])>) -> StoreResult<()> {
        let statement = last.map(|(sql, _)| self.prepared(sql)).transpose()?;
        let params = last.map(|(_, params)| bind(params)).unwrap_or_default();
        let started = Instant::now();
        let (written, committed) = self.runtime.block_on(async {
            let write = async {
                match &statement {
                    Some(statement) => self.client.execute(statement, &params).await.map(drop),
                    None => Ok(()),
                }
            };
            futures::join!(write, self.client.batch_execute("COMMIT"))
        });
        self.commit_took.set(started.elapsed());
        match (written, committed) {
            (Ok(()), Ok(())) => Ok(()),
            // The write failed, so the COMMIT behind it rolled back; or the COMMIT was refused.
            (Err(e), _) | (Ok(()), Err(e)) if e.code().is_some() => Err(map_pg_error(e)),
            // Sent, perhaps applied, answer lost: find out which.
            _ => resolve_doubt(&self.pool, self.xid.get(), self.backend_pid).map_err(|failed| {
                self.in_doubt.set(failed.in_doubt);
                failed.error
            }),
        }
    }
}

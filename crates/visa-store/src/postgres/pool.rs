//! Connections to the database, each set up so that no node can hold the others up: what
//! a session waits for and how long it may sit in a transaction are bounded, a dead peer on
//! either side is found by TCP keepalives, and the session carries the node's name
//! (`application_name`, seen in `pg_stat_activity`). A setting the database URL names
//! (`?options=-c name=value`, `keepalives_idle=…`) is the operator's and is left alone.

use super::db::Conn;
use super::map_pg_error;
use super::tls::{Target, TlsMode};
use crate::StoreResult;
use std::sync::Mutex;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection's server process (to end it if its COMMIT's answer is lost).
const BACKEND_PID: &str = "SELECT pg_backend_pid()";

/// The server-side settings of every session, unless the URL's `options` name them.
/// * `idle_in_transaction_session_timeout`: a node stopped in the middle of a transaction (a
///   GC pause, a frozen VM, a debugger, a lost network) loses its session, and with it every
///   row lock it held, after this long; no statement of ours waits on the client that long.
/// * `lock_timeout`: longer than the above, so a call queued behind such a node waits for its
///   locks to be released instead of failing; what waits longer answers 503, retryable.
/// * `statement_timeout`: a statement running this long is stopped (a runaway query).
/// * `tcp_keepalives_*`: the server finds a node's vanished host within about 25 s.
pub(super) const SESSION_DEFAULTS: [(&str, &str); 7] = [
    ("synchronous_commit", "on"),
    ("idle_in_transaction_session_timeout", "2s"),
    ("lock_timeout", "5s"),
    ("statement_timeout", "30s"),
    ("tcp_keepalives_idle", "10"),
    ("tcp_keepalives_interval", "5"),
    ("tcp_keepalives_count", "3"),
];

/// Connections kept open for reuse, and how to open another.
pub(super) struct Pool {
    target: Target,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    idle: Mutex<Vec<Conn>>,
    settings: String,
}

impl Pool {
    pub fn new(url: &str) -> StoreResult<Self> {
        let mut target = Target::parse(url)?;
        let named = |name: &str| url.contains(&format!("{name}="));
        let config = &mut target.config;
        config.connect_timeout(CONNECT_TIMEOUT);
        if config.get_application_name().is_none() {
            config.application_name(format!("visa-keys {}", crate::node_name()));
        }
        // The node finds a vanished database host (or a silently dropped connection) within
        // about 20 s, instead of the kernel's two hours.
        config.keepalives(true);
        if !named("keepalives_idle") {
            config.keepalives_idle(Duration::from_secs(10));
        }
        if !named("keepalives_interval") {
            config.keepalives_interval(Duration::from_secs(5));
        }
        if !named("keepalives_retries") {
            config.keepalives_retries(3);
        }
        if !named("tcp_user_timeout") {
            config.tcp_user_timeout(Duration::from_secs(20));
        }
        let settings = session_settings(config.get_options());
        let tls = target.connector()?;
        Ok(Self { target, tls, idle: Mutex::default(), settings })
    }

    /// A new connection, set up, with its server process id (to end it if its COMMIT's
    /// answer is lost: `super::transaction`).
    pub fn connect(&self) -> StoreResult<Conn> {
        let config = postgres::Config::from(self.target.config.clone());
        let client = match self.target.mode {
            TlsMode::Disable => config.connect(postgres::NoTls),
            _ => config.connect(self.tls.clone()),
        }
        .map_err(map_pg_error)?;
        let mut conn = Conn::new(client);
        conn.client.batch_execute(&self.settings).map_err(map_pg_error)?;
        conn.backend_pid =
            conn.client.query_one(BACKEND_PID, &[]).and_then(|row| row.try_get(0)).map_err(map_pg_error)?;
        Ok(conn)
    }

    /// A connection on the caller's runtime (a money writer's: `super::pipeline`), set up as
    /// `connect`'s are, with its server process id; its connection task runs on that runtime.
    pub async fn connect_async(&self) -> StoreResult<(tokio_postgres::Client, i32)> {
        let client = match self.target.mode {
            TlsMode::Disable => {
                let (client, connection) =
                    self.target.config.connect(tokio_postgres::NoTls).await.map_err(map_pg_error)?;
                tokio::spawn(async move { drop(connection.await) });
                client
            }
            _ => {
                let (client, connection) = self.target.config.connect(self.tls.clone()).await.map_err(map_pg_error)?;
                tokio::spawn(async move { drop(connection.await) });
                client
            }
        };
        client.batch_execute(&self.settings).await.map_err(map_pg_error)?;
        let pid = client.query_one(BACKEND_PID, &[]).await.and_then(|row| row.try_get(0)).map_err(map_pg_error)?;
        Ok((client, pid))
    }

    /// Runs `work` on a connection of its own with no `statement_timeout` (a migration, or the
    /// audit of a large ledger, takes as long as it takes), closed afterwards so that no pooled
    /// connection is left without the bound.
    pub fn unbounded<R>(&self, work: impl FnOnce(&mut Conn) -> StoreResult<R>) -> StoreResult<R> {
        let mut conn = self.connect()?;
        conn.client.batch_execute("SET statement_timeout = 0").map_err(map_pg_error)?;
        work(&mut conn)
    }

    /// Runs `work` on an idle connection (or a new one); keeps the connection unless it broke.
    pub fn with_conn<R>(&self, work: impl FnOnce(&mut Conn) -> StoreResult<R>) -> StoreResult<R> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match pooled {
            Some(conn) if !conn.client.is_closed() => conn,
            _ => self.connect()?,
        };
        let result = work(&mut conn);
        if !conn.client.is_closed() {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        }
        result
    }
}

impl Drop for Pool {
    /// Closing a blocking client runs a runtime of its own, which must not happen on an async
    /// runtime's thread (where a store is usually dropped): the idle connections close on a
    /// thread of their own.
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !idle.is_empty() {
            std::thread::spawn(move || drop(idle));
        }
    }
}

/// The `SET` statements for the defaults the URL's `options` (`-c name=value …`) do not name.
fn session_settings(options: Option<&str>) -> String {
    let options = options.unwrap_or_default();
    SESSION_DEFAULTS
        .iter()
        .filter(|(name, _)| !options.contains(&format!("{name}=")))
        .map(|(name, value)| format!("SET {name} = '{value}';"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_setting_the_url_names_is_left_to_it() {
        let all = super::session_settings(None);
        assert!(all.contains("SET idle_in_transaction_session_timeout = '2s';"), "{all}");
        let tuned = super::session_settings(Some("-c lock_timeout=20s -c statement_timeout=0"));
        assert!(!tuned.contains("lock_timeout") && !tuned.contains("statement_timeout"), "{tuned}");
        assert!(tuned.contains("idle_in_transaction_session_timeout"), "{tuned}");
    }
}

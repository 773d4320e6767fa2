//! Storage for Visa Keys: one `Store` trait that every backend implements with the same
//! semantics, the records it speaks in (`model`), and the backends themselves.
//!
//! * `sql` — the SQL every SQL backend runs (one module per resource) and the `Store`
//!   implementation over any backend's `Engine`.
//! * `sqlite` — the embedded default: WAL, one writer thread that group-commits many
//!   requests' transactions per fsync, and a pool of readers that never queue behind it.
//! * `postgres` — many nodes on one PostgreSQL: a pool of connections, the money path at
//!   READ COMMITTED under row locks, everything else SERIALIZABLE.
//!
//! Every mutation that moves money writes its ledger entry in the same transaction as the
//! counters it changes.

pub mod audit;
pub mod columns;
pub mod events;
pub mod metrics;
pub mod model;
pub mod postgres;
pub mod rules;
pub mod sql;
pub mod sqlite;
pub mod verify;

pub use model::*;
pub use sql::{
    AccountStore, AdminKeyStore, AuditStore, KeyStore, McpSessionStore, MemberStore, MoneyStore, NodeStore, OAuthStore,
    ProviderRequestStore, SessionStore, UsageStore, WebhookStore,
};
pub use sqlite::SqliteStore;

use async_trait::async_trait;

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (e.g. a duplicate login).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The thing to change does not exist (or belongs to someone else).
    #[error("not found")]
    NotFound,
    /// The request is well-formed but the stored state forbids it.
    #[error("{0}")]
    Refused(Refusal),
    /// The caller's role may not make this change to the object as it is now (403 FORBIDDEN).
    #[error("{0}")]
    Forbidden(String),
    /// The database is busy, locked or unreachable; retrying may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A bug or a corrupt database.
    #[error("store failure: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Why the stored state forbids a well-formed change: one variant per rule, so a handler maps
/// each to its error code (and every backend refuses with the same words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the account's last owner cannot be removed or demoted")]
    LastOwner,
    #[error("a revoked key cannot be rotated; create a new key")]
    KeyRevoked,
    #[error("this is the key's current secret: rotate the key, or revoke the key, instead")]
    NewestSecret,
    /// The execution is not in the state the change needs (settled meanwhile, or never was).
    #[error("execution {execution} is {actual}, not {expected}")]
    ExecutionState { execution: String, actual: &'static str, expected: &'static str },
    #[error("cannot capture more than the hold of {hold} micros")]
    CaptureOverHold { hold: visa_core::money::Micros },
    /// This node's lease ended (it stalled past it, or was reclaimed): it renews or registers
    /// again before it begins anything.
    #[error("this node's lease has ended; it must renew it before it begins a call")]
    NodeLeaseLost,
    #[error("{0} exists; choose a new file")]
    FileExists(std::path::PathBuf),
    #[error(
        "back up a PostgreSQL database with pg_dump or your provider's snapshots (docs/deploy.md); \
         `backup` copies the embedded SQLite database"
    )]
    BackupByPgDump,
}

/// This process's name as a node of the store (`host:pid`): in the `nodes` table and, on
/// PostgreSQL, as the `application_name` of its sessions.
pub fn node_name() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Resolves once a write that was answered at commit is on disk (or could not get there): a
/// backend's own business (SQLite pipelines its fsyncs), never awaited by the server. Waiting
/// again answers what the first wait learnt.
pub struct Durability(tokio::sync::Mutex<Signal>);

enum Signal {
    Pending(tokio::sync::oneshot::Receiver<StoreResult<()>>),
    Known(StoreResult<()>),
}

impl Durability {
    /// Durable when `signal` says so.
    pub fn new(signal: tokio::sync::oneshot::Receiver<StoreResult<()>>) -> Self {
        Self(tokio::sync::Mutex::new(Signal::Pending(signal)))
    }

    /// Durable already (a backend whose commit is its fsync).
    pub fn done() -> Self {
        Self(tokio::sync::Mutex::new(Signal::Known(Ok(()))))
    }

    /// Waits for the signal (a wait given up halfway leaves it for the next one).
    pub async fn wait(&self) -> StoreResult<()> {
        let mut signal = self.0.lock().await;
        if let Signal::Pending(receiver) = &mut *signal {
            let outcome = receiver
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("the durability signal was dropped".into())));
            *signal = Signal::Known(outcome);
        }
        match &*signal {
            Signal::Known(outcome) => outcome.clone(),
            Signal::Pending(_) => Err(StoreError::Unavailable("the durability signal was dropped".into())),
        }
    }
}

/// A placed hold: its execution, and (inside) what the backend needs to finish it. The tool
/// may run as soon as there is one; `finish_execution` answers only once the hold and the
/// finish are both durable.
pub struct Hold {
    pub execution: ExecutionRecord,
    durable: Durability,
}

impl Hold {
    pub fn new(execution: ExecutionRecord, durable: Durability) -> Self {
        Self { execution, durable }
    }

    /// Resolves once the hold is on disk.
    pub async fn durable(&self) -> StoreResult<()> {
        self.durable.wait().await
    }
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold").field("execution", &self.execution).finish_non_exhaustive()
    }
}

/// The file name of the SQLite database in a data dir.
pub const SQLITE_FILE: &str = "visa.db";

/// Which database a server, or a test suite, runs on: the one place that names the backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// The embedded default: one SQLite file.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL database that any number of nodes share.
    Postgres(PostgresTarget),
}

/// A PostgreSQL database URL (`postgres://…`, `sslmode` as libpq spells it) and how many
/// connections this node may hold. Shown without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresTarget {
    pub url: String,
    pub pool_size: usize,
}

impl PostgresTarget {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), pool_size: postgres::DEFAULT_POOL_SIZE }
    }
}

impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget").field("url", &redacted(&self.url)).field("pool_size", &self.pool_size).finish()
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(target) => write!(f, "{}", redacted(&target.url)),
        }
    }
}

/// `url` with any password replaced by `***`.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{name}:***@{host}{}", &rest[authority_end..])
        }
        _ => url.to_owned(),
    }
}

impl Database {
    /// `postgres://…` or `postgresql://…`: PostgreSQL; anything else is refused (the SQLite
    /// file is the default, named by the data dir).
    pub fn from_url(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            postgres::Target::parse(url).map_err(|e| e.to_string())?;
            Ok(Database::Postgres(PostgresTarget::new(url)))
        } else {
            Err(format!(
                "--database takes a postgres:// URL (got '{}'); without it the server uses the SQLite file in its data dir",
                redacted(url)
            ))
        }
    }

    /// Opens the store (PostgreSQL: connects and migrates, on a side thread, so that it
    /// works from async and sync callers alike).
    pub fn open(&self) -> StoreResult<std::sync::Arc<dyn Store>> {
        match self {
            Database::Sqlite(path) => Ok(std::sync::Arc::new(SqliteStore::new(sqlite::SqliteEngine::open(path)?))),
            Database::Postgres(target) => {
                let engine = off_runtime(|| postgres::PgEngine::open(&target.url, target.pool_size))?;
                Ok(std::sync::Arc::new(postgres::PostgresStore::new(engine)))
            }
        }
    }

    /// `ledger verify` without a server (`verify::check` over one consistent snapshot, read
    /// with no writer, migrations or checkpoints), safe while servers run on the database.
    pub fn verify_offline(&self) -> StoreResult<Vec<String>> {
        match self {
            Database::Sqlite(path) => sqlite::SqliteEngine::verify_offline(path),
            Database::Postgres(target) => off_runtime(|| postgres::PgEngine::verify_offline(&target.url)),
        }
    }

    /// Copies the database to `destination` while servers may keep writing.
    pub fn backup_to(&self, destination: &std::path::Path) -> StoreResult<()> {
        match self {
            Database::Sqlite(path) => sqlite::SqliteEngine::backup_to(path, destination),
            Database::Postgres(_) => Err(StoreError::Refused(Refusal::BackupByPgDump)),
        }
    }

    /// What the test suites (the store's own and the end-to-end suite) run against:
    /// `VISA_TEST_DATABASE` names the backend. `sqlite` (the default) keeps its file in `dir`;
    /// `postgres` creates a fresh database per call on the server `VISA_TEST_POSTGRES_URL`
    /// names (an administrative URL).
    pub fn for_tests(dir: &std::path::Path) -> Result<Self, String> {
        match std::env::var("VISA_TEST_DATABASE").as_deref() {
            Ok("sqlite") | Ok("") | Err(_) => Ok(Database::Sqlite(dir.join(SQLITE_FILE))),
            Ok("postgres") => {
                let admin = std::env::var("VISA_TEST_POSTGRES_URL")
                    .map_err(|_| "VISA_TEST_DATABASE=postgres needs VISA_TEST_POSTGRES_URL".to_string())?;
                off_runtime(|| postgres::create_test_database(&admin))
                    .map(|url| Database::Postgres(PostgresTarget::new(url)))
                    .map_err(|e| format!("cannot create a test database: {e}"))
            }
            Ok(other) => {
                Err(format!("VISA_TEST_DATABASE={other}: this build has no such backend (known: sqlite, postgres)"))
            }
        }
    }
}

/// Runs blocking database work on a thread of its own (the blocking PostgreSQL client must
/// not run inside an async runtime's thread).
fn off_runtime<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|scope| scope.spawn(work).join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
}

/// Everything the server persists, one role-sized trait per resource (`AccountStore`,
/// `KeyStore`, … `MoneyStore`), each declared and implemented beside its SQL in `sql/`, so an
/// operation is added in one file; and here what concerns the whole store. Account-scoped calls
/// take the caller's account id and answer `NotFound` for another account's objects, so a
/// handler cannot leak them. Every mutation that takes an `AuditContext` writes its audit entry
/// in the same transaction as the change. Callers hold an `Arc<dyn Store>`, on which every
/// role's operations are callable.
#[async_trait]
pub trait Store:
    AccountStore
    + SessionStore
    + MemberStore
    + AuditStore
    + KeyStore
    + AdminKeyStore
    + UsageStore
    + MoneyStore
    + NodeStore
    + OAuthStore
    + ProviderRequestStore
    + McpSessionStore
    + WebhookStore
    + Send
    + Sync
    + 'static
{
    /// A counter that moves with every change to what authentication reads (a key's policy or
    /// secrets, an account's approval), in the changing transaction: a credential cache
    /// filled before a read of it that shows a new value may be stale.
    async fn auth_version(&self) -> StoreResult<i64>;
    /// Woken as soon as `auth_version` may have moved, where the backend can tell (PostgreSQL
    /// LISTEN/NOTIFY); `None` where polling is the only way.
    fn auth_change_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>>;
    /// The backend's figures for `GET /metrics` (commits, transaction and fsync latency).
    fn metrics(&self) -> &metrics::StoreMetrics;
    /// Recomputes balances, holds and spend counters from the ledger; lists every mismatch.
    async fn verify_ledger(&self) -> StoreResult<Vec<String>>;
    /// Whether this node can serve: `Unavailable` when the store cannot take writes (SQLite:
    /// stopped after a failed fsync; a database that cannot be reached).
    async fn ready(&self) -> StoreResult<()>;
    /// Deletes up to `limit` rows of each kind that retention no longer keeps, as of `now`:
    /// Idempotency-Key records past their retention whose execution has ended (never an open
    /// one), the stored answers they replayed, provider requests past theirs, operator
    /// requests past `retention`'s, expired sessions and invitations (freeing the invited
    /// login); and rolls usage older than `retention`'s minute and hour
    /// windows up into hours and days. Executions, the ledger and the audit log are kept.
    /// Returns how many rows went or moved (fewer than `limit`: nothing more is due).
    async fn sweep_expired(&self, now: Timestamp, retention: Retention, limit: u32) -> StoreResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wait given up halfway (its future dropped) leaves the signal for the next wait, and
    /// every wait after the signal answers the same.
    #[tokio::test]
    async fn durability_survives_an_abandoned_wait_and_answers_every_wait_alike() {
        let (send, signal) = tokio::sync::oneshot::channel();
        let durable = Durability::new(signal);
        let abandoned = tokio::time::timeout(std::time::Duration::from_millis(10), durable.wait()).await;
        assert!(abandoned.is_err(), "nothing was signalled yet");
        send.send(Ok(())).unwrap();
        assert_eq!(durable.wait().await, Ok(()));
        assert_eq!(durable.wait().await, Ok(()));

        let (send, signal) = tokio::sync::oneshot::channel::<StoreResult<()>>();
        drop(send);
        let lost = Durability::new(signal);
        assert!(matches!(lost.wait().await, Err(StoreError::Unavailable(_))));
        assert!(matches!(lost.wait().await, Err(StoreError::Unavailable(_))));
        assert_eq!(Durability::done().wait().await, Ok(()));
    }
}

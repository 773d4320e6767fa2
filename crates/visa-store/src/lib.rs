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
pub mod metrics;
pub mod model;
pub mod postgres;
pub mod rules;
pub mod sql;
pub mod sqlite;
pub mod verify;

pub use model::*;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use visa_core::pagination::{Page, PageRequest};
use visa_core::secret::SecretHash;

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

/// Everything the server persists. Account-scoped calls take the caller's account id and
/// answer `NotFound` for another account's objects, so a handler cannot leak them.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Accounts, members and sessions. Every mutation here and below that takes an
    // `AuditContext` writes its audit entry in the same transaction as the change.
    /// Creates the account and its first member, the owner, with the account's login.
    async fn create_account(&self, new: NewAccount, audit: AuditContext) -> StoreResult<(Account, Member)>;
    async fn account_by_login(&self, login: &str) -> StoreResult<Option<Account>>;
    async fn set_account_approved(&self, login: &str, approved: bool, audit: AuditContext) -> StoreResult<Account>;
    /// Adds `amount` to the balance. Under an `OperatorRequest` a retry is answered with the
    /// first credit's account, and credits nothing more.
    async fn credit_account(
        &self,
        login: &str,
        amount: visa_core::money::Micros,
        audit: AuditContext,
        request: Option<OperatorRequest>,
    ) -> StoreResult<Account>;
    /// Opens a session where `audit` says (IP, user agent), audited as `session.created` by
    /// its actor (the member signing in, or the operator who created the account).
    async fn create_session(&self, new: NewSession, audit: AuditContext) -> StoreResult<()>;
    /// Ends one session (sign-out), audited as `session.ended` with `audit`'s actor, IP and
    /// user agent; ending one that is gone already is not an error (and audits nothing).
    async fn end_session(&self, token_hash: SecretHash, audit: AuditContext) -> StoreResult<()>;
    /// The member's live sessions, oldest first; `current` marks the one with that token.
    async fn list_sessions(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        current: Option<SecretHash>,
        now: Timestamp,
    ) -> StoreResult<Vec<SessionRecord>>;
    /// Ends some of a member's sessions (audited as `session.ended`) and says how many;
    /// `Forbidden` for an owner's unless `caller` is an owner.
    async fn end_sessions(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        which: SessionsToEnd,
        caller: visa_core::role::Role,
        audit: AuditContext,
    ) -> StoreResult<u64>;
    /// Sets a member's password and ends every other session of theirs (all but `keep`), in
    /// one transaction, audited as `member.password_changed`; says how many sessions ended.
    async fn change_password(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        password_hash: String,
        keep: SecretHash,
        audit: AuditContext,
    ) -> StoreResult<(Member, u64)>;
    /// The account and member behind a live session token.
    async fn session_principal(&self, token_hash: SecretHash, now: Timestamp)
    -> StoreResult<Option<(Account, Member)>>;
    /// The member who signs in with this login (invitations pending under it do not count).
    async fn member_by_login(&self, login: &str) -> StoreResult<Option<Member>>;
    /// The member with this pending invitation, if any (expired or not).
    async fn member_by_invite(&self, invite_hash: SecretHash) -> StoreResult<Option<Member>>;
    async fn list_members(&self, account_id: AccountId) -> StoreResult<Vec<Member>>;
    /// Adds a member with a pending invitation; `Conflict` when the login is already a member
    /// of, or invited to, this account. A pending invitation reserves nothing server-wide: the
    /// login is claimed when the invitation is accepted (`Conflict` then if it was taken).
    async fn invite_member(&self, account_id: AccountId, new: NewMember, audit: AuditContext) -> StoreResult<Member>;
    /// Sets the invited member's password and ends the invitation; `NotFound` when the
    /// invitation is unknown or expired.
    async fn accept_invite(
        &self,
        invite_hash: SecretHash,
        password_hash: String,
        audit: AuditContext,
    ) -> StoreResult<Member>;
    /// `Refused` when it would leave the account without an owner; `Forbidden` when it grants
    /// the owner role or changes an owner and `caller` (the role asking) is not an owner. Both
    /// rules are checked inside the write, against the member as it is then.
    async fn change_member_role(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        role: visa_core::role::Role,
        caller: visa_core::role::Role,
        audit: AuditContext,
    ) -> StoreResult<Member>;
    /// Removes the member and ends its sessions; `Refused` for the last owner, `Forbidden`
    /// for an owner unless `caller` is one.
    async fn remove_member(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        caller: visa_core::role::Role,
        audit: AuditContext,
    ) -> StoreResult<Member>;
    /// A page of the account's audit log, newest first.
    async fn list_audit(
        &self,
        account_id: AccountId,
        filter: AuditFilter,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEntry>>;

    // Keys.
    async fn create_key(&self, new: NewKey, audit: AuditContext) -> StoreResult<KeyRecord>;
    async fn get_key(&self, account_id: AccountId, key_id: KeyId) -> StoreResult<Option<KeyRecord>>;
    async fn list_keys(&self, account_id: AccountId, page: PageRequest) -> StoreResult<Page<KeyRecord>>;
    async fn update_key(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        patch: KeyPatch,
        audit: AuditContext,
    ) -> StoreResult<KeyRecord>;
    /// Revokes the key and all its secrets; revoking a revoked key changes (and audits) nothing.
    async fn revoke_key(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        cause: RevokeCause,
        audit: AuditContext,
    ) -> StoreResult<KeyRecord>;
    /// Ends one secret of a key at once (e.g. the old one during a rotation's grace). The
    /// key's newest secret cannot be revoked this way: that is rotating or revoking the key.
    async fn revoke_secret(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        secret_id: SecretId,
        audit: AuditContext,
    ) -> StoreResult<KeyRecord>;
    async fn rotate_key(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        rotation: Rotation,
        audit: AuditContext,
    ) -> StoreResult<KeyRecord>;
    /// The key and account behind a secret hash, for authentication.
    async fn key_by_secret(&self, hash: SecretHash) -> StoreResult<Option<AuthRecord>>;
    /// A counter that moves with every change to what authentication reads (a key's policy or
    /// secrets, an account's approval), in the changing transaction: a credential cache
    /// filled before a read of it that shows a new value may be stale.
    async fn auth_version(&self) -> StoreResult<i64>;
    /// Woken as soon as `auth_version` may have moved, where the backend can tell (PostgreSQL
    /// LISTEN/NOTIFY); `None` where polling is the only way.
    fn auth_change_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>>;
    /// Records when and from where keys were last used (coalesced by the caller).
    async fn record_key_use(&self, uses: Vec<KeyUse>) -> StoreResult<()>;

    // Admin keys.
    async fn create_admin_key(
        &self,
        account_id: AccountId,
        label: visa_core::policy::KeyLabel,
        environment: visa_core::key::Environment,
        secret: NewSecret,
        audit: AuditContext,
    ) -> StoreResult<AdminKeyRecord>;
    async fn list_admin_keys(&self, account_id: AccountId) -> StoreResult<Vec<AdminKeyRecord>>;
    async fn revoke_admin_key(
        &self,
        account_id: AccountId,
        id: AdminKeyId,
        audit: AuditContext,
    ) -> StoreResult<AdminKeyRecord>;
    /// The admin key (live or revoked) behind a secret hash, with its stored hash.
    async fn admin_key_by_secret(&self, hash: SecretHash) -> StoreResult<Option<(AdminKeyRecord, SecretHash)>>;

    /// Adds request counts (coalesced by the caller) to the per-minute usage table.
    async fn record_usage(&self, counts: Vec<UsageCount>) -> StoreResult<()>;
    /// Usage of a key's secrets in `[since_minute, until_minute)`, one row per secret and minute
    /// with requests or charges, charges included.
    async fn key_usage(&self, key_id: KeyId, since_minute: i64, until_minute: i64) -> StoreResult<Vec<UsageCount>>;
    /// What each key of the account spent on each UTC day from `since_day` (days since the
    /// epoch) on, from the per-day counters the money path keeps: one row per key and day
    /// with a charge, oldest day first.
    async fn account_spend(&self, account_id: AccountId, since_day: i64) -> StoreResult<Vec<DaySpend>>;

    // The money path.
    async fn account_by_id(&self, account_id: AccountId) -> StoreResult<Option<Account>>;
    /// In one transaction: look up the Idempotency-Key; if new, check the key's daily and
    /// total caps and the account's available balance, place the hold and record the key.
    ///
    /// Every outcome but `Started` is returned only once it is durable (a replay may be
    /// reading an answer that was not on disk yet). `Started` may be returned as soon as the
    /// hold commits (every later transaction sees it), so the tool can start meanwhile: its
    /// `Hold` carries what `finish_execution` needs to answer only once the hold is durable.
    /// Concurrent begins with one Idempotency-Key yield exactly one `Started`; the others see
    /// `InFlight` or the replay, never an error from the unique index.
    async fn begin_execution(&self, start: ExecutionStart) -> StoreResult<BeginOutcome>;
    /// In one transaction: capture or void the hold of a `running` execution (or of one
    /// reclaimed into `reconcile_required` that no operator decided yet) and store the
    /// answer; refused once it has ended otherwise. Answers once the finish and the hold are
    /// durable. The same finish sent again (its first COMMIT landed but the answer was lost)
    /// answers the recorded execution and changes nothing.
    async fn finish_execution(&self, hold: &Hold, finish: Finish, now: Timestamp) -> StoreResult<ExecutionRecord>;
    /// A begin whose answer never came back (the store went away during its COMMIT): if it
    /// placed its hold, void it and free its Idempotency-Key, for the call never ran. `true`
    /// when there was such a hold. Called only by the node that sent the begin, with the
    /// begin's `public_id`.
    async fn abandon_execution(&self, public_id: &str, now: Timestamp) -> StoreResult<bool>;
    /// The public ids of the executions `node` began before `before` that are still running,
    /// oldest first, at most `limit`: for the node's own sweep of calls that no task of its
    /// process tracks any more (a bug ended one without settling it), which it then abandons.
    async fn running_on_node(&self, node: NodeId, before: Timestamp, limit: u32) -> StoreResult<Vec<String>>;
    async fn get_execution(&self, filter: ExecutionFilter, public_id: &str) -> StoreResult<Option<ExecutionRecord>>;
    async fn list_executions(&self, filter: ExecutionFilter, page: PageRequest) -> StoreResult<Page<ExecutionRecord>>;
    // Nodes and their leases. Each server process registers as a node and renews its lease
    // while it lives; every execution records the node running it. A call whose node's lease
    // expired lost its outcome (the node crashed or lost the store) and becomes
    // `reconcile_required`; a call of a live node is never touched, whoever restarts. Leases
    // are kept by the database's clock, never a node's: a node with a wrong clock can neither
    // take another's calls nor keep its own past their lease. A begin refuses (`NodeLeaseLost`)
    // when its node's lease is not live; a reclaimed call that no operator decided yet may still
    // be finished by the call that placed it (its node woke up).
    /// Registers a node (named for operators, e.g. `host:pid`, started at `now` by its own
    /// clock) holding a lease for `lease` from the database's now. SQLite: one process per
    /// database (the data-dir lock), so a node that registers proves every earlier one gone and
    /// their leases end now.
    async fn register_node(&self, name: &str, now: Timestamp, lease: time::Duration) -> StoreResult<NodeId>;
    /// Extends the node's lease to the database's now + `lease`; `false` if it had expired
    /// (its running calls are, or will be, `reconcile_required`; it must register again).
    async fn renew_node(&self, node: NodeId, lease: time::Duration) -> StoreResult<bool>;
    /// Ends the node's lease now: it stopped cleanly, with nothing running.
    async fn release_node(&self, node: NodeId) -> StoreResult<()>;
    /// Turns the running executions of every node whose lease expired into
    /// `reconcile_required` (rows from before leases existed count as such a node), once;
    /// says how many. Any live node may call it, at start and periodically.
    async fn reclaim_expired_nodes(&self) -> StoreResult<u64>;
    /// The database's clock, which leases are kept by (a node compares its own with it).
    async fn database_clock(&self) -> StoreResult<Timestamp>;
    /// A running execution whose outcome could not be recorded for a reason a retry will not
    /// cure (not an outage): it becomes `reconcile_required`, its hold kept, for an operator.
    /// `false` if it was not running.
    async fn require_reconcile(&self, public_id: &str) -> StoreResult<bool>;
    /// Captures or voids a `reconcile_required` execution. Under an `OperatorRequest` a retry
    /// is answered with the reconciled execution instead of a refusal.
    async fn reconcile_execution(
        &self,
        public_id: &str,
        decision: Reconcile,
        audit: AuditContext,
        request: Option<OperatorRequest>,
    ) -> StoreResult<ExecutionRecord>;
    /// Records, before a queue-style tool submits, that a submission is under way under the
    /// execution's key, Idempotency-Key and request fingerprint, so that a retry meeting it
    /// waits for it instead of submitting (and paying) again. `Conflict` when the key already
    /// names a live provider request.
    async fn start_provider_request(&self, execution_id: i64) -> StoreResult<()>;
    /// Completes the record with the provider's request id.
    async fn remember_provider_request(&self, execution_id: i64, provider_ref: &str) -> StoreResult<()>;
    /// The provider request an earlier attempt of the same request (same key, Idempotency-Key
    /// and fingerprint) started and did not finish, to resume instead of submitting again.
    async fn provider_request_to_resume(&self, execution_id: i64) -> StoreResult<Option<ProviderRequest>>;
    /// Forgets it once the request finished for good.
    async fn forget_provider_request(&self, execution_id: i64) -> StoreResult<()>;
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

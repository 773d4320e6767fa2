//! The Visa Keys server: configuration, startup and shutdown around the axum router in
//! `routes`. `visa-cli serve` is a thin wrapper over [`Server::start`]; tests start the
//! same server in-process on port 0.
//!
//! Layout: `routes` (one module per resource) → `auth` (who is calling) → `tools` (running
//! a tool) → `visa_store::Store` (persistence). `error` maps every failure to the one
//! envelope; `catalog` loads the tool catalog; `state` is what handlers share.

pub mod app;
pub mod auth;
pub mod catalog;
pub mod clock;
pub mod connections;
pub mod dashboard;
pub mod data_dir;
pub mod detached;
pub mod error;
pub mod extract;
pub mod in_flight;
pub mod lease;
pub mod metrics;
pub mod openai;
pub mod ratelimit;
pub mod routes;
pub mod state;
pub mod tls;
pub mod tools;
pub mod trust;
pub mod usage;
pub mod wire;

use crate::catalog::Catalog;
use crate::state::{AppState, SharedState};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use visa_core::key::{DEFAULT_BRAND, Environment};
use visa_store::{Database, Store};

pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DATABASE_FILE: &str = visa_store::SQLITE_FILE;
const LAST_USED_FLUSH: Duration = Duration::from_secs(1);
/// The shortest node lease: renewed every third of it, a store hiccup must not cost it.
const MIN_NODE_LEASE: Duration = Duration::from_secs(3);

/// Everything `visa-cli serve` can set.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub environment: Environment,
    pub catalog: Catalog,
    pub brand: String,
    /// From `VISA_OPERATOR_TOKEN`; generated into `<data-dir>/operator-token` when unset.
    pub operator_token: Option<String>,
    /// From `VISA_KEY_PEPPER`: secrets are then stored as HMAC-SHA256 instead of SHA-256.
    pub pepper: Option<Vec<u8>>,
    pub session_ttl: Duration,
    /// How long a cached key is kept at most. Changes reach the cache sooner: at once from
    /// this node, within `auth::key_cache::FRESHNESS` from any other.
    pub key_cache_ttl: Duration,
    /// How long an Idempotency-Key is remembered (24 h by default).
    pub idempotency_ttl: Duration,
    /// Trusted proxies and the networks allowed to use plain HTTP.
    pub trust: trust::TrustPolicy,
    /// Serve HTTPS with these PEM files.
    pub tls: Option<tls::TlsFiles>,
    /// A connection that has not sent a whole request head by then is closed (slow-loris).
    pub header_read_timeout: Duration,
    /// The wall clock (tests move a manual one).
    pub clock: clock::Clock,
    /// The most connections open at once; `None`: derived from the open-file limit.
    pub max_connections: Option<usize>,
    /// The most connections open at once from one source IP (trusted proxies exempt); `None`:
    /// a quarter of the connection cap, at least 64.
    pub max_connections_per_ip: Option<usize>,
    /// How long a request body may take to arrive.
    pub body_read_timeout: Duration,
    /// How often retention sweeps what it no longer keeps (`Store::sweep_expired`).
    pub sweep_interval: Duration,
    /// Usage is kept per minute this long (7 days by default), then rolled up per hour.
    pub usage_minute_retention: Duration,
    /// Usage is kept per hour this long (90 days by default), then rolled up per day.
    pub usage_hour_retention: Duration,
    /// How fast sign-ins and invitation acceptances may come, per client IP and per login.
    pub sign_in_limits: auth::throttle::SignInLimits,
    /// The database; `None`: SQLite in the data dir.
    pub database: Option<Database>,
    /// How long this node's lease lasts without renewal (renewed every third of it): a node
    /// silent this long is taken for dead and its running calls become `reconcile_required`.
    pub node_lease: Duration,
}

impl ServeConfig {
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            data_dir,
            environment: Environment::Production,
            catalog: Catalog::default_catalog(),
            brand: DEFAULT_BRAND.to_owned(),
            operator_token: None,
            pepper: None,
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            key_cache_ttl: Duration::from_secs(60),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            trust: trust::TrustPolicy::default(),
            tls: None,
            header_read_timeout: Duration::from_secs(10),
            clock: clock::Clock::system(),
            max_connections: None,
            max_connections_per_ip: None,
            body_read_timeout: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(10),
            usage_minute_retention: Duration::from_secs(7 * 24 * 3600),
            usage_hour_retention: Duration::from_secs(90 * 24 * 3600),
            sign_in_limits: Default::default(),
            node_lease: Duration::from_secs(30),
            database: None,
        }
    }
}

impl ServeConfig {
    /// Refuses a configuration that would break a guarantee, before anything is opened: an
    /// Idempotency-Key retention shorter than the longest tool timeout (a record must outlive
    /// every call it guards, or a retry of a running call would run it twice).
    pub fn check(&self) -> anyhow::Result<()> {
        if self.idempotency_ttl.is_zero() {
            anyhow::bail!("the Idempotency-Key retention must be more than zero");
        }
        if self.usage_minute_retention.is_zero() || self.usage_hour_retention < self.usage_minute_retention {
            anyhow::bail!(
                "usage retention: the per-minute window must be more than zero and at most the per-hour window"
            );
        }
        if self.node_lease < MIN_NODE_LEASE {
            anyhow::bail!(
                "the node lease ({} s) must be at least {} s: it is renewed every third of it",
                self.node_lease.as_secs_f64(),
                MIN_NODE_LEASE.as_secs()
            );
        }
        if let Some(tool) =
            self.catalog.tools().iter().max_by_key(|t| t.timeout).filter(|t| self.idempotency_ttl < t.timeout)
        {
            anyhow::bail!(
                "the Idempotency-Key retention ({} s) must be at least the longest tool timeout ({} s, tool '{}')",
                self.idempotency_ttl.as_secs_f64(),
                tool.timeout.as_secs_f64(),
                tool.id
            );
        }
        Ok(())
    }
}

/// A running server: its address, and a way to stop it gracefully.
pub struct Server {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    /// Stops the lease's renewal, once every call has drained.
    drained: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    /// The lease's keeper, which gives the lease up when it stops.
    lease: JoinHandle<()>,
    tls: Option<Arc<tls::Tls>>,
    /// Released when the server is dropped (or its process dies).
    _lock: data_dir::DataDirLock,
}

/// A bound listener, with its live rustls configuration when it serves HTTPS.
struct Listener {
    socket: std::net::TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    header_read_timeout: Duration,
    connections: Arc<connections::Registry>,
}

impl Server {
    /// Binds, takes the data dir's lock, opens the database, recovers, and starts serving in
    /// the background. Each step runs only once the ones before it succeeded, and the ones
    /// that change something come last: a failed bind leaves no dir, token or database behind,
    /// and a second server on a locked data dir changes nothing (`data_dir`).
    pub async fn start(config: ServeConfig) -> anyhow::Result<Server> {
        config.check()?;
        let tls = match &config.tls {
            Some(files) => Some(Arc::new(tls::Tls::load(files.clone()).await?)),
            None => None,
        };
        let cannot_listen = |e: std::io::Error| anyhow::anyhow!("cannot listen on {}: {e}", config.listen);
        let socket = std::net::TcpListener::bind(config.listen).map_err(cannot_listen)?;
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        let lock = data_dir::DataDirLock::acquire(&config.data_dir)?;
        let database = config.database.clone().unwrap_or_else(|| Database::Sqlite(config.data_dir.join(DATABASE_FILE)));
        // Nodes sharing a database share one operator token: never one generated per node.
        let embedded = matches!(database, Database::Sqlite(_));
        let operator_token =
            auth::operator_token::resolve(config.operator_token.as_deref(), &config.data_dir, embedded)?;
        if let Database::Sqlite(db_path) = &database {
            data_dir::create_private(db_path)?;
        }
        let store: Arc<dyn Store> = database.open().map_err(|e| anyhow::anyhow!("cannot open {database}: {e}"))?;
        data_dir::make_private(&config.data_dir)?;
        let node = lease::Node::register(store.as_ref(), config.clock.now(), config.node_lease).await?;
        let state: SharedState = Arc::new(AppState::build(&config, store.clone(), &operator_token, node)?);
        lease::reclaim(&state).await;
        let open_files = connections::raise_open_file_limit();
        let max_connections =
            config.max_connections.unwrap_or_else(|| connections::default_max_connections(open_files));
        let max_per_ip =
            config.max_connections_per_ip.unwrap_or_else(|| connections::default_max_per_ip(max_connections));
        tracing::info!(max_connections, max_per_ip, open_files, "connection cap");
        let listener = Listener {
            socket,
            tls: tls.as_ref().map(|t| t.config()),
            header_read_timeout: config.header_read_timeout,
            connections: connections::Registry::new(max_connections, max_per_ip, config.trust.trusted_proxies.clone()),
        };
        let (shutdown, stopped) = watch::channel(false);
        let (drained, lease_stopped) = watch::channel(false);
        tokio::spawn(sweep_retention(state.clone(), config.sweep_interval, stopped.clone()));
        let lease = tokio::spawn(lease::keep(state.clone(), lease_stopped));
        tokio::spawn(auth::key_cache::follow_changes(state.clone(), stopped.clone()));
        let drain_limit = drain_limit(&config.catalog);
        let task = tokio::spawn(serve(listener, state, stopped, drain_limit));
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, scheme, environment = %config.environment, data_dir = %config.data_dir.display(), "visa keys server listening");
        Ok(Server { addr, shutdown, drained, task, lease, tls, _lock: lock })
    }

    /// Re-reads the TLS certificate and key (what SIGHUP does). A no-op without TLS.
    pub async fn reload_tls(&self) -> anyhow::Result<()> {
        match &self.tls {
            Some(tls) => tls.reload().await,
            None => Ok(()),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, drains in-flight requests and every paid call still running (those
    /// whose client hung up included), flushes last-used times; the lease is renewed until then,
    /// and given up after.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let served = self.task.await;
        let _ = self.drained.send(true);
        let _ = self.lease.await;
        served??;
        Ok(())
    }

    /// Serves until SIGTERM or Ctrl-C, then shuts down gracefully.
    pub async fn run_until_signal(self, mut signals: Signals) -> anyhow::Result<()> {
        while signals.next().await == Signal::Reload {
            match self.reload_tls().await {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: keeping the current certificate"),
            }
        }
        tracing::info!("shutting down: draining in-flight requests");
        self.shutdown().await
    }
}

pub fn app(state: SharedState) -> axum::Router {
    routes::router(state.clone())
        .layer(axum::middleware::from_fn_with_state(state.clone(), trust::resolve_client))
        .layer(axum::middleware::from_fn_with_state(state, routes::metrics::count_requests))
}

/// How long shutdown waits for paid calls after the last connection closed: the longest tool
/// timeout, plus time to record the outcome.
fn drain_limit(catalog: &Catalog) -> Duration {
    let longest = catalog.tools().iter().map(|t| t.timeout).max().unwrap_or_default();
    longest + Duration::from_secs(5)
}

async fn serve(
    listener: Listener,
    state: SharedState,
    stopped: watch::Receiver<bool>,
    drain_limit: Duration,
) -> std::io::Result<()> {
    let flusher = tokio::spawn(flush_last_used(state.clone(), stopped.clone()));
    let connections = listener.connections.clone();
    let service = app(state.clone())
        .layer(axum::middleware::from_fn_with_state(connections.clone(), connections::mark_served))
        .into_make_service_with_connect_info::<SocketAddr>();
    let stop = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let handle = axum_server::Handle::new();
    let draining = handle.clone();
    tokio::spawn(async move {
        stop(stopped).await;
        draining.graceful_shutdown(None);
    });
    let guard = connections::Guard::new(
        axum_server::accept::DefaultAcceptor,
        connections,
        listener.header_read_timeout,
        state.metrics.connections(),
    );
    let result = match listener.tls {
        Some(config) => {
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(guard);
            let mut server = axum_server::from_tcp(listener.socket)?.acceptor(acceptor).handle(handle);
            configure_protocols(server.http_builder(), listener.header_read_timeout);
            server.serve(service).await
        }
        None => {
            let mut server = axum_server::from_tcp(listener.socket)?.acceptor(guard).handle(handle);
            configure_protocols(server.http_builder(), listener.header_read_timeout);
            server.serve(service).await
        }
    };
    // Calls whose client hung up run on in tasks of their own: wait for their outcomes.
    if !state.in_flight.is_empty() {
        tracing::info!(calls = state.in_flight.len(), "shutting down: waiting for paid calls to finish");
        let left = state.in_flight.drained(drain_limit).await;
        if left > 0 {
            tracing::error!(calls = left, "shutting down with paid calls still running; they will need reconciling");
        }
    }
    let _ = flusher.await;
    flush_usage(&state).await;
    result
}

/// HTTP/2 streams one connection may carry at once.
const H2_MAX_STREAMS: u32 = 128;

/// Timeouts for both protocols, cleartext and TLS alike. hyper enforces its HTTP/1 header read
/// timeout only with a timer installed (axum's own `serve` installs none, so a client could hold
/// a connection open forever by dribbling a request head). HTTP/2 has no such timeout: an idle
/// HTTP/2 connection is pinged every `timeout` and closed when a ping goes unanswered for as
/// long (a peer that sent its preface and nothing since, a dead peer), its streams are capped,
/// and a connection that never completes a request is the first evicted at the connection cap
/// (`connections`).
fn configure_protocols(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    timeout: Duration,
) {
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(timeout);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Some(timeout))
        .keep_alive_timeout(timeout)
        .max_concurrent_streams(H2_MAX_STREAMS);
}

async fn flush_last_used(state: SharedState, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(LAST_USED_FLUSH);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        flush_usage(&state).await;
    }
}

/// Rows one retention transaction may delete, so the writer is never held for long.
const SWEEP_BATCH: u32 = 1_000;

/// Retention: every `interval`, deletes in bounded batches what the Idempotency-Key window no
/// longer keeps and rolls old usage up (docs/money.md, "Retention"), until nothing more is due;
/// and ends this node's running calls that no task tracks any more (`in_flight`).
async fn sweep_retention(state: SharedState, interval: Duration, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        in_flight::sweep_untracked(&state).await;
        loop {
            match state.store.sweep_expired(state.now(), state.retention, SWEEP_BATCH).await {
                Ok(swept) if swept >= u64::from(SWEEP_BATCH) => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "retention sweep failed; retrying at the next tick");
                    break;
                }
            }
        }
    }
}

async fn flush_usage(state: &SharedState) {
    state.last_used.flush(state.store.as_ref()).await;
    state.request_counts.flush(state.store.as_ref()).await;
}

/// The process signals `serve` answers: SIGTERM and SIGINT stop it gracefully, SIGHUP reloads
/// the TLS files. Installed before the server starts, so that a signal arriving right after
/// it logs "listening" is not the default disposition (which would kill it mid-call).
pub struct Signals {
    #[cfg(unix)]
    streams: [tokio::signal::unix::Signal; 3],
}

#[derive(PartialEq, Eq)]
enum Signal {
    Stop,
    Reload,
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams =
                [signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?, signal(SignalKind::hangup())?];
            Ok(Self { streams })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            let [term, int, hup] = &mut self.streams;
            tokio::select! {
                _ = term.recv() => Signal::Stop,
                _ = int.recv() => Signal::Stop,
                _ = hup.recv() => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}

/// Writes `contents` to `path`, readable and writable by the owner only (0600 on Unix).
/// A symlink at `path` is refused, not followed (it could point anywhere).
pub fn write_private_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = data_dir::private_file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    // `mode` applies only when the file is created; an older file is tightened too.
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

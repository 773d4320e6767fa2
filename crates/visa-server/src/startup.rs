//! Starting and stopping a server: bind, lock the data dir, open the database, register the
//! node, build the shared state, start the background work (`background`) and serve HTTP or
//! HTTPS with the connection guard; on shutdown drain requests and paid calls, then give the
//! lease up.

use crate::config::ServeConfig;
use crate::signals::{Signal, Signals};
use crate::state::{AppState, SharedState};
use crate::tools::catalog::Catalog;
use crate::{
    DATABASE_FILE, auth, background, connections, dashboard, data_dir, error, extract, lease, mcp, oauth, openai,
    routes, tls,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use visa_store::{Database, Store};

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
        lease::reclaim(state.store.as_ref()).await;
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
        let lease = background::start(&state, config.sweep_interval, &stopped, lease_stopped);
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

/// Every surface on one router — the JSON API, the dashboard, the OpenAI and MCP surfaces and
/// MCP's OAuth — with what
/// all requests go through: the route's label for metrics, the error envelope for unknown
/// routes and wrong methods, the client's address, the request counters.
pub fn app(state: SharedState) -> axum::Router {
    let (api, _) = routes::api().split_for_parts();
    api.merge(dashboard::router())
        .merge(openai::router())
        .merge(mcp::router(state.clone()))
        .merge(oauth::router())
        .route_layer(axum::middleware::from_fn(routes::metrics::tag_route))
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::not_found)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(state.clone(), extract::resolve_client))
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
    let flusher = tokio::spawn(background::flush_last_used(state.clone(), stopped.clone()));
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
    background::flush_usage(&state).await;
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

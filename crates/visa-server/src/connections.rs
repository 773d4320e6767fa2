//! Connections a client cannot hold forever. Every accepted TCP connection must:
//!
//! - fit under the server's connection cap (`--max-connections`). At the cap, the oldest
//!   connection that has not yet sent a complete request (a socket that sent nothing, an HTTP/2
//!   preface and no request) is closed to make room; only when every open connection has been
//!   served is the new one closed at once, so the connections (and requests) in flight keep
//!   their file descriptors and are never starved, and idle sockets cannot lock clients out;
//! - fit under the per-source-IP cap (`--max-connections-per-ip`; trusted proxies are exempt:
//!   every client behind them shares their address);
//! - send its first byte within the header timeout, counted from accept (hyper's own header
//!   timeout only starts at the first byte, so a socket that never sends one would stay open);
//!   the rest of the request head is then bounded by hyper's header timeout, and its body by
//!   the body timeout (`app`). HTTP/2 connections are pinged and closed when the peer stops
//!   answering (`configure_protocols` in `lib.rs`).
//!
//! A refused connection is logged at most once per 10 s, with how many were refused meanwhile.
//!
//! The guard wraps the plain or TLS acceptor; the registration rides inside the stream, so it is
//! released exactly when the connection closes. `mark_served` (a middleware) marks the
//! connection a request arrived on, found by its peer address.

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum_server::accept::Accept;
use futures::task::AtomicWaker;
use ipnet::IpNet;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// File descriptors kept free beyond the connection cap: the database, its WAL, provider
/// connections, logs.
const FD_HEADROOM: u64 = 256;
/// How long a new connection waits for the one it evicted to close.
const EVICTION_WAIT: Duration = Duration::from_secs(1);
/// At most one "refused" warning this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Raises the soft open-file limit to the hard one and returns the limit now in force.
pub fn raise_open_file_limit() -> u64 {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit/setrlimit write and read the struct we pass; no other memory.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return 1024;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                }
            }
        }
        limit.rlim_cur
    }
    #[cfg(not(unix))]
    {
        1024
    }
}

/// The connection cap when none is configured: what the open-file limit allows, less headroom.
pub fn default_max_connections(open_file_limit: u64) -> usize {
    usize::try_from(open_file_limit.saturating_sub(FD_HEADROOM).max(16)).unwrap_or(usize::MAX)
}

/// The per-source-IP cap when none is configured: a quarter of the connection cap, at least 64.
pub fn default_max_per_ip(max_connections: usize) -> usize {
    (max_connections / 4).max(64)
}

/// One open connection, as the registry and its stream see it.
struct Conn {
    id: u64,
    peer: SocketAddr,
    served: AtomicBool,
    evicted: AtomicBool,
    /// Wakes the connection's pending read (hyper waiting for the next request) on eviction.
    reader: AtomicWaker,
    /// Wakes the first-byte wait on eviction.
    evict: Notify,
}

impl Conn {
    fn evict(&self) {
        self.evicted.store(true, Ordering::SeqCst);
        self.reader.wake();
        self.evict.notify_one();
    }
}

#[derive(Default)]
struct Table {
    next_id: u64,
    by_peer: HashMap<SocketAddr, Arc<Conn>>,
    /// Connections that have not completed a request yet, oldest first (ids grow with accepts).
    unserved: BTreeMap<u64, Arc<Conn>>,
    per_ip: HashMap<IpAddr, usize>,
}

/// Counts refused connections and says so at most once per `WARN_EVERY`.
#[derive(Default)]
struct Refusals {
    since_warning: u64,
    warned_at: Option<Instant>,
}

/// The server's open connections: the caps, eviction, and which have been served.
pub struct Registry {
    permits: Arc<Semaphore>,
    max_per_ip: usize,
    /// Sources exempt from the per-IP cap (trusted proxies).
    exempt: Vec<IpNet>,
    table: Mutex<Table>,
    refusals: Mutex<Refusals>,
}

impl Registry {
    pub fn new(max_connections: usize, max_per_ip: usize, exempt: Vec<IpNet>) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(max_connections)),
            max_per_ip,
            exempt,
            table: Mutex::default(),
            refusals: Mutex::default(),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the connection from `peer` as having sent a complete request: never evicted.
    pub fn served(&self, peer: SocketAddr) {
        let mut table = self.table();
        let Some(conn) = table.by_peer.get(&peer).cloned() else { return };
        if !conn.served.swap(true, Ordering::Relaxed) {
            table.unserved.remove(&conn.id);
        }
    }

    /// Registers a connection from `peer`, or refuses it (the per-IP cap).
    fn register(self: &Arc<Self>, peer: SocketAddr) -> Result<Registration, &'static str> {
        let mut table = self.table();
        let exempt = self.exempt.iter().any(|net| net.contains(&peer.ip()));
        let from_ip = table.per_ip.get(&peer.ip()).copied().unwrap_or(0);
        if !exempt && from_ip >= self.max_per_ip {
            return Err("its source IP is at its connection cap (--max-connections-per-ip)");
        }
        table.next_id += 1;
        let conn = Arc::new(Conn {
            id: table.next_id,
            peer,
            served: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            reader: AtomicWaker::new(),
            evict: Notify::new(),
        });
        *table.per_ip.entry(peer.ip()).or_default() += 1;
        table.by_peer.insert(peer, conn.clone());
        table.unserved.insert(conn.id, conn.clone());
        Ok(Registration { registry: self.clone(), conn })
    }

    /// Closes the oldest connection that has not completed a request, other than `own` (the
    /// newcomer asking); whether there was one.
    fn evict_oldest_unserved(&self, own: &Conn) -> bool {
        let mut table = self.table();
        let oldest = table.unserved.first_key_value().map(|(id, _)| *id).filter(|id| *id != own.id);
        let evicted = oldest.and_then(|id| table.unserved.remove(&id));
        evicted.inspect(|conn| conn.evict()).is_some()
    }

    /// A permit for the new connection `own`: a free one, or one freed by evicting the oldest
    /// unserved connection (waiting briefly for it to close).
    async fn permit(&self, own: &Conn) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Some(permit);
        }
        while self.evict_oldest_unserved(own) {
            let freed = tokio::time::timeout(EVICTION_WAIT, self.permits.clone().acquire_owned()).await;
            if let Ok(Ok(permit)) = freed {
                return Some(permit);
            }
        }
        None
    }

    fn refused(&self, why: &str) {
        let mut refusals = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        refusals.since_warning += 1;
        if refusals.warned_at.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            tracing::warn!(refused = refusals.since_warning, "connections refused: {why}");
            *refusals = Refusals { since_warning: 0, warned_at: Some(Instant::now()) };
        }
    }
}

/// A connection's place in the registry, released when it closes.
struct Registration {
    registry: Arc<Registry>,
    conn: Arc<Conn>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut table = self.registry.table();
        let conn = &self.conn;
        if table.by_peer.get(&conn.peer).is_some_and(|c| c.id == conn.id) {
            table.by_peer.remove(&conn.peer);
        }
        table.unserved.remove(&conn.id);
        if let Some(count) = table.per_ip.get_mut(&conn.peer.ip()) {
            *count -= 1;
            if *count == 0 {
                table.per_ip.remove(&conn.peer.ip());
            }
        }
    }
}

/// The middleware that marks a connection served once a whole request arrived on it.
pub async fn mark_served(State(registry): State<Arc<Registry>>, request: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        registry.served(*peer);
    }
    next.run(request).await
}

/// Wraps an acceptor with the caps, eviction and the first-byte deadline.
#[derive(Clone)]
pub struct Guard<A> {
    inner: A,
    registry: Arc<Registry>,
    first_byte: Duration,
    /// `visa_connections_open`.
    open: Gauge,
}

impl<A> Guard<A> {
    pub fn new(inner: A, registry: Arc<Registry>, first_byte: Duration, open: Gauge) -> Self {
        Self { inner, registry, first_byte, open }
    }
}

impl<A, S> Accept<TcpStream, S> for Guard<A>
where
    A: Accept<Guarded<TcpStream>, S> + Clone + Send + 'static,
    A::Future: Send,
    S: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(A::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let (inner, registry, first_byte) = (self.inner.clone(), self.registry.clone(), self.first_byte);
        let open = self.open.clone();
        Box::pin(async move {
            let refuse = |why: &'static str| {
                registry.refused(why);
                Err(io::Error::other(why))
            };
            let peer = stream.peer_addr()?;
            let registration = match registry.register(peer) {
                Ok(registration) => registration,
                Err(why) => return refuse(why),
            };
            let Some(permit) = registry.permit(&registration.conn).await else {
                return refuse(
                    "the server is at its connection cap (--max-connections) and every connection is in use",
                );
            };
            let mut probe = [0u8; 1];
            tokio::select! {
                peeked = tokio::time::timeout(first_byte, stream.peek(&mut probe)) => match peeked {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return Err(io::Error::new(io::ErrorKind::TimedOut, "no request within the header timeout")),
                },
                () = registration.conn.evict.notified() => {
                    return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "evicted at the connection cap"));
                }
            }
            open.inc();
            // Answers that are written in parts (a streamed completion: events, then the charge
            // and `[DONE]` once settled) must not wait on Nagle for the client's delayed ACK
            // (~40 ms per stream); single-write answers lose nothing by it.
            let _ = stream.set_nodelay(true);
            inner.accept(Guarded { inner: stream, _permit: permit, registration, open }, service).await
        })
    }
}

/// A stream holding one of the server's connection permits and its registration (and counted
/// as open) until it is dropped; evicted, it reads as aborted, so hyper closes it.
pub struct Guarded<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
    registration: Registration,
    open: Gauge,
}

impl<S> Drop for Guarded<S> {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let conn = &self.registration.conn;
        conn.reader.register(cx.waker());
        if conn.evicted.load(Ordering::SeqCst) {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "evicted at the connection cap")));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((ip, port))
    }

    #[tokio::test]
    async fn at_the_cap_the_oldest_unserved_connection_makes_room_and_served_ones_stay() {
        let registry = Registry::new(2, 100, vec![]);
        let first = registry.register(peer([10, 0, 0, 1], 1)).unwrap();
        let p1 = registry.permit(&first.conn).await.unwrap();
        let second = registry.register(peer([10, 0, 0, 2], 2)).unwrap();
        let p2 = registry.permit(&second.conn).await.unwrap();
        registry.served(second.conn.peer);
        // The third: the first (never served) is evicted; once it closes, its permit is the third's.
        let third = registry.register(peer([10, 0, 0, 3], 3)).unwrap();
        let closing = tokio::spawn(async move {
            first.conn.evict.notified().await;
            assert!(first.conn.evicted.load(Ordering::SeqCst));
            drop((first, p1));
        });
        let p3 = registry.permit(&third.conn).await.expect("room was made");
        closing.await.unwrap();
        assert!(!second.conn.evicted.load(Ordering::SeqCst), "a served connection is never evicted");
        // Now the third is unserved and is the only one evictable; once served, nothing is.
        registry.served(third.conn.peer);
        let fourth = registry.register(peer([10, 0, 0, 4], 4)).unwrap();
        let started = Instant::now();
        assert!(registry.permit(&fourth.conn).await.is_none(), "every connection is in use: refused");
        assert!(started.elapsed() < EVICTION_WAIT, "at once: it does not evict itself");
        drop((p2, p3, second, third));
    }

    #[test]
    fn one_source_ip_is_capped_unless_it_is_a_trusted_proxy() {
        let registry = Registry::new(100, 2, vec!["10.9.0.0/16".parse().unwrap()]);
        let a = registry.register(peer([10, 0, 0, 1], 1)).unwrap();
        let _b = registry.register(peer([10, 0, 0, 1], 2)).unwrap();
        assert!(registry.register(peer([10, 0, 0, 1], 3)).is_err());
        assert!(registry.register(peer([10, 0, 0, 2], 1)).is_ok(), "another IP");
        drop(a);
        assert!(registry.register(peer([10, 0, 0, 1], 3)).is_ok(), "a closed connection frees its place");
        let proxied: Vec<_> = (0..10).map(|port| registry.register(peer([10, 9, 0, 1], port)).unwrap()).collect();
        assert_eq!(proxied.len(), 10);
    }
}

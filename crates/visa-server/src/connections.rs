//! Connections a client cannot hold forever. Every accepted TCP connection must:
//!
//! - fit under the server's connection cap (`--max-connections`): beyond it a new connection
//!   is closed at once, so the connections (and requests) already in flight keep their file
//!   descriptors and are never starved;
//! - send its first byte within the header timeout, counted from accept (hyper's own header
//!   timeout only starts at the first byte, so a socket that never sends one would stay open);
//!   the rest of the request head is then bounded by hyper's header timeout, and its body by
//!   the body timeout (`app`).
//!
//! The guard wraps the plain or TLS acceptor; the permit rides inside the stream, so it is
//! released exactly when the connection closes.

use axum_server::accept::Accept;
use prometheus_client::metrics::gauge::Gauge;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// File descriptors kept free beyond the connection cap: the database, its WAL, provider
/// connections, logs.
const FD_HEADROOM: u64 = 256;

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

/// Wraps an acceptor with the cap and the first-byte deadline.
#[derive(Clone)]
pub struct Guard<A> {
    inner: A,
    permits: Arc<Semaphore>,
    first_byte: Duration,
    /// `visa_connections_open`.
    open: Gauge,
}

impl<A> Guard<A> {
    pub fn new(inner: A, max_connections: usize, first_byte: Duration, open: Gauge) -> Self {
        Self { inner, permits: Arc::new(Semaphore::new(max_connections)), first_byte, open }
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
        let (inner, permits, first_byte) = (self.inner.clone(), self.permits.clone(), self.first_byte);
        let open = self.open.clone();
        Box::pin(async move {
            let Ok(permit) = permits.try_acquire_owned() else {
                tracing::warn!("connection refused: the server is at its connection cap (--max-connections)");
                return Err(io::Error::other("at the connection cap"));
            };
            let mut probe = [0u8; 1];
            match tokio::time::timeout(first_byte, stream.peek(&mut probe)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Err(io::Error::new(io::ErrorKind::TimedOut, "no request within the header timeout")),
            }
            open.inc();
            // Answers that are written in parts (a streamed completion: events, then the charge
            // and `[DONE]` once settled) must not wait on Nagle for the client's delayed ACK
            // (~40 ms per stream); single-write answers lose nothing by it.
            let _ = stream.set_nodelay(true);
            inner.accept(Guarded { inner: stream, _permit: permit, open }, service).await
        })
    }
}

/// A stream holding one of the server's connection permits (and counted as open) until it
/// is dropped.
pub struct Guarded<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl<S> Drop for Guarded<S> {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
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

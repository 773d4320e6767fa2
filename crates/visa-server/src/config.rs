//! What `visa-cli serve` can set (`ServeConfig`), with the defaults, and the check that refuses
//! a configuration that would break a guarantee before anything is opened.

use crate::tools::catalog::Catalog;
use crate::{auth, clock, tls, trust};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use visa_core::key::{DEFAULT_BRAND, Environment};
use visa_store::Database;

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
    /// From `VISA_WEBHOOK_KEY`: what webhook secrets are derived from (else the operator token).
    pub webhook_key: Option<String>,
    /// Private networks webhooks may reach (`--webhook-allow-private`).
    pub webhook_allow_private: Vec<ipnet::IpNet>,
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
    /// Webhook delivery attempts (and delivered events) are kept this long (30 days by default).
    pub webhook_log_retention: Duration,
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
            webhook_key: None,
            webhook_allow_private: Vec::new(),
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
            webhook_log_retention: Duration::from_secs(30 * 24 * 3600),
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

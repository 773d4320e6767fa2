//! What every handler shares: the store, the catalog, the environment this server serves,
//! the secret hasher, the operator token's hash, the key cache and the last-used recorder.

use crate::ServeConfig;
use crate::auth::key_cache::KeyCache;
use crate::clock::Clock;
use crate::tools::catalog::Catalog;
use crate::usage::LastUsed;
use std::sync::Arc;
use time::OffsetDateTime;
use visa_core::key::Environment;
use visa_core::secret::{SecretHash, SecretHasher};
use visa_store::Store;

pub type SharedState = Arc<AppState>;

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub catalog: Catalog,
    pub environment: Environment,
    pub brand: String,
    pub hasher: SecretHasher,
    pub operator_token: SecretHash,
    pub keys: KeyCache,
    pub last_used: LastUsed,
    pub request_counts: crate::usage::RequestCounts,
    pub trust: crate::trust::TrustPolicy,
    /// One pooled HTTP client for every provider call.
    pub upstream: crate::tools::upstream::Upstream,
    pub session_ttl: time::Duration,
    /// How long an Idempotency-Key is remembered.
    pub idempotency_ttl: time::Duration,
    /// What the retention sweep keeps.
    pub retention: visa_store::Retention,
    pub clock: Clock,
    pub metrics: crate::metrics::Metrics,
    /// How long a request body may take to arrive.
    pub body_read_timeout: std::time::Duration,
    pub sign_in: crate::auth::throttle::SignInThrottle,
    /// This process as a node of the store (its lease; the id paid calls are begun under).
    pub node: crate::lease::Node,
    /// The paid calls this process is running (shutdown drains them; the sweep ends the
    /// running calls of this node that no task tracks).
    pub in_flight: crate::in_flight::InFlight,
    /// Signs and sends webhook deliveries.
    pub webhooks: crate::webhooks::client::Deliverer,
}

impl AppState {
    /// What every handler shares, for a server on `store` configured by `config` (which
    /// [`ServeConfig::check`] has accepted).
    pub fn build(
        config: &ServeConfig,
        store: Arc<dyn Store>,
        operator_token: &str,
        node: crate::lease::Node,
    ) -> anyhow::Result<AppState> {
        let hasher = SecretHasher::new(config.pepper.clone());
        let metrics = crate::metrics::Metrics::new(store.metrics());
        let idempotency_ttl = time::Duration::try_from(config.idempotency_ttl).unwrap_or(time::Duration::days(1));
        Ok(AppState {
            store,
            catalog: config.catalog.clone(),
            environment: config.environment,
            brand: config.brand.clone(),
            operator_token: hasher.hash(operator_token),
            hasher,
            keys: KeyCache::new(config.key_cache_ttl),
            last_used: Default::default(),
            request_counts: Default::default(),
            trust: crate::trust::TrustPolicy { tls: config.tls.is_some(), ..config.trust.clone() },
            upstream: crate::tools::upstream::Upstream::new()
                .map_err(|e| anyhow::anyhow!("cannot build the provider HTTP client: {e}"))?,
            session_ttl: time::Duration::try_from(config.session_ttl).unwrap_or(time::Duration::days(30)),
            idempotency_ttl,
            retention: visa_store::Retention {
                operator_requests: idempotency_ttl,
                usage_minutes: time::Duration::try_from(config.usage_minute_retention)
                    .unwrap_or(time::Duration::days(7)),
                usage_hours: time::Duration::try_from(config.usage_hour_retention).unwrap_or(time::Duration::days(90)),
                webhook_log: time::Duration::try_from(config.webhook_log_retention).unwrap_or(time::Duration::days(30)),
            },
            clock: config.clock.clone(),
            metrics,
            body_read_timeout: config.body_read_timeout,
            sign_in: crate::auth::throttle::SignInThrottle::new(config.sign_in_limits),
            in_flight: Default::default(),
            node,
            webhooks: crate::webhooks::client::Deliverer::new(
                crate::webhooks::signing::WebhookKey::new(config.webhook_key.as_deref(), operator_token),
                crate::webhooks::ssrf::Destinations::new(config.webhook_allow_private.clone()),
            )
            .map_err(|e| anyhow::anyhow!("cannot build the webhook HTTP client: {e}"))?,
        })
    }

    /// The clock every decision uses (one place to read it).
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}

//! What every handler shares: the store, the catalog, the environment this server serves,
//! the secret hasher, the operator token's hash, the key cache and the last-used recorder.

use crate::auth::key_cache::KeyCache;
use crate::catalog::Catalog;
use crate::ratelimit::RateLimiter;
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
    pub rate_limits: RateLimiter,
    pub trust: crate::trust::TrustPolicy,
    /// One pooled HTTP client for every provider call.
    pub upstream: crate::tools::upstream::Upstream,
    pub session_ttl: time::Duration,
    /// How long an Idempotency-Key is remembered.
    pub idempotency_ttl: time::Duration,
}

impl AppState {
    /// The clock every decision uses (one place to read it).
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

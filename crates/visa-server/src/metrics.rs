//! What `GET /metrics` reports, in the OpenMetrics text format Prometheus scrapes: requests by
//! route and status, paid-call outcomes, holds in flight, provider latency per tool, open
//! connections, key-cache hits, the money path's rare events (a provider billing more than a
//! hold), and the store's own figures (`visa_store::metrics`). Every name is documented in
//! docs/operations.md; nothing here holds a secret, an id or a client address.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;
use visa_core::money::Micros;
use visa_store::metrics::StoreMetrics;

/// Seconds from 100 µs to ~100 s, doubling (HTTP answers and provider calls).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 21))
}

type Latencies<L> = Family<L, Histogram, fn() -> Histogram>;

/// A request: the route's template (`/v1/api/keys/{id}`, never the id itself, so the label set
/// stays bounded), its method and the status answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: String,
}

/// How one paid call ended, as counted by `visa_paid_calls_total{outcome, reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaidOutcome {
    /// Captured (the charge may be zero in preview or for a free result).
    Captured,
    /// The hold was voided: the provider failed (`retryable` frees the Idempotency-Key).
    Voided { retryable: bool },
    /// No hold was placed: refused by the named rule (`daily_cap`, `total_cap`, `balance`,
    /// `denied`, `rate_limit`), or the store could not place it (`store_unavailable`).
    Refused(&'static str),
    /// Answered from the Idempotency-Key's record: `replay`, `in_flight` or `mismatch`.
    Idempotent(&'static str),
    /// The outcome could not be recorded; an operator must reconcile it.
    ReconcileRequired,
}

impl PaidOutcome {
    fn labels(self) -> OutcomeLabels {
        let (outcome, reason) = match self {
            PaidOutcome::Captured => ("captured", ""),
            PaidOutcome::Voided { retryable: true } => ("voided", "provider_retryable"),
            PaidOutcome::Voided { retryable: false } => ("voided", "provider_final"),
            PaidOutcome::Refused(reason) => ("refused", reason),
            PaidOutcome::Idempotent(reason) => ("idempotent", reason),
            PaidOutcome::ReconcileRequired => ("reconcile_required", ""),
        };
        OutcomeLabels { outcome, reason }
    }
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Latencies<RouteLabels>,
    paid_calls: Family<OutcomeLabels, Counter>,
    holds_open: Gauge,
    held_micros: Gauge,
    provider_seconds: Latencies<ToolLabels>,
    connections_open: Gauge,
    key_cache_hits: Counter,
    key_cache_misses: Counter,
    overages: Counter,
    overage_micros: Counter,
}

impl Metrics {
    /// Every metric, registered once, with the store's beside them.
    pub fn new(store: &StoreMetrics) -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix("visa"),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            paid_calls: Family::default(),
            holds_open: Gauge::default(),
            held_micros: Gauge::default(),
            provider_seconds: Family::new_with_constructor(latency_histogram),
            connections_open: Gauge::default(),
            key_cache_hits: Counter::default(),
            key_cache_misses: Counter::default(),
            overages: Counter::default(),
            overage_micros: Counter::default(),
        };
        let r = &mut metrics.registry;
        r.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            metrics.requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time to answer, by route template and method",
            Unit::Seconds,
            metrics.request_seconds.clone(),
        );
        r.register("paid_calls", "Paid calls by outcome and reason", metrics.paid_calls.clone());
        r.register(
            "holds_open",
            "Holds this node placed that are not yet captured or voided",
            metrics.holds_open.clone(),
        );
        r.register("held_micros", "Micros held by this node's open holds", metrics.held_micros.clone());
        r.register_with_unit(
            "provider_duration",
            "Time a tool's provider took, by tool",
            Unit::Seconds,
            metrics.provider_seconds.clone(),
        );
        r.register(
            "connections_open",
            "Client connections open (accepted, within --max-connections)",
            metrics.connections_open.clone(),
        );
        r.register(
            "key_cache_hits",
            "Tool-key lookups answered from the in-memory cache",
            metrics.key_cache_hits.clone(),
        );
        r.register("key_cache_misses", "Tool-key lookups that read the store", metrics.key_cache_misses.clone());
        r.register(
            "provider_overages",
            "Paid calls whose provider reported more than their hold",
            metrics.overages.clone(),
        );
        r.register(
            "provider_overage_micros",
            "Micros providers reported beyond holds (never charged; the platform's loss)",
            metrics.overage_micros.clone(),
        );
        store.register(r);
        metrics
    }

    /// A request to `route` (its template, or `unmatched`) was answered `status` after `took`.
    pub fn record_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let (route, method) = (route.to_owned(), method.to_owned());
        self.request_seconds
            .get_or_create(&RouteLabels { route: route.clone(), method: method.clone() })
            .observe(took.as_secs_f64());
        self.requests.get_or_create(&RequestLabels { route, method, status }).inc();
    }

    pub fn record_paid(&self, outcome: PaidOutcome) {
        self.paid_calls.get_or_create(&outcome.labels()).inc();
    }

    /// A hold of `hold` was placed (`open`) or ended (`!open`).
    pub fn record_hold(&self, hold: Micros, open: bool) {
        let sign = if open { 1 } else { -1 };
        self.holds_open.inc_by(sign);
        self.held_micros.inc_by(sign * hold.0);
    }

    pub fn record_provider(&self, tool: &str, took: Duration) {
        self.provider_seconds.get_or_create(&ToolLabels { tool: tool.to_owned() }).observe(took.as_secs_f64());
    }

    pub fn key_cache(&self, hit: bool) {
        if hit { &self.key_cache_hits } else { &self.key_cache_misses }.inc();
    }

    /// The open-connections gauge, shared with the acceptor.
    pub fn connections(&self) -> Gauge {
        self.connections_open.clone()
    }

    /// A provider reported `overage` beyond a call's hold (the platform's loss).
    pub fn record_overage(&self, overage: Micros) {
        self.overages.inc();
        self.overage_micros.inc_by(u64::try_from(overage.0).unwrap_or(0));
    }

    /// Everything, in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

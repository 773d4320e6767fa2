//! What a backend reports about itself for `GET /metrics`: how many write transactions it
//! committed, how long they took and how many requests each carried, and how long making them
//! durable took. Every backend fills the same set, so dashboards do not change with it.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;

/// Seconds from 50 µs to ~3 s, doubling: store and fsync latencies on any disk.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

#[derive(Clone, Debug)]
pub struct StoreMetrics {
    commits: Counter,
    transaction_seconds: Histogram,
    jobs_per_transaction: Histogram,
    durability_seconds: Histogram,
    writer_held_seconds: Histogram,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self {
            commits: Counter::default(),
            transaction_seconds: latency_histogram(),
            jobs_per_transaction: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            durability_seconds: latency_histogram(),
            writer_held_seconds: latency_histogram(),
        }
    }
}

impl StoreMetrics {
    /// A write transaction committed after `took`, carrying `jobs` requests' changes.
    pub fn committed(&self, took: Duration, jobs: usize) {
        self.commits.inc();
        self.transaction_seconds.observe(took.as_secs_f64());
        self.jobs_per_transaction.observe(jobs as f64);
    }

    /// Making committed transactions durable (one fsync for SQLite) took `took`.
    pub fn made_durable(&self, took: Duration) {
        self.durability_seconds.observe(took.as_secs_f64());
    }

    /// A checkpoint held the writer for `took` to finish (so the log can restart).
    pub fn held_writer(&self, took: Duration) {
        self.writer_held_seconds.observe(took.as_secs_f64());
    }

    pub fn register(&self, registry: &mut Registry) {
        let store = registry.sub_registry_with_prefix("store");
        store.register(
            "commits",
            "Write transactions committed (each may carry many requests' changes)",
            self.commits.clone(),
        );
        store.register_with_unit(
            "transaction",
            "Time from BEGIN to COMMIT of a write transaction",
            Unit::Seconds,
            self.transaction_seconds.clone(),
        );
        store.register(
            "jobs_per_transaction",
            "Requests' changes committed together in one write transaction",
            self.jobs_per_transaction.clone(),
        );
        store.register_with_unit(
            "fsync",
            "Time to make committed transactions durable (an fsync of the WAL)",
            Unit::Seconds,
            self.durability_seconds.clone(),
        );
        store.register_with_unit(
            "checkpoint_writer_held",
            "Time a finishing WAL checkpoint held the writer (no commit meanwhile)",
            Unit::Seconds,
            self.writer_held_seconds.clone(),
        );
    }
}

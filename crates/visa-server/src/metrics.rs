//! Counters the server keeps in memory and `GET /metrics` renders: the money path's events an
//! operator must see, such as a provider billing more than a call's hold.

use std::sync::atomic::{AtomicU64, Ordering};
use visa_core::money::Micros;

#[derive(Default)]
pub struct Metrics {
    overages: AtomicU64,
    overage_micros: AtomicU64,
}

impl Metrics {
    /// A provider reported `overage` beyond a call's hold (the platform's loss).
    pub fn record_overage(&self, overage: Micros) {
        self.overages.fetch_add(1, Ordering::Relaxed);
        self.overage_micros.fetch_add(u64::try_from(overage.0).unwrap_or(0), Ordering::Relaxed);
    }

    /// The counters in the Prometheus text format.
    pub fn render(&self) -> String {
        format!(
            "# HELP visa_provider_overages_total Paid calls whose provider reported more than their hold.\n\
             # TYPE visa_provider_overages_total counter\n\
             visa_provider_overages_total {}\n\
             # HELP visa_provider_overage_micros_total Micros providers reported beyond holds (never charged; the platform's loss).\n\
             # TYPE visa_provider_overage_micros_total counter\n\
             visa_provider_overage_micros_total {}\n",
            self.overages.load(Ordering::Relaxed),
            self.overage_micros.load(Ordering::Relaxed)
        )
    }
}

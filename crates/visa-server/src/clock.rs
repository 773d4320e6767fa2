//! The wall clock every decision reads (days for daily caps, expiries, Idempotency-Key
//! retention), behind one type so that tests and the money-path simulation can move time:
//! forward past a retention or a midnight, or backwards as an NTP step would.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

/// The system clock plus an offset that only a manual clock changes. Cloning shares it.
#[derive(Clone, Default)]
pub struct Clock {
    /// Microseconds added to the system time; `None` for the plain system clock.
    offset: Option<Arc<AtomicI64>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.offset.is_some() { "Clock(manual)" } else { "Clock(system)" })
    }
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that runs with the system's but can be moved with [`Clock::advance`].
    pub fn manual() -> Self {
        Self { offset: Some(Arc::default()) }
    }

    pub fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        match &self.offset {
            Some(offset) => now + time::Duration::microseconds(offset.load(Ordering::SeqCst)),
            None => now,
        }
    }

    /// Moves a manual clock by `by` (negative: backwards). A system clock ignores it.
    pub fn advance(&self, by: time::Duration) {
        if let Some(offset) = &self.offset {
            let micros = i64::try_from(by.whole_microseconds()).unwrap_or(i64::MAX);
            offset.fetch_add(micros, Ordering::SeqCst);
        }
    }
}

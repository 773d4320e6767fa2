//! The wall clock every decision reads (days for daily caps, expiries, Idempotency-Key
//! retention), behind one type so that tests and the money-path simulation can move time:
//! forward past a retention or a midnight, or backwards as an NTP step would.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

/// Where the time comes from. Cloning a clock shares it.
#[derive(Clone, Default)]
enum Source {
    #[default]
    System,
    /// The system time plus an offset in microseconds.
    Offset(Arc<AtomicI64>),
    /// A fixed instant (microseconds since the Unix epoch) that moves only when told.
    Frozen(Arc<AtomicI64>),
}

#[derive(Clone, Default)]
pub struct Clock(Source);

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Source::System => "Clock(system)",
            Source::Offset(_) => "Clock(offset)",
            Source::Frozen(_) => "Clock(frozen)",
        })
    }
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that runs with the system's but can be moved with [`Clock::advance`].
    pub fn manual() -> Self {
        Self(Source::Offset(Arc::default()))
    }

    /// A clock stopped at `at` that moves only with [`Clock::advance`] (for replayable runs).
    pub fn frozen(at: OffsetDateTime) -> Self {
        let micros = i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX);
        Self(Source::Frozen(Arc::new(AtomicI64::new(micros))))
    }

    pub fn now(&self) -> OffsetDateTime {
        match &self.0 {
            Source::System => OffsetDateTime::now_utc(),
            Source::Offset(offset) => {
                OffsetDateTime::now_utc() + time::Duration::microseconds(offset.load(Ordering::SeqCst))
            }
            Source::Frozen(at) => {
                let nanos = i128::from(at.load(Ordering::SeqCst)) * 1000;
                OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
            }
        }
    }

    /// Moves a manual or frozen clock by `by` (negative: backwards). A system clock ignores it.
    pub fn advance(&self, by: time::Duration) {
        let micros = i64::try_from(by.whole_microseconds()).unwrap_or(i64::MAX);
        match &self.0 {
            Source::System => {}
            Source::Offset(value) | Source::Frozen(value) => {
                value.fetch_add(micros, Ordering::SeqCst);
            }
        }
    }
}

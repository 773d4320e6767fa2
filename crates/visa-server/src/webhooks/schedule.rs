//! When a failed delivery is tried again: at once, then after 5 s, 5 min, 30 min, 2 h, 5 h and
//! six times 10 h (about 2.8 days in all), each gap stretched by up to a tenth at random so
//! that many endpoints failing together do not retry together. An answer's `Retry-After`
//! (429, 503) moves the next attempt to the later of the two, bounded by the longest gap.

use std::time::Duration;
use visa_store::{AttemptNext, Timestamp};

const HOUR: u64 = 3_600;
/// The gaps after the 1st, 2nd, … failed attempt; after the last, the delivery has failed.
pub const GAPS: [Duration; 11] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * HOUR),
    Duration::from_secs(5 * HOUR),
    Duration::from_secs(10 * HOUR),
    Duration::from_secs(10 * HOUR),
    Duration::from_secs(10 * HOUR),
    Duration::from_secs(10 * HOUR),
    Duration::from_secs(10 * HOUR),
    Duration::from_secs(10 * HOUR),
];
const LONGEST: Duration = Duration::from_secs(10 * HOUR);

/// What follows the `attempt`-th attempt (1 for the first) that failed at `now`; `jitter` in
/// [0, 1) stretches the gap by up to a tenth; `retry_after` is the endpoint's ask.
pub fn after_failure(attempt: u32, now: Timestamp, jitter: f64, retry_after: Option<Duration>) -> AttemptNext {
    let Some(gap) = GAPS.get(attempt.saturating_sub(1) as usize) else { return AttemptNext::GiveUp };
    let stretched = gap.mul_f64(1.0 + jitter.clamp(0.0, 1.0) / 10.0);
    let wait = retry_after.map_or(stretched, |asked| stretched.max(asked.min(LONGEST)));
    AttemptNext::RetryAt(now + wait)
}

/// An endpoint's `Retry-After` (RFC 9110 §10.2.3): seconds, or an HTTP date, as how long to
/// wait from `now` (a date already past asks for nothing). Anything else is ignored.
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    match value.parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds)),
        Err(_) => httpdate::parse_http_date(value).ok().map(|at| at.duration_since(now).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(next: AttemptNext, now: Timestamp) -> Duration {
        match next {
            AttemptNext::RetryAt(at) => (at - now).try_into().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_schedule_spans_about_three_days_then_gives_up() {
        let now = Timestamp::UNIX_EPOCH;
        let total: Duration = (1..=GAPS.len() as u32).map(|n| wait(after_failure(n, now, 0.0, None), now)).sum();
        assert!(total > Duration::from_secs(60 * HOUR) && total < Duration::from_secs(72 * HOUR), "{total:?}");
        assert_eq!(after_failure(GAPS.len() as u32 + 1, now, 0.0, None), AttemptNext::GiveUp);
        assert_eq!(wait(after_failure(1, now, 0.0, None), now), Duration::from_secs(5));
        assert_eq!(wait(after_failure(1, now, 0.999, None), now), Duration::from_secs_f64(5.0 * 1.0999));
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO), "already past");
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_longest_gap() {
        let now = Timestamp::UNIX_EPOCH;
        assert_eq!(wait(after_failure(1, now, 0.0, Some(Duration::from_secs(60))), now), Duration::from_secs(60));
        assert_eq!(wait(after_failure(3, now, 0.0, Some(Duration::from_secs(60))), now), Duration::from_secs(1_800));
        assert_eq!(wait(after_failure(1, now, 0.0, Some(Duration::from_secs(99 * HOUR))), now), LONGEST);
    }
}

//! Token buckets in memory, per node, for the sign-in throttles (per client IP and per login,
//! `auth::throttle`). A key's request rate is not here: every node shares it through the
//! store (`visa_store::rules::RateWindow`, moved in the hold's transaction).
//! Full buckets are dropped when the map grows, so a flood of new keys (logins, IPs) cannot
//! grow it without bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

/// Past this many buckets, the ones that have refilled completely are dropped.
const PRUNE_AT: usize = 16_384;

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// A rate and a burst: `per_second` tokens refill each second, up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    /// `n` a minute, with a burst of `burst`.
    pub fn per_minute(n: u32, burst: u32) -> Self {
        Self { per_second: f64::from(n.max(1)) / 60.0, burst: f64::from(burst.max(1)) }
    }
}

pub struct RateLimiter<K> {
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K> Default for RateLimiter<K> {
    fn default() -> Self {
        Self { buckets: Mutex::default() }
    }
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// Takes one token for `key`; when none is left, the seconds until one will be.
    pub fn take(&self, key: K, rate: Rate, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= PRUNE_AT {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.refilled_at).as_secs_f64() * rate.per_second < rate.burst
            });
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: rate.burst, refilled_at: now });
        let elapsed = now.saturating_duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate.per_second).min(rate.burst);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / rate.per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let limiter: RateLimiter<i64> = RateLimiter::default();
        let start = Instant::now();
        let rate = Rate::per_minute(180, 3);
        for _ in 0..3 {
            assert!(limiter.take(1, rate, start).is_ok());
        }
        assert_eq!(limiter.take(1, rate, start), Err(1));
        assert!(limiter.take(2, rate, start).is_ok(), "keys have their own buckets");
        assert!(limiter.take(1, rate, start + Duration::from_millis(334)).is_ok());
        assert!(limiter.take(1, rate, start + Duration::from_millis(334)).is_err());
    }

    #[test]
    fn a_slow_rate_tells_how_long_to_wait() {
        let limiter: RateLimiter<String> = RateLimiter::default();
        let (start, rate) = (Instant::now(), Rate::per_minute(6, 2));
        assert!(limiter.take("dana".into(), rate, start).is_ok());
        assert!(limiter.take("dana".into(), rate, start).is_ok());
        assert_eq!(limiter.take("dana".into(), rate, start), Err(10), "one token every 10 s");
    }
}

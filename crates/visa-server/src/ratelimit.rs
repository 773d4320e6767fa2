//! Per-key request rate limits: a token bucket per key, refilled at the key's
//! `rate_limit_per_second` with a burst of the same size. In memory, per node.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<i64, Bucket>>,
}

impl RateLimiter {
    /// Takes one token for `key_id`; when none is left, the seconds until one will be.
    pub fn take(&self, key_id: i64, per_second: u32, now: Instant) -> Result<(), u64> {
        let rate = f64::from(per_second.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(key_id).or_insert(Bucket { tokens: rate, refilled_at: now });
        let elapsed = now.saturating_duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(1, 3, start).is_ok());
        }
        assert_eq!(limiter.take(1, 3, start), Err(1));
        assert!(limiter.take(2, 3, start).is_ok(), "keys have their own buckets");
        assert!(limiter.take(1, 3, start + Duration::from_millis(334)).is_ok());
        assert!(limiter.take(1, 3, start + Duration::from_millis(334)).is_err());
    }
}

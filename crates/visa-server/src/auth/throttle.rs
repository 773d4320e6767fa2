//! Guessing passwords is throttled: every sign-in attempt (and every invitation acceptance)
//! takes a token from its client IP's bucket and from its login's bucket before any password is
//! verified, so a flood is refused with 429 RATE_LIMITED and `Retry-After` without spending an
//! argon2 verification on it. The answer is the same for a login that exists and one that does
//! not. Per node, in memory, like the key rate limit.

use crate::error::ApiError;
use crate::ratelimit::{Rate, RateLimiter};
use std::net::IpAddr;
use std::time::Instant;
use visa_core::ErrorCode;

/// The most of a login kept as a bucket's key (longer ones are refused by login parsing anyway).
const MAX_LOGIN_KEY: usize = 64;

/// How fast sign-ins may come, per client IP and per login (configurable so tests and large
/// deployments behind one NAT can raise them).
#[derive(Debug, Clone, Copy)]
pub struct SignInLimits {
    pub per_ip: Rate,
    pub per_login: Rate,
}

impl SignInLimits {
    /// `per_ip` and `per_login` sign-ins a minute, bursting to two thirds and half of them.
    pub fn per_minute(per_ip: u32, per_login: u32) -> Self {
        Self {
            per_ip: Rate::per_minute(per_ip, (per_ip.saturating_mul(2) / 3).max(1)),
            per_login: Rate::per_minute(per_login, (per_login / 2).max(1)),
        }
    }
}

impl Default for SignInLimits {
    fn default() -> Self {
        Self::per_minute(30, 10)
    }
}

#[derive(Default)]
pub struct SignInThrottle {
    limits: SignInLimits,
    by_ip: RateLimiter<IpAddr>,
    by_login: RateLimiter<String>,
}

impl SignInThrottle {
    pub fn new(limits: SignInLimits) -> Self {
        Self { limits, ..Default::default() }
    }

    /// One attempt from `ip` at `login` (`None` for an invitation, which names no login).
    pub fn attempt(&self, ip: IpAddr, login: Option<&str>) -> Result<(), ApiError> {
        let now = Instant::now();
        let refused = |seconds: u64| {
            ApiError::new(ErrorCode::RateLimited, format!("too many sign-in attempts; retry in {seconds} s"))
                .with_retry_after(seconds)
        };
        self.by_ip.take(ip, self.limits.per_ip, now).map_err(refused)?;
        if let Some(login) = login {
            let key: String = login.trim().to_lowercase().chars().take(MAX_LOGIN_KEY).collect();
            self.by_login.take(key, self.limits.per_login, now).map_err(refused)?;
        }
        Ok(())
    }
}

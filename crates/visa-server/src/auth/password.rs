//! Account passwords: argon2id PHC strings, hashed and verified on the blocking pool so a
//! sign-in never stalls the async workers, at most one per core at a time (each takes ~19 MiB
//! and a core for tens of milliseconds): a flood of sign-ins waits for a permit, briefly, then
//! is refused as busy, and can neither exhaust memory nor starve the store's readers, which
//! share the blocking pool.

use crate::error::ApiError;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use visa_core::ErrorCode;

pub const MIN_PASSWORD_CHARS: usize = 8;
/// At most 1 KiB of UTF-8, whatever the characters.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// A PHC string of a fixed password, verified when the login does not exist, so that a
/// missing account and a wrong password take the same time.
static DECOY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| hash_blocking("decoy-password"));

fn hash_blocking(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any password")
        .to_string()
}

pub fn validate(password: &str) -> Result<(), ApiError> {
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&password.chars().count()) {
        return Err(ApiError::invalid(format!(
            "password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// Concurrent hashes and verifications: one per core.
static PERMITS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
});
/// How long a sign-in waits for a permit before it is answered busy.
const PERMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

async fn permit() -> Result<tokio::sync::SemaphorePermit<'static>, ApiError> {
    let busy = || {
        ApiError::new(ErrorCode::ServiceUnavailable, "too many passwords are being checked; retry shortly")
            .with_retry_after(1)
    };
    tokio::time::timeout(PERMIT_WAIT, PERMITS.acquire()).await.map_err(|_| busy())?.map_err(|_| busy())
}

pub async fn hash(password: String) -> Result<String, ApiError> {
    let _permit = permit().await?;
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|_| ApiError(visa_core::Rejection::internal()))
}

/// Verifies `password` against `stored`, or against a decoy when there is no stored hash.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    let _permit = permit().await?;
    let verified = tokio::task::spawn_blocking(move || {
        let (phc, real) = match &stored {
            Some(phc) => (phc.as_str(), true),
            None => (DECOY.as_str(), false),
        };
        let ok = PasswordHash::new(phc)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok());
        ok && real
    })
    .await
    .unwrap_or(false);
    Ok(verified)
}

//! Account passwords: argon2id PHC strings, hashed and verified on a pool of their own, one
//! thread per core (each check takes ~19 MiB and a core for tens of milliseconds), so a
//! sign-in never stalls the async workers and never occupies the blocking pool the store's
//! readers use. A flood of sign-ins waits for a turn, briefly, then is refused as busy.
//!
//! Memory stays flat: each checker thread allocates argon2's working memory once and reuses it
//! for every check. (With argon2 allocating 19 MiB per check, the allocator kept freed blocks
//! in one arena after another: 1.2 GB after a 10-second flood on the shared blocking pool,
//! still ~230 MB on two dedicated threads; measured by bench/signin-flood.sh.)

use crate::error::ApiError;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use visa_core::ErrorCode;

/// A checker thread's argon2 working memory, sized for the parameters new hashes use.
type Memory = Vec<Block>;

/// Hashes `password` with the default parameters (argon2id, 19 MiB, 2 passes) and a new salt.
fn hash_with(memory: &mut Memory, password: &str) -> Result<String, argon2::password_hash::Error> {
    let params = Params::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let mut out = vec![0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon2.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, blocks(memory, &params))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` is the one `phc` was made from (compared in constant time).
fn verify_with(memory: &mut Memory, password: &str, phc: &str) -> Result<bool, argon2::password_hash::Error> {
    let parsed = PasswordHash::new(phc)?;
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = parsed.version.map(Version::try_from).transpose()?.unwrap_or_default();
    let params = Params::try_from(&parsed)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return Ok(false) };
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    argon2.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, blocks(memory, &params))?;
    Ok(Output::new(&out)? == expected)
}

/// The first `params.block_count()` blocks of the thread's memory, grown if a stored hash
/// asks for more than the defaults (kept afterwards: such hashes keep coming).
fn blocks<'m>(memory: &'m mut Memory, params: &Params) -> &'m mut [Block] {
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    &mut memory[..params.block_count()]
}

/// A PHC string of a fixed password, verified when the login does not exist, so that a
/// missing account and a wrong password take the same time.
static DECOY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    hash_with(&mut Vec::new(), "decoy-password").expect("argon2 with default parameters hashes any password")
});

/// The one password rule (`visa_core::password`), as a 400.
pub fn validate(password: &str) -> Result<(), ApiError> {
    visa_core::password::check(password).map_err(ApiError::invalid)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

/// Concurrent hashes and verifications: one per checker thread.
static PERMITS: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(cores()));

type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// The checker threads, fed through one queue (never longer than the permits).
static CHECKERS: std::sync::LazyLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> = std::sync::LazyLock::new(|| {
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
    for n in 0..cores() {
        let queue = queue.clone();
        let spawned = std::thread::Builder::new().name(format!("visa-password-{n}")).spawn(move || {
            let mut memory = vec![Block::default(); Params::default().block_count()];
            loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok(job) = next else { return };
                job(&mut memory);
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a password checker thread");
        }
    }
    std::sync::Mutex::new(jobs)
});

/// How long a sign-in waits for a turn before it is answered busy.
const PERMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `work` on a checker thread, once this caller has a turn.
async fn check<T: Send + 'static>(work: impl FnOnce(&mut Memory) -> T + Send + 'static) -> Result<T, ApiError> {
    let busy = || {
        ApiError::new(ErrorCode::ServiceUnavailable, "too many passwords are being checked; retry shortly")
            .with_retry_after(1)
    };
    let _permit =
        tokio::time::timeout(PERMIT_WAIT, PERMITS.acquire()).await.map_err(|_| busy())?.map_err(|_| busy())?;
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move |memory| {
        let _ = done.send(work(memory));
    });
    let sent = CHECKERS.lock().unwrap_or_else(|e| e.into_inner()).send(job);
    sent.map_err(|_| ApiError(visa_core::Rejection::internal()))?;
    result.await.map_err(|_| ApiError(visa_core::Rejection::internal()))
}

pub async fn hash(password: String) -> Result<String, ApiError> {
    check(move |memory| hash_with(memory, &password)).await?.map_err(|e| {
        tracing::error!(error = %e, "argon2 could not hash a password");
        ApiError(visa_core::Rejection::internal())
    })
}

/// Verifies `password` against `stored`, or against a decoy when there is no stored hash.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    check(move |memory| {
        let (phc, real) = match &stored {
            Some(phc) => (phc.as_str(), true),
            None => (DECOY.as_str(), false),
        };
        verify_with(memory, &password, phc).unwrap_or(false) && real
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    /// Our hashes are standard PHC strings that the argon2 crate's own verifier accepts, and
    /// ours accepts the crate's (the database of an earlier release keeps signing in).
    #[test]
    fn hashes_interoperate_with_the_standard_verifier() {
        let mut memory = Vec::new();
        let ours = hash_with(&mut memory, "correct horse").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        assert!(verify_with(&mut memory, "correct horse", &ours).unwrap());
        assert!(!verify_with(&mut memory, "battery staple", &ours).unwrap());

        let salt = SaltString::generate(&mut OsRng);
        let theirs =
            argon2::PasswordHasher::hash_password(&Argon2::default(), b"old password", &salt).unwrap().to_string();
        assert!(verify_with(&mut memory, "old password", &theirs).unwrap());
        assert!(!verify_with(&mut memory, "old passwore", &theirs).unwrap());
        let stronger = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(32 * 1024, 2, 1, None).unwrap());
        let stronger = argon2::PasswordHasher::hash_password(&stronger, b"pw", &salt).unwrap().to_string();
        assert!(verify_with(&mut memory, "pw", &stronger).unwrap(), "more memory than the defaults: grown");
        assert!(verify_with(&mut memory, "x", "not a phc string").is_err());
    }
}

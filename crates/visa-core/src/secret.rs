//! How secrets are kept: only a SHA-256 hash (or an HMAC-SHA256 with a server pepper) of a
//! raw key or token is ever stored, and hashes are compared in constant time.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The 32-byte digest of a secret; safe to store and log-free by construction (no Display).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

impl SecretHash {
    /// Constant-time equality, for comparing a stored hash with a presented one.
    pub fn matches(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// Hashes secrets, with an optional pepper held only by the server process.
#[derive(Clone, Default)]
pub struct SecretHasher {
    pepper: Option<Vec<u8>>,
}

impl std::fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretHasher(peppered: {})", self.pepper.is_some())
    }
}

impl SecretHasher {
    pub fn new(pepper: Option<Vec<u8>>) -> Self {
        Self { pepper: pepper.filter(|p| !p.is_empty()) }
    }

    pub fn hash(&self, secret: &str) -> SecretHash {
        let digest: [u8; 32] = match &self.pepper {
            Some(pepper) => hmac_sha256(pepper, &[secret.as_bytes()]),
            None => Sha256::digest(secret.as_bytes()).into(),
        };
        SecretHash(digest)
    }
}

/// HMAC-SHA256 under `key` of `parts`, one after the other.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pepper_changes_the_hash() {
        let plain = SecretHasher::new(None).hash("k");
        let peppered = SecretHasher::new(Some(b"pepper".to_vec())).hash("k");
        assert!(!plain.matches(&peppered));
        assert!(plain.matches(&SecretHasher::default().hash("k")));
        assert_eq!(format!("{plain:?}"), "SecretHash(..)");
    }
}

//! The key format: `<brand>_<mode>_<body><check>`.
//!
//! * `mode` is `live` / `test` for tool keys and `admin_live` / `admin_test` for admin keys;
//!   `live` belongs to the production environment, `test` to preview.
//! * `body` is 32 bytes from the OS CSPRNG written in base62 (43 characters).
//! * `check` is the CRC32 of everything before it, in base62 (6 characters), so scanners and
//!   the server can throw away a mistyped or made-up key without a database read.

use rand::RngCore;
use std::fmt;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_BYTES: usize = 32;
/// 62^43 > 2^256, so 43 base62 digits hold any 32-byte body.
pub const BODY_LEN: usize = 43;
/// 62^6 > 2^32, so 6 base62 digits hold any CRC32.
pub const CHECK_LEN: usize = 6;
/// How many body characters `key_prefix` shows.
const PREFIX_BODY_CHARS: usize = 6;
pub const DEFAULT_BRAND: &str = "VisaKey";

/// Where a key may be used. Production keys spend real money, preview keys run sandboxed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Production,
    Preview,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Preview => "preview",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "production" => Some(Self::Production),
            "preview" => Some(Self::Preview),
            _ => None,
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a key is for: executing tools, or administering the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Tool,
    Admin,
}

/// The `<mode>` part of a key: its kind and its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyMode {
    pub kind: KeyKind,
    pub environment: Environment,
}

impl KeyMode {
    pub fn tool(environment: Environment) -> Self {
        Self { kind: KeyKind::Tool, environment }
    }

    pub fn as_str(self) -> &'static str {
        match (self.kind, self.environment) {
            (KeyKind::Tool, Environment::Production) => "live",
            (KeyKind::Tool, Environment::Preview) => "test",
            (KeyKind::Admin, Environment::Production) => "admin_live",
            (KeyKind::Admin, Environment::Preview) => "admin_test",
        }
    }

    /// Longest first, so that `admin_live_` is not read as an unknown `admin` mode.
    const ALL: [KeyMode; 4] = [
        KeyMode { kind: KeyKind::Admin, environment: Environment::Production },
        KeyMode { kind: KeyKind::Admin, environment: Environment::Preview },
        KeyMode { kind: KeyKind::Tool, environment: Environment::Production },
        KeyMode { kind: KeyKind::Tool, environment: Environment::Preview },
    ];
}

/// A well-formed raw key (prefix, mode and checksum verified). It may still be unknown to
/// the store. Its `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct RawKey {
    text: String,
    mode: KeyMode,
    /// Length of `<brand>_<mode>_`.
    head_len: usize,
}

impl fmt::Debug for RawKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawKey({})", self.prefix())
    }
}

/// Why a string is not a key. Never carries the string itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("the key does not start with a known prefix")]
    UnknownPrefix,
    #[error("the key has the wrong length or characters")]
    Malformed,
    #[error("the key checksum does not match")]
    BadChecksum,
}

impl RawKey {
    /// Mints a new key from the OS CSPRNG.
    pub fn generate(brand: &str, mode: KeyMode) -> Self {
        let mut body = [0u8; BODY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut body);
        Self::from_body(brand, mode, &body)
    }

    fn from_body(brand: &str, mode: KeyMode, body: &[u8; BODY_BYTES]) -> Self {
        let mut text = format!("{brand}_{}_", mode.as_str());
        let head_len = text.len();
        text.push_str(&base62_fixed(body, BODY_LEN));
        let check = crc32fast::hash(text.as_bytes());
        text.push_str(&base62_fixed(&check.to_be_bytes(), CHECK_LEN));
        Self { text, mode, head_len }
    }

    /// Checks prefix, length, alphabet and checksum. No I/O.
    pub fn parse(brand: &str, text: &str) -> Result<Self, KeyFormatError> {
        let rest = text.strip_prefix(brand).and_then(|r| r.strip_prefix('_')).ok_or(KeyFormatError::UnknownPrefix)?;
        let mode = KeyMode::ALL
            .into_iter()
            .find(|m| rest.strip_prefix(m.as_str()).is_some_and(|r| r.starts_with('_')))
            .ok_or(KeyFormatError::UnknownPrefix)?;
        let head_len = brand.len() + 1 + mode.as_str().len() + 1;
        let tail = &text[head_len..];
        if tail.len() != BODY_LEN + CHECK_LEN || !tail.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(KeyFormatError::Malformed);
        }
        let (signed, check) = text.split_at(text.len() - CHECK_LEN);
        let expected = base62_fixed(&crc32fast::hash(signed.as_bytes()).to_be_bytes(), CHECK_LEN);
        if expected != check {
            return Err(KeyFormatError::BadChecksum);
        }
        Ok(Self { text: text.to_owned(), mode, head_len })
    }

    pub fn mode(&self) -> KeyMode {
        self.mode
    }

    /// The secret itself; hand it to a hasher or show it to its owner once.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The displayable prefix: `<brand>_<mode>_` plus the first 6 body characters and `...`.
    pub fn prefix(&self) -> String {
        format!("{}...", &self.text[..self.head_len + PREFIX_BODY_CHARS])
    }
}

/// Writes `bytes` as a big-endian number in base62, left-padded with '0' to `width`.
fn base62_fixed(bytes: &[u8], width: usize) -> String {
    let mut number: Vec<u8> = bytes.to_vec();
    let mut digits = Vec::with_capacity(width);
    while number.iter().any(|&b| b != 0) {
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            *byte = (acc / 62) as u8;
            remainder = acc % 62;
        }
        digits.push(ALPHABET[remainder as usize]);
    }
    digits.resize(width.max(digits.len()), b'0');
    digits.reverse();
    String::from_utf8(digits).expect("base62 alphabet is ASCII")
}

/// A random opaque token (sessions, the operator token): `<prefix>_<43 base62 chars>`.
pub fn random_token(prefix: &str) -> String {
    let mut body = [0u8; BODY_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut body);
    format!("{prefix}_{}", base62_fixed(&body, BODY_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_mode() -> impl Strategy<Value = KeyMode> {
        prop::sample::select(KeyMode::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn generated_keys_round_trip(body in prop::array::uniform32(any::<u8>()), mode in any_mode()) {
            let key = RawKey::from_body(DEFAULT_BRAND, mode, &body);
            let parsed = RawKey::parse(DEFAULT_BRAND, key.expose()).unwrap();
            prop_assert_eq!(parsed.mode(), mode);
            prop_assert_eq!(parsed.expose(), key.expose());
            prop_assert_eq!(key.expose().len(), DEFAULT_BRAND.len() + mode.as_str().len() + 2 + BODY_LEN + CHECK_LEN);
        }

        #[test]
        fn any_single_character_change_is_caught(body in prop::array::uniform32(any::<u8>()), mode in any_mode(), pos in 0usize..49, replacement in 0usize..62) {
            let key = RawKey::from_body(DEFAULT_BRAND, mode, &body);
            let head = key.expose().len() - BODY_LEN - CHECK_LEN;
            let mut bytes = key.expose().as_bytes().to_vec();
            let new = ALPHABET[replacement];
            prop_assume!(bytes[head + pos] != new);
            bytes[head + pos] = new;
            let tampered = String::from_utf8(bytes).unwrap();
            prop_assert!(RawKey::parse(DEFAULT_BRAND, &tampered).is_err());
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = RawKey::parse(DEFAULT_BRAND, &s);
        }
    }

    #[test]
    fn prefix_shows_mode_and_six_body_chars() {
        let key = RawKey::generate("VisaKey", KeyMode::tool(Environment::Production));
        let prefix = key.prefix();
        assert!(prefix.starts_with("VisaKey_live_"));
        assert_eq!(prefix.len(), "VisaKey_live_".len() + 6 + 3);
        assert!(prefix.ends_with("..."));
    }

    #[test]
    fn modes_are_recognised() {
        for mode in KeyMode::ALL {
            let key = RawKey::generate("Acme", mode);
            assert_eq!(RawKey::parse("Acme", key.expose()).unwrap().mode(), mode);
            assert_eq!(RawKey::parse("VisaKey", key.expose()), Err(KeyFormatError::UnknownPrefix));
        }
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(RawKey::parse("VisaKey", "VisaKey_live_abc"), Err(KeyFormatError::Malformed));
        assert_eq!(RawKey::parse("VisaKey", "VisaKey_prod_abc"), Err(KeyFormatError::UnknownPrefix));
        assert_eq!(RawKey::parse("VisaKey", ""), Err(KeyFormatError::UnknownPrefix));
        let key = RawKey::generate("VisaKey", KeyMode::tool(Environment::Preview));
        let bad = format!("{}!", &key.expose()[..key.expose().len() - 1]);
        assert_eq!(RawKey::parse("VisaKey", &bad), Err(KeyFormatError::Malformed));
    }

    #[test]
    fn base62_pads_and_encodes() {
        assert_eq!(base62_fixed(&[0, 0], 3), "000");
        assert_eq!(base62_fixed(&[0, 62], 3), "010");
        assert_eq!(base62_fixed(&[0xff; 32], BODY_LEN).len(), BODY_LEN);
        assert_eq!(base62_fixed(&u32::MAX.to_be_bytes(), CHECK_LEN).len(), CHECK_LEN);
    }
}

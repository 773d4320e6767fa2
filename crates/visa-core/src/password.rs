//! The one password rule, stated and enforced alike by the API (`POST /v1/api/members/accept`,
//! account creation, password changes), the CLI (before it sends a new password) and the
//! dashboard (the accept form's label and limits).

/// At least 8 characters (NIST SP 800-63B's minimum for a chosen password).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// At most 256 characters: 1 KiB of UTF-8 whatever the characters.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// The rule as people read it.
pub fn rule() -> String {
    format!("{MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")
}

/// Checks a new password against the rule; the error says the rule.
pub fn check(password: &str) -> Result<(), String> {
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(format!("a password must be {}", rule()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_counts_characters_not_bytes() {
        assert!(check("1234567").is_err());
        assert!(check("12345678").is_ok());
        assert!(check("ünïcödé!").is_ok(), "8 characters, more bytes");
        assert!(check(&"x".repeat(MAX_PASSWORD_CHARS)).is_ok());
        assert_eq!(check(&"x".repeat(MAX_PASSWORD_CHARS + 1)).unwrap_err(), "a password must be 8 to 256 characters");
    }
}

//! Money units. Inside the system every amount is an integer number of micros
//! (1 cent = 10,000 micros); cents appear only at the API edge and dollars only in the CLI.
//! No floating point anywhere.

use serde::{Deserialize, Serialize};
use std::fmt;

pub const MICROS_PER_CENT: i64 = 10_000;

/// An amount of money in micros (millionths of a dollar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Micros(pub i64);

impl Micros {
    pub const ZERO: Micros = Micros(0);

    /// Whole cents as micros; `None` on overflow.
    pub fn from_cents(cents: i64) -> Option<Micros> {
        cents.checked_mul(MICROS_PER_CENT).map(Micros)
    }

    /// Cents, rounded up: a charge of 1 micro shows as 1 cent, never as 0.
    pub fn cents_ceil(self) -> i64 {
        self.0.div_euclid(MICROS_PER_CENT) + i64::from(self.0.rem_euclid(MICROS_PER_CENT) != 0)
    }

    /// Cents, rounded down: what a balance can be said to hold in whole cents.
    pub fn cents_floor(self) -> i64 {
        self.0.div_euclid(MICROS_PER_CENT)
    }

    pub fn checked_add(self, other: Micros) -> Option<Micros> {
        self.0.checked_add(other.0).map(Micros)
    }

    pub fn checked_sub(self, other: Micros) -> Option<Micros> {
        self.0.checked_sub(other.0).map(Micros)
    }
}

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a dollar amount typed by a person was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DollarsError {
    #[error("'{0}' is not an amount in dollars (e.g. 5 or 0.50)")]
    NotANumber(String),
    #[error("'{0}' has more than 2 decimals; amounts are whole cents")]
    TooPrecise(String),
    #[error("'{0}' is negative")]
    Negative(String),
    #[error("'{0}' is too large")]
    TooLarge(String),
}

/// Parses a dollar amount such as `5`, `0.5` or `12.34` into cents, exactly.
pub fn parse_dollars_to_cents(text: &str) -> Result<i64, DollarsError> {
    let s = text.trim();
    if s.starts_with('-') {
        return Err(DollarsError::Negative(text.to_owned()));
    }
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits_only = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty())
        || !digits_only(whole)
        || !digits_only(frac)
        || (s.contains('.') && frac.is_empty())
    {
        return Err(DollarsError::NotANumber(text.to_owned()));
    }
    if frac.len() > 2 {
        return Err(DollarsError::TooPrecise(text.to_owned()));
    }
    let too_large = || DollarsError::TooLarge(text.to_owned());
    let whole_cents = if whole.is_empty() { 0 } else { whole.parse::<i64>().map_err(|_| too_large())? }
        .checked_mul(100)
        .ok_or_else(too_large)?;
    let frac_cents = format!("{frac:0<2}").parse::<i64>().unwrap_or(0);
    whole_cents.checked_add(frac_cents).ok_or_else(too_large)
}

/// Formats cents as dollars for people: `1234` → `$12.34`.
pub fn format_cents_as_dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}${}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dollars_parse_exactly() {
        assert_eq!(parse_dollars_to_cents("5"), Ok(500));
        assert_eq!(parse_dollars_to_cents("0.5"), Ok(50));
        assert_eq!(parse_dollars_to_cents(".25"), Ok(25));
        assert_eq!(parse_dollars_to_cents("12.34"), Ok(1234));
        assert_eq!(parse_dollars_to_cents("0"), Ok(0));
        assert!(matches!(parse_dollars_to_cents("1.234"), Err(DollarsError::TooPrecise(_))));
        assert!(matches!(parse_dollars_to_cents("-1"), Err(DollarsError::Negative(_))));
        for bad in ["", "abc", "1.", "1.2.3", "1e3", "+1", " . "] {
            assert!(matches!(parse_dollars_to_cents(bad), Err(DollarsError::NotANumber(_))), "{bad}");
        }
        assert!(matches!(parse_dollars_to_cents("99999999999999999999"), Err(DollarsError::TooLarge(_))));
    }

    #[test]
    fn cents_round_up_for_charges() {
        assert_eq!(Micros(0).cents_ceil(), 0);
        assert_eq!(Micros(1).cents_ceil(), 1);
        assert_eq!(Micros(10_000).cents_ceil(), 1);
        assert_eq!(Micros(10_001).cents_ceil(), 2);
        assert_eq!(Micros(19_999).cents_floor(), 1);
    }

    proptest! {
        #[test]
        fn dollars_round_trip(cents in 0i64..1_000_000_000_000) {
            let text = format_cents_as_dollars(cents);
            prop_assert_eq!(parse_dollars_to_cents(text.trim_start_matches('$')), Ok(cents));
        }

        #[test]
        fn ceil_is_smallest_cover(micros in 0i64..i64::MAX / 2) {
            let cents = Micros(micros).cents_ceil();
            prop_assert!(cents * MICROS_PER_CENT >= micros);
            prop_assert!((cents - 1) * MICROS_PER_CENT < micros);
        }
    }
}

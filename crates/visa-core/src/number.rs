//! Whole numbers sent as text (query strings, path segments), read one way everywhere: the
//! decimal digits of a number within a range, or nothing, so each caller only words its
//! own error.

use std::ops::RangeInclusive;
use std::str::FromStr;

/// `text` as a whole number within `range`; `None` for anything else (a sign where none is
/// allowed, a fraction, an overflow, a number out of range).
pub fn within<T: FromStr + PartialOrd>(text: &str, range: RangeInclusive<T>) -> Option<T> {
    text.parse::<T>().ok().filter(|n| range.contains(n))
}

/// `text` as a positive id (1 to `i64::MAX`), the shape of every id in the API.
pub fn positive_id(text: &str) -> Option<i64> {
    within(text, 1..=i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_numbers_within_the_range_are_read() {
        assert_eq!(within("7", 1..=90i64), Some(7));
        assert_eq!(within("90", 1..=90i64), Some(90));
        for text in ["0", "91", "-1", "1.5", "", " 7", "seven", "99999999999999999999"] {
            assert_eq!(within(text, 1..=90i64), None, "{text:?}");
        }
        assert_eq!(positive_id("9223372036854775807"), Some(i64::MAX));
        assert_eq!(positive_id("0"), None);
        assert_eq!(positive_id("-3"), None);
    }
}

//! What a key is allowed to do, as validated values: its label, tool scope, caps,
//! source-CIDR allowlist and expiry. Each type validates on construction, so the
//! handlers and the store never see an invalid policy.

use crate::error::Rejection;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use time::OffsetDateTime;

pub const MIN_CAP_CENTS: i64 = 1;
pub const MAX_CAP_CENTS: i64 = 100_000_000;
pub const DEFAULT_DAILY_CAP_CENTS: i64 = 1_000;
pub const MAX_LABEL_CHARS: usize = 100;

/// A key's human-readable name: 1 to 100 characters, no control characters and no format
/// characters that spoof how it displays (bidi overrides and isolates, zero-width characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyLabel(String);

impl KeyLabel {
    pub fn parse(text: &str) -> Result<Self, Rejection> {
        let trimmed = text.trim();
        let chars = trimmed.chars().count();
        if chars == 0 || chars > MAX_LABEL_CHARS {
            return Err(Rejection::invalid(format!("label must be 1 to {MAX_LABEL_CHARS} characters")));
        }
        if trimmed.chars().any(|c| c.is_control() || is_display_spoofing(c)) {
            return Err(Rejection::invalid(
                "label must not contain control or invisible formatting characters (e.g. bidi overrides, zero-width spaces)",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The most characters an end user's id may have.
pub const MAX_END_USER_CHARS: usize = 128;

/// The end user a paid call is made for (docs/end-users.md): an id the caller chooses, 1 to 128
/// printable characters, kept exactly as sent (never trimmed or cut), with no control or
/// invisible formatting characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EndUser(String);

impl EndUser {
    pub fn parse(text: &str) -> Result<Self, Rejection> {
        let chars = text.chars().count();
        if chars == 0 || chars > MAX_END_USER_CHARS {
            return Err(Rejection::invalid(format!(
                "the end user must be 1 to {MAX_END_USER_CHARS} characters (it is {chars}); it is never cut"
            )));
        }
        if text.chars().any(|c| c.is_control() || is_display_spoofing(c)) {
            return Err(Rejection::invalid("the end user must not contain control or invisible formatting characters"));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Unicode format characters that change how text around them displays without showing
/// themselves: bidi embeddings, overrides and isolates, zero-width spaces and joiners, marks.
fn is_display_spoofing(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{061C}')
}

/// Clamps a cap to the supported range, as the API contract says ("values are clamped").
pub fn clamp_cap_cents(cents: i64) -> i64 {
    cents.clamp(MIN_CAP_CENTS, MAX_CAP_CENTS)
}

/// Which tools a key may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolScope {
    Restricted,
    AllSupportedTools,
}

impl ToolScope {
    pub fn parse(text: &str) -> Result<Self, Rejection> {
        match text {
            "restricted" => Ok(Self::Restricted),
            "all_supported_tools" => Ok(Self::AllSupportedTools),
            other => Err(Rejection::invalid(format!(
                "tool_scope must be 'restricted' or 'all_supported_tools', not '{}'",
                truncate_for_message(other)
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restricted => "restricted",
            Self::AllSupportedTools => "all_supported_tools",
        }
    }
}

/// A key's tool scope with its allowlist of canonical tool ids, consistent by construction:
/// `restricted` has at least one tool, `all_supported_tools` has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolGrant {
    scope: ToolScope,
    tools: Vec<String>,
}

impl ToolGrant {
    /// `scope` defaults to `restricted` when tools are given, `all_supported_tools` otherwise.
    /// `tools` must already be canonical ids (the catalog resolves aliases).
    pub fn new(scope: Option<ToolScope>, tools: Option<Vec<String>>) -> Result<Self, Rejection> {
        let mut tools = tools.unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        tools.retain(|t| seen.insert(t.clone()));
        let scope =
            scope.unwrap_or(if tools.is_empty() { ToolScope::AllSupportedTools } else { ToolScope::Restricted });
        match scope {
            ToolScope::Restricted if tools.is_empty() => {
                Err(Rejection::invalid("tool_scope 'restricted' needs at least one tool in allowed_tools"))
            }
            ToolScope::AllSupportedTools if !tools.is_empty() => Err(Rejection::invalid(
                "tool_scope 'all_supported_tools' cannot be combined with a non-empty allowed_tools",
            )),
            _ => Ok(Self { scope, tools }),
        }
    }

    pub fn scope(&self) -> ToolScope {
        self.scope
    }

    pub fn tools(&self) -> &[String] {
        &self.tools
    }

    pub fn permits(&self, canonical_tool: &str) -> bool {
        match self.scope {
            ToolScope::AllSupportedTools => true,
            ToolScope::Restricted => self.tools.iter().any(|t| t == canonical_tool),
        }
    }
}

/// Source networks a key may be used from. Empty means "anywhere". An IPv4 client is matched
/// both as itself and as its IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), so `::/0` (every
/// IPv6 address, the mapped ones included) admits IPv4 clients too, as `0.0.0.0/0` does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CidrAllowlist(Vec<IpNet>);

impl CidrAllowlist {
    /// Fails closed: one malformed entry rejects the whole list. A bare address is read
    /// as a single-host network (`/32` or `/128`).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, Rejection> {
        entries
            .iter()
            .map(|entry| {
                let text = entry.as_ref().trim();
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        Rejection::invalid(format!("allowed_cidrs: '{}' is not a CIDR", truncate_for_message(text)))
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        let mapped = match ip {
            IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
            IpAddr::V6(_) => None,
        };
        self.0.is_empty() || self.0.iter().any(|net| net.contains(&ip) || mapped.is_some_and(|m| net.contains(&m)))
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

/// An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`) is matched as IPv4.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Every instant from outside (a body field, a query parameter): RFC 3339 with an explicit
/// offset, in UTC, between 1970 and 9999. The range is checked here, once, so that no instant a
/// client sends can overflow a conversion later (an offset pushing 9999-12-31 into year 10000
/// used to panic; stored, it read back as 1970). A refusal names `field`.
pub fn parse_instant(field: &str, text: &str) -> Result<OffsetDateTime, Rejection> {
    let at = OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339).map_err(|_| {
        Rejection::invalid(format!("{field} must be an RFC 3339 timestamp with a timezone, e.g. 2030-01-01T00:00:00Z"))
    })?;
    at.checked_to_offset(time::UtcOffset::UTC)
        .filter(|utc| (1970..=9999).contains(&utc.year()))
        .ok_or_else(|| Rejection::invalid(format!("{field} must be between 1970 and 9999 (UTC)")))
}

/// Parses an `expires_at`: an instant (`parse_instant`) strictly in the future.
pub fn parse_expires_at(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, Rejection> {
    let at = parse_instant("expires_at", text)?;
    if at <= now {
        return Err(Rejection::invalid("expires_at must be in the future"));
    }
    Ok(at)
}

/// Keeps echoed user input short in error messages.
pub fn truncate_for_message(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    #[test]
    fn an_end_user_is_kept_as_sent_up_to_128_characters() {
        let at_most = "é".repeat(MAX_END_USER_CHARS);
        assert_eq!(EndUser::parse(&at_most).unwrap().as_str(), at_most);
        assert_eq!(EndUser::parse(" user 7 ").unwrap().as_str(), " user 7 ", "never trimmed");
        for bad in ["", "a\nb", "tab\there", "zero\u{200B}width"] {
            assert!(EndUser::parse(bad).is_err(), "{bad:?}");
        }
        let over = "x".repeat(MAX_END_USER_CHARS + 1);
        assert!(EndUser::parse(&over).unwrap_err().message.contains("129"));
    }

    #[test]
    fn labels() {
        assert_eq!(KeyLabel::parse("  my-app ").unwrap().as_str(), "my-app");
        assert!(KeyLabel::parse("").is_err());
        assert!(KeyLabel::parse("   ").is_err());
        assert!(KeyLabel::parse(&"x".repeat(101)).is_err());
        assert!(KeyLabel::parse(&"é".repeat(100)).is_ok());
        assert!(KeyLabel::parse("a\nb").is_err());
        // Format characters that spoof display: a right-to-left override, zero-width-only.
        assert!(KeyLabel::parse("prod\u{202E}gnp.exe").is_err());
        assert!(KeyLabel::parse("\u{200B}\u{200B}").is_err());
        assert!(KeyLabel::parse("clé de production").is_ok());
    }

    #[test]
    fn scope_defaults_and_conflicts() {
        let all = ToolGrant::new(None, None).unwrap();
        assert_eq!(all.scope(), ToolScope::AllSupportedTools);
        assert!(all.permits("anything"));
        let some = ToolGrant::new(None, Some(vec!["echo".into(), "echo".into()])).unwrap();
        assert_eq!(some.scope(), ToolScope::Restricted);
        assert_eq!(some.tools(), ["echo"]);
        assert!(some.permits("echo") && !some.permits("sleep"));
        assert!(ToolGrant::new(Some(ToolScope::Restricted), None).is_err());
        assert!(ToolGrant::new(Some(ToolScope::Restricted), Some(vec![])).is_err());
        assert!(ToolGrant::new(Some(ToolScope::AllSupportedTools), Some(vec!["echo".into()])).is_err());
        assert!(ToolGrant::new(Some(ToolScope::AllSupportedTools), Some(vec![])).is_ok());
        assert!(ToolScope::parse("everything").is_err());
    }

    #[test]
    fn cidrs_match_and_fail_closed() {
        let list = CidrAllowlist::parse(&["10.0.0.0/8", "2001:db8::/32", "192.168.1.7"]).unwrap();
        assert!(list.allows("10.1.2.3".parse().unwrap()));
        assert!(list.allows("::ffff:10.1.2.3".parse().unwrap()));
        assert!(list.allows("2001:db8::1".parse().unwrap()));
        assert!(list.allows("192.168.1.7".parse().unwrap()));
        assert!(!list.allows("192.168.1.8".parse().unwrap()));
        assert!(!list.allows("11.0.0.1".parse().unwrap()));
        assert!(CidrAllowlist::parse(&["10.0.0.0/8", "10.0.0.0/33"]).is_err());
        assert!(CidrAllowlist::parse(&["not-a-cidr"]).is_err());
        assert!(CidrAllowlist::parse::<&str>(&[]).unwrap().allows("1.2.3.4".parse().unwrap()));
        // `::/0` is every IPv6 address, the IPv4-mapped ones included: IPv4 clients too.
        let any_v6 = CidrAllowlist::parse(&["::/0"]).unwrap();
        assert!(any_v6.allows("203.0.113.7".parse().unwrap()) && any_v6.allows("2001:db8::7".parse().unwrap()));
        let mapped = CidrAllowlist::parse(&["::ffff:10.0.0.0/104"]).unwrap();
        assert!(mapped.allows("10.9.9.9".parse().unwrap()) && !mapped.allows("11.0.0.1".parse().unwrap()));
        let v6_only = CidrAllowlist::parse(&["2001:db8::/32"]).unwrap();
        assert!(!v6_only.allows("203.0.113.7".parse().unwrap()));
        assert_eq!(CidrAllowlist::parse(&["10.1.2.3/8"]).unwrap().to_strings(), ["10.0.0.0/8"]);
    }

    #[test]
    fn expiry_needs_offset_and_future() {
        let now = datetime!(2026-01-01 00:00 UTC);
        assert!(parse_expires_at("2030-01-01T00:00:00Z", now).is_ok());
        assert!(parse_expires_at("2030-01-01T00:00:00+02:00", now).is_ok());
        assert!(parse_expires_at("2030-01-01T00:00:00", now).is_err());
        assert!(parse_expires_at("2020-01-01T00:00:00Z", now).is_err());
        assert!(parse_expires_at("tomorrow", now).is_err());
    }

    #[test]
    fn instants_from_outside_are_range_checked() {
        let utc = parse_instant("since", "2026-01-31T10:00:00+02:00").unwrap();
        assert_eq!((utc.offset(), utc.hour()), (time::UtcOffset::UTC, 8));
        // An offset that pushes the instant into year 10000, one before 1970, not RFC 3339.
        for bad in
            ["9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59-00:01", "1969-12-31T23:59:59Z", "2026-01-31", "soon", ""]
        {
            let error = parse_instant("since", bad).unwrap_err();
            assert!(error.message.contains("since"), "{bad}: {}", error.message);
        }
        assert!(parse_instant("until", "9999-12-31T23:59:59Z").is_ok());
    }

    proptest! {
        /// No text, however formed, panics the parser; what it accepts is in range and UTC.
        #[test]
        fn parsing_an_instant_never_panics(text in "\\PC{0,40}", year in 0i32..10_000, offset in -86_399i32..86_400) {
            let _ = parse_instant("t", &text);
            let (h, m) = (offset.abs() / 3600, (offset.abs() % 3600) / 60);
            let sign = if offset < 0 { '-' } else { '+' };
            let formed = format!("{year:04}-12-31T23:59:59{sign}{h:02}:{m:02}");
            if let Ok(at) = parse_instant("t", &formed) {
                prop_assert!((1970..=9999).contains(&at.year()));
                prop_assert_eq!(at.offset(), time::UtcOffset::UTC);
            }
        }

        #[test]
        fn clamp_stays_in_range(cents in any::<i64>()) {
            let c = clamp_cap_cents(cents);
            prop_assert!((MIN_CAP_CENTS..=MAX_CAP_CENTS).contains(&c));
            if (MIN_CAP_CENTS..=MAX_CAP_CENTS).contains(&cents) { prop_assert_eq!(c, cents); }
        }

        #[test]
        fn ipv4_cidr_matches_prefix(a in any::<u32>(), b in any::<u32>(), len in 0u8..=32) {
            let net = ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(a), len).unwrap().trunc();
            let list = CidrAllowlist::parse(&[net.to_string()]).unwrap();
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let expected = (a & mask) == (b & mask);
            prop_assert_eq!(list.allows(IpAddr::V4(b.into())), expected);
        }
    }
}

/// An account's login: 1 to 39 characters of `a-z`, `0-9`, `-` and `_`, starting with a
/// letter or digit (GitHub-like, so it is safe in URLs and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login(String);

impl Login {
    pub fn parse(text: &str) -> Result<Self, Rejection> {
        let ok = (1..=39).contains(&text.len())
            && text.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(Rejection::invalid(
                "login must be 1 to 39 characters of a-z, 0-9, '-' or '_', starting with a letter or digit",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod login_tests {
    use super::Login;

    #[test]
    fn logins() {
        assert!(Login::parse("octocat").is_ok());
        assert!(Login::parse("a-b_c9").is_ok());
        for bad in ["", "-x", "Octocat", "a b", "a/b", &"x".repeat(40)] {
            assert!(Login::parse(bad).is_err(), "{bad}");
        }
    }
}

/// The share of a cap (percent) whose passing sends `key.cap.threshold` (docs/webhooks.md).
pub const DEFAULT_CAP_ALERT_PERCENT: u8 = 80;

/// A key's cap alert percentage: 1 to 100.
pub fn parse_cap_alert_percent(percent: i64) -> Result<u8, Rejection> {
    u8::try_from(percent)
        .ok()
        .filter(|p| (1..=100).contains(p))
        .ok_or_else(|| Rejection::invalid("cap_alert_percent must be 1 to 100"))
}

pub const DEFAULT_RATE_LIMIT_PER_SECOND: u32 = 100;
pub const MAX_RATE_LIMIT_PER_SECOND: u32 = 100_000;

/// A key's request rate (and burst): 1 to 100000 per second. Unlike caps, an out-of-range
/// rate is refused, since clamping 0 to 1 would silently throttle a key.
pub fn parse_rate_limit(per_second: i64) -> Result<u32, Rejection> {
    u32::try_from(per_second)
        .ok()
        .filter(|r| (1..=MAX_RATE_LIMIT_PER_SECOND).contains(r))
        .ok_or_else(|| Rejection::invalid(format!("rate_limit_per_second must be 1 to {MAX_RATE_LIMIT_PER_SECOND}")))
}

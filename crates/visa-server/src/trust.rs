//! Who is really calling, and over what. Every request passes through `resolve_client`:
//!
//! * the client IP is the TCP peer, or, only when the peer is a configured trusted proxy, found
//!   by walking `X-Forwarded-For` from the right (every line of the header, in order, is one
//!   list) past the trusted proxies: the first hop that is not one is the client. An entry that
//!   cannot be parsed ends the walk and the request is refused (400): an address nobody can
//!   read is never skipped, since what lies left of it was written by someone we do not trust.
//!   Entries are what proxies really write: `ip`, `ip:port`, `[ipv6]`, `[ipv6]:port`, with or
//!   without a zone id (`%eth0`, dropped). RFC 7239 `Forwarded` is ignored on purpose: proxies
//!   sanitize the header they manage, and reading a second one would let a client inject it.
//! * the request is HTTPS when the connection is TLS, or when the proxy nearest us (the last
//!   value of the last `X-Forwarded-Proto` line) says `https`, and only if that peer is trusted;
//! * a plain-HTTP request whose resolved client is outside the local networks (loopback by
//!   default) is refused with 403 HTTPS_REQUIRED, also when it came through a local proxy: keys
//!   and tokens must not cross a network in clear text. `/healthz` is exempt, for probes.
//! * HTTPS answers carry `Strict-Transport-Security`.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// How much of an unreadable `X-Forwarded-For` entry an error message quotes.
const QUOTED_ENTRY: usize = 64;

/// Which peers are trusted, and which count as local.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    pub trusted_proxies: Vec<IpNet>,
    pub local_networks: Vec<IpNet>,
    /// Whether the listener itself speaks TLS.
    pub tls: bool,
}

impl Default for TrustPolicy {
    fn default() -> Self {
        let loopback = ["127.0.0.0/8", "::1/128"].iter().map(|n| n.parse().expect("valid network")).collect();
        Self { trusted_proxies: Vec::new(), local_networks: loopback, tls: false }
    }
}

fn within(networks: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    networks.iter().any(|n| n.contains(&ip))
}

/// Who the request is from, as far as the trusted proxies tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    pub client: IpAddr,
    pub https: bool,
}

/// An `X-Forwarded-For` hop that is not an address: the walk stops there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableHop(pub String);

/// One `X-Forwarded-For` entry as proxies write it: `ip`, `ip:port`, `[ipv6]`, `[ipv6]:port`,
/// an IPv6 address with a zone id. `None` for anything else (`unknown`, an obfuscated name,
/// garbage, an empty entry).
pub fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let host = if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            None if after.is_empty() => host,
            Some(port) if port.parse::<u16>().is_ok() => host,
            _ => return None,
        }
    } else if entry.matches(':').count() == 1 {
        // IPv4 with a port (an IPv6 address without brackets has two colons or more).
        let (host, port) = entry.split_once(':')?;
        port.parse::<u16>().ok()?;
        host
    } else {
        entry
    };
    let address = match host.split_once('%') {
        Some((address, zone)) if !zone.is_empty() && address.contains(':') => address,
        Some(_) => return None,
        None => host,
    };
    address.parse().ok()
}

/// Every value of a header, in order across its lines, as one comma-separated list.
fn list<'a>(headers: &'a HeaderMap, name: &str) -> impl DoubleEndedIterator<Item = &'a str> {
    // A line that is not visible ASCII is one unreadable entry, not a line to skip.
    headers.get_all(name).iter().map(|v| v.to_str().unwrap_or("\u{fffd}")).flat_map(|line| line.split(','))
}

impl TrustPolicy {
    /// The client IP and whether the request arrived over HTTPS.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> Result<Resolved, UnreadableHop> {
        if !within(&self.trusted_proxies, peer) {
            return Ok(Resolved { client: peer, https: self.tls });
        }
        let mut client = peer;
        for entry in list(headers, "x-forwarded-for").rev() {
            let hop =
                parse_hop(entry).ok_or_else(|| UnreadableHop(entry.trim().chars().take(QUOTED_ENTRY).collect()))?;
            client = hop;
            if !within(&self.trusted_proxies, hop) {
                break;
            }
        }
        let nearest_proto = list(headers, "x-forwarded-proto").next_back();
        let https = self.tls || nearest_proto.is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        Ok(Resolved { client, https })
    }

    pub fn may_use_plain_http(&self, client: IpAddr) -> bool {
        within(&self.local_networks, client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn policy() -> TrustPolicy {
        TrustPolicy {
            trusted_proxies: vec!["10.0.0.1/32".parse().unwrap(), "10.0.0.2/32".parse().unwrap()],
            ..Default::default()
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const PROXY: &str = "10.0.0.1";

    #[test]
    fn untrusted_peers_cannot_choose_their_ip() {
        let peer = ip("203.0.113.9");
        let spoof = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")]);
        assert_eq!(policy().resolve(peer, &spoof), Ok(Resolved { client: peer, https: false }));
        let garbage = headers(&[("x-forwarded-for", "unknown")]);
        assert_eq!(policy().resolve(peer, &garbage), Ok(Resolved { client: peer, https: false }));
    }

    #[test]
    fn trusted_proxies_give_the_rightmost_untrusted_address() {
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7, 10.0.0.2"), ("x-forwarded-proto", "https")]);
        assert_eq!(policy().resolve(ip(PROXY), &chain), Ok(Resolved { client: ip("198.51.100.7"), https: true }));
        let split = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "198.51.100.8")]);
        assert_eq!(policy().resolve(ip(PROXY), &split).unwrap().client, ip("198.51.100.8"));
        assert_eq!(policy().resolve(ip(PROXY), &HeaderMap::new()), Ok(Resolved { client: ip(PROXY), https: false }));
    }

    /// The spoofs of the security review: each once passed an allowlist of 6.6.6.6/32.
    #[test]
    fn an_entry_with_a_port_or_brackets_is_the_client_and_garbage_ends_the_walk() {
        let resolve = |lines: &[&str]| {
            let pairs: Vec<(&'static str, &str)> = lines.iter().map(|l| ("x-forwarded-for", *l)).collect();
            policy().resolve(ip(PROXY), &headers(&pairs)).map(|r| r.client)
        };
        assert_eq!(resolve(&["6.6.6.6, 203.0.113.7:4444"]), Ok(ip("203.0.113.7")));
        assert_eq!(resolve(&["6.6.6.6, [2001:db8::7]:4444"]), Ok(ip("2001:db8::7")));
        assert_eq!(resolve(&["6.6.6.6, unknown"]), Err(UnreadableHop("unknown".into())));
        assert_eq!(resolve(&["6.6.6.6", "garbage"]), Err(UnreadableHop("garbage".into())));
        assert_eq!(resolve(&["6.6.6.6,"]), Err(UnreadableHop(String::new())));
        // Garbage left of the client was written by the client itself: harmless.
        assert_eq!(resolve(&["unknown, 203.0.113.7"]), Ok(ip("203.0.113.7")));
    }

    #[test]
    fn the_nearest_proxys_proto_decides() {
        let https_then_http = headers(&[("x-forwarded-proto", "https"), ("x-forwarded-proto", "http")]);
        assert!(!policy().resolve(ip(PROXY), &https_then_http).unwrap().https);
        let appended = headers(&[("x-forwarded-proto", "http, https")]);
        assert!(policy().resolve(ip(PROXY), &appended).unwrap().https);
    }

    #[test]
    fn hops_parse_in_the_forms_proxies_write() {
        for (entry, expected) in [
            ("192.0.2.1", Some("192.0.2.1")),
            (" 192.0.2.1:80 ", Some("192.0.2.1")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("[2001:db8::1]", Some("2001:db8::1")),
            ("[2001:db8::1]:443", Some("2001:db8::1")),
            ("fe80::1%eth0", Some("fe80::1")),
            ("[fe80::1%25eth0]:8080", Some("fe80::1")),
            ("192.0.2.1%eth0", None),
            ("192.0.2.1:99999", None),
            ("[2001:db8::1]x", None),
            ("[2001:db8::1", None),
            ("unknown", None),
            ("_hidden", None),
            ("", None),
        ] {
            assert_eq!(parse_hop(entry), expected.map(ip), "{entry:?}");
        }
    }

    #[test]
    fn only_local_clients_may_use_plain_http() {
        assert!(policy().may_use_plain_http(ip("127.0.0.1")));
        assert!(policy().may_use_plain_http(ip("::1")));
        assert!(!policy().may_use_plain_http(ip("192.0.2.1")));
    }

    /// A hop as a proxy might write it, with the address it stands for.
    fn written_hop() -> impl Strategy<Value = (String, IpAddr)> {
        let v4 = (any::<u32>(), proptest::option::of(any::<u16>())).prop_map(|(n, port)| {
            let address = Ipv4Addr::from(n);
            let text = port.map_or(address.to_string(), |p| format!("{address}:{p}"));
            (text, IpAddr::V4(address))
        });
        let v6 = (any::<u128>(), 0..3u8, any::<u16>()).prop_map(|(n, form, port)| {
            let address = Ipv6Addr::from(n);
            let text = match form {
                0 => address.to_string(),
                1 => format!("[{address}]"),
                _ => format!("[{address}]:{port}"),
            };
            (text, IpAddr::V6(address))
        });
        prop_oneof![v4, v6]
    }

    /// A trusted hop (10.0.0.1/2), an outside one, or something that is not an address.
    #[derive(Debug, Clone)]
    enum Hop {
        Proxy(u8),
        Outside(String, IpAddr),
        Unreadable(String),
    }

    fn hop() -> impl Strategy<Value = Hop> {
        prop_oneof![
            (1..=2u8).prop_map(Hop::Proxy),
            written_hop()
                .prop_filter("outside the trusted proxies", |(_, a)| !within(&policy().trusted_proxies, *a))
                .prop_map(|(text, address)| Hop::Outside(text, address)),
            "[a-z_ ]{0,8}|[0-9.:\\[\\]]{1,12}"
                .prop_filter("not an address", |s| parse_hop(s).is_none())
                .prop_map(Hop::Unreadable),
        ]
    }

    fn text(hop: &Hop) -> String {
        match hop {
            Hop::Proxy(n) => format!("10.0.0.{n}"),
            Hop::Outside(text, _) | Hop::Unreadable(text) => text.clone(),
        }
    }

    proptest! {
        #[test]
        fn every_written_hop_parses_to_its_address((text, address) in written_hop()) {
            prop_assert_eq!(parse_hop(&text), Some(address));
        }

        /// The model: from the right, skip trusted proxies; the first outside address is the
        /// client; an unreadable entry before one is an error, never skipped; and how the list
        /// is cut into header lines changes nothing.
        #[test]
        fn the_walk_matches_the_model(hops in proptest::collection::vec(hop(), 0..8), cuts in proptest::collection::vec(any::<bool>(), 8)) {
            let mut expected = Ok(ip(PROXY));
            for hop in hops.iter().rev() {
                match hop {
                    Hop::Proxy(n) => expected = Ok(ip(&format!("10.0.0.{n}"))),
                    Hop::Outside(_, address) => { expected = Ok(*address); break }
                    Hop::Unreadable(text) => { expected = Err(UnreadableHop(text.trim().into())); break }
                }
            }
            let mut lines: Vec<Vec<String>> = vec![Vec::new()];
            for (hop, cut) in hops.iter().zip(&cuts) {
                lines.last_mut().unwrap().push(text(hop));
                if *cut { lines.push(Vec::new()); }
            }
            let mut map = HeaderMap::new();
            for line in lines.iter().filter(|l| !l.is_empty()) {
                map.append("x-forwarded-for", line.join(",").parse().unwrap());
            }
            prop_assert_eq!(policy().resolve(ip(PROXY), &map).map(|r| r.client), expected);
        }
    }
}

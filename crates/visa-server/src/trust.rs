//! Who is really calling, and over what. Every request passes through `resolve_client`:
//!
//! * the client IP is the TCP peer, or, only when the peer is a configured trusted proxy, the
//!   rightmost address of `X-Forwarded-For` that is not itself a trusted proxy (so a client
//!   cannot choose its IP by sending the header itself);
//! * the request is HTTPS when the connection is TLS, or when a trusted proxy says so with
//!   `X-Forwarded-Proto: https`;
//! * a plain-HTTP request from a peer outside the local networks (loopback by default) that is
//!   not such a proxy is refused with 403 HTTPS_REQUIRED: keys and tokens must not cross a
//!   network in clear text. `/healthz` is exempt, for load-balancer probes.
//! * HTTPS answers carry `Strict-Transport-Security`.

use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::state::SharedState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use visa_core::ErrorCode;

const HSTS: &str = "max-age=31536000; includeSubDomains";

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

impl TrustPolicy {
    /// The client IP and whether the request arrived over HTTPS.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> (IpAddr, bool) {
        if !within(&self.trusted_proxies, peer) {
            return (peer, self.tls);
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|part| part.trim().parse().ok())
            .collect();
        let client = forwarded.iter().rev().find(|ip| !within(&self.trusted_proxies, **ip)).copied().unwrap_or(peer);
        let proto = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).and_then(|v| v.rsplit(',').next());
        let https = self.tls || proto.is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        (client, https)
    }

    fn may_use_plain_http(&self, peer: IpAddr) -> bool {
        within(&self.local_networks, peer)
    }
}

pub async fn resolve_client(State(state): State<SharedState>, mut request: Request, next: Next) -> Response {
    let Some(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) else {
        return next.run(request).await;
    };
    let (client, https) = state.trust.resolve(peer, request.headers());
    if !https && !state.trust.may_use_plain_http(peer) && request.uri().path() != "/healthz" {
        return ApiError::new(ErrorCode::HttpsRequired, "use HTTPS: keys and tokens must not travel in clear text")
            .into_response();
    }
    request.extensions_mut().insert(ClientIp(client));
    let mut response = next.run(request).await;
    if https {
        response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn untrusted_peers_cannot_choose_their_ip() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let spoof = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")]);
        assert_eq!(policy().resolve(peer, &spoof), (peer, false));
    }

    #[test]
    fn trusted_proxies_give_the_rightmost_untrusted_address() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7, 10.0.0.2"), ("x-forwarded-proto", "https")]);
        assert_eq!(policy().resolve(proxy, &chain), ("198.51.100.7".parse().unwrap(), true));
        let split = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "198.51.100.8")]);
        assert_eq!(policy().resolve(proxy, &split), ("198.51.100.8".parse().unwrap(), false));
        assert_eq!(policy().resolve(proxy, &HeaderMap::new()), (proxy, false));
    }

    #[test]
    fn only_local_peers_may_use_plain_http() {
        assert!(policy().may_use_plain_http("127.0.0.1".parse().unwrap()));
        assert!(policy().may_use_plain_http("::1".parse().unwrap()));
        assert!(!policy().may_use_plain_http("192.0.2.1".parse().unwrap()));
    }
}

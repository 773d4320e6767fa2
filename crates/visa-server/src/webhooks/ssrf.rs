//! Where a webhook may go. An endpoint's URL is `https`, or plain `http` only to addresses the
//! operator allows (`serve --webhook-allow-private CIDR`); a name is resolved, and only public
//! addresses (or allowed ones) are connected to: loopback, private, link-local (the cloud
//! metadata address among them), shared, multicast and unspecified ones are refused. The check
//! runs at creation, and again in the resolver that the delivering client connects through, so
//! a name that resolves elsewhere by the time of delivery (DNS rebinding) is refused too: the
//! client connects to the very addresses that were checked. Redirects are never followed.

use hyper_util::client::legacy::connect::dns::Name;
use ipnet::IpNet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The operator's allowance, and the checks made with it.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    allowed: Arc<Vec<IpNet>>,
}

impl Destinations {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed: Arc::new(allowed) }
    }

    /// Whether the operator allows `ip` explicitly.
    pub fn allowed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allowed.iter().any(|net| net.contains(&ip))
    }

    /// Whether a webhook may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        is_public(canonical(ip)) || self.allowed(ip)
    }

    /// Checks `url` as an endpoint's: its scheme, and where its host resolves now.
    pub async fn check_url(&self, url: &str) -> Result<url::Url, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("url is not a valid URL: {e}"))?;
        let plain = match parsed.scheme() {
            "https" => false,
            "http" => true,
            other => return Err(format!("url must be https (not {other})")),
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("url must not carry credentials".into());
        }
        let host = parsed.host_str().ok_or("url has no host")?.trim_start_matches('[').trim_end_matches(']');
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| format!("url's host {host} does not resolve: {e}"))?
                .map(|a| a.ip())
                .collect(),
        };
        if let Some(refused) = addresses.iter().find(|ip| !self.permits(**ip)) {
            return Err(format!(
                "url's host {host} is {refused}, a private, loopback or link-local address: the operator must allow it \
                 (serve --webhook-allow-private)"
            ));
        }
        if plain && !addresses.iter().all(|ip| self.allowed(*ip)) {
            return Err(
                "url must be https; plain http only reaches hosts the operator allows (serve --webhook-allow-private)"
                    .into(),
            );
        }
        Ok(parsed)
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064)
        }
    }
}

/// The resolver the delivering client connects through: it resolves a name once and hands the
/// connector only the addresses `Destinations` permits (with `plain`, only the allowed ones).
#[derive(Clone)]
pub struct CheckedResolver {
    pub destinations: Destinations,
    pub plain: bool,
}

impl tower::Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let (destinations, plain) = (self.destinations.clone(), self.plain);
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let checked: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| if plain { destinations.allowed(a.ip()) } else { destinations.permits(a.ip()) })
                .collect();
            if checked.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{} resolves only to addresses webhooks may not reach", name.as_str()),
                ));
            }
            Ok(checked.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        let none = Destinations::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!none.permits(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(none.permits(ip.parse().unwrap()), "{ip}");
        }
        let loopback = Destinations::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(loopback.permits("127.0.0.1".parse().unwrap()));
        assert!(loopback.permits("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!loopback.permits("10.0.0.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn urls_are_https_or_plain_http_to_an_allowed_host() {
        let none = Destinations::default();
        assert!(none.check_url("http://127.0.0.1:9/hook").await.unwrap_err().contains("private, loopback"));
        assert!(none.check_url("https://127.0.0.1:9/hook").await.is_err());
        assert!(none.check_url("http://93.184.216.34/hook").await.unwrap_err().contains("must be https"));
        assert!(none.check_url("https://93.184.216.34/hook").await.is_ok());
        assert!(none.check_url("ftp://93.184.216.34/hook").await.is_err());
        assert!(none.check_url("https://user:pw@93.184.216.34/hook").await.is_err());
        let loopback = Destinations::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(loopback.check_url("http://127.0.0.1:9/hook").await.is_ok());
    }
}

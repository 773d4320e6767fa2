//! The one HTTP client every provider call goes through: hyper-util's pooled HTTP/1.1 client
//! over rustls (ring, the webpki roots), with TCP_NODELAY on.
//!
//! Why not reqwest: a paid call spends a large share of its CPU on this hop, and the same
//! proxy measured with hyper-util's client used 8–10 µs less per call than with reqwest
//! (bench/README.md). Nothing here needs what reqwest adds on top, and two of its defaults
//! would be wrong for us anyway:
//! - redirects are never followed, so a provider key only ever travels to the catalog's URL
//!   (a 3xx comes back as an answer, which `provider::classify` maps);
//! - an answer is read up to `MAX_ANSWER_BYTES`, so a misbehaving provider cannot exhaust
//!   the server's memory.
//!
//! Deadlines are the caller's: `tools::run` bounds the whole call with the tool's timeout.

use super::UpstreamFailure;
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::sync::Arc;
use visa_core::ErrorCode;

/// The largest provider answer read (base64 images in JSON can be several MB).
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;
/// Idle connections kept per provider host, so bursts reuse warm connections.
const MAX_IDLE_PER_HOST: usize = 256;

/// A provider's answer: its status, its `Retry-After` in seconds, and its whole body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: Bytes,
}

/// A provider's answer whose body is still arriving (a streamed chat completion).
pub struct Opened {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: hyper::body::Incoming,
}

impl Opened {
    /// Reads the whole body (at most `MAX_ANSWER_BYTES`).
    pub async fn read(self) -> Result<Answer, UpstreamFailure> {
        let body = Limited::new(self.body, MAX_ANSWER_BYTES).collect().await.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                UpstreamFailure::retryable("the provider's answer was cut off")
            }
        })?;
        Ok(Answer { status: self.status, retry_after: self.retry_after, body: body.to_bytes() })
    }
}

/// The TLS of every outgoing connection: ring, the webpki roots, safe protocol versions.
pub fn client_tls() -> Result<rustls::ClientConfig, rustls::Error> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Cloning shares the connection pool.
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Upstream {
    pub fn new() -> Result<Self, rustls::Error> {
        let tls = client_tls()?;
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(MAX_IDLE_PER_HOST).build(connector);
        Ok(Self { client })
    }

    /// Sends one request (with `json` as its body, if given) and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        url: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        json: Option<&Value>,
    ) -> Result<Answer, UpstreamFailure> {
        self.open(method, url, headers, json).await?.read().await
    }

    /// Sends one request and returns as soon as the answer's head arrived.
    pub async fn open(
        &self,
        method: Method,
        url: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        json: Option<&Value>,
    ) -> Result<Opened, UpstreamFailure> {
        let body = json
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|_| UpstreamFailure::retryable("the input could not be encoded"))?;
        let is_json = body.is_some();
        let mut request = Request::new(Full::new(body.map(Bytes::from).unwrap_or_default()));
        *request.method_mut() = method;
        *request.uri_mut() = url.clone();
        let sent = request.headers_mut();
        if is_json {
            sent.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        for (name, value) in headers {
            sent.insert(name.clone(), value.clone());
        }
        let response = self
            .client
            .request(request)
            .await
            .map_err(|_| UpstreamFailure::retryable("the provider could not be reached"))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        Ok(Opened { status, retry_after, body: response.into_body() })
    }
}

fn too_large() -> UpstreamFailure {
    UpstreamFailure {
        code: ErrorCode::UpstreamError,
        message: format!("the provider's answer is larger than {} MiB", MAX_ANSWER_BYTES / (1024 * 1024)),
        retryable: false,
        retry_after: None,
    }
}

/// A provider URL from the catalog: `http://` or `https://` with a host, else `None`.
pub fn parse_url(text: &str) -> Option<Uri> {
    let uri: Uri = text.parse().ok()?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    (scheme_ok && uri.host().is_some_and(|h| !h.is_empty())).then_some(uri)
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn provider_urls_need_an_http_scheme_and_a_host() {
        for good in ["https://openrouter.ai/api/v1", "http://127.0.0.1:9/v1/chat/completions"] {
            assert_eq!(parse_url(good).map(|u| u.to_string()).as_deref(), Some(good));
        }
        for bad in ["openrouter.ai/api/v1", "ftp://openrouter.ai/api/v1", "https://", "", "https:///x", "http://a b/"] {
            assert!(parse_url(bad).is_none(), "{bad} must be refused");
        }
    }
}

//! One attempt of a delivery: a signed `POST` with the Standard Webhooks headers, 15 s at
//! most, redirects not followed, through the SSRF-checked resolver, and what follows from its
//! answer: delivered (2xx), the endpoint disabled (410), or the next try (`schedule`).

use super::schedule;
use super::signing::WebhookKey;
use super::ssrf::{CheckedResolver, Destinations};
use axum::http::{HeaderValue, Method, Request, Uri, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use visa_store::{AttemptLog, AttemptNext, DueDelivery, Timestamp};

/// The most an attempt may take, the answer's head and its first KB included.
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// How much of an answer the delivery log keeps.
const LOGGED_ANSWER: usize = 1024;

type Connector = HttpConnector<CheckedResolver>;

/// What delivers webhooks: the server's webhook key and two pooled clients, one for `https`
/// endpoints (public or allowed addresses) and one for plain `http` (allowed addresses only).
#[derive(Clone)]
pub struct Deliverer {
    pub key: WebhookKey,
    pub destinations: Destinations,
    https: Client<HttpsConnector<Connector>, Full<Bytes>>,
    plain: Client<Connector, Full<Bytes>>,
}

fn connector(destinations: &Destinations, plain: bool) -> Connector {
    let mut tcp = HttpConnector::new_with_resolver(CheckedResolver { destinations: destinations.clone(), plain });
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    tcp.set_connect_timeout(Some(TIMEOUT));
    tcp
}

impl Deliverer {
    pub fn new(key: WebhookKey, destinations: Destinations) -> Result<Self, rustls::Error> {
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::tools::upstream::client_tls()?)
            .https_only()
            .enable_http1()
            .wrap_connector(connector(&destinations, false));
        let https = Client::builder(TokioExecutor::new()).build(tls);
        let plain = Client::builder(TokioExecutor::new()).build(connector(&destinations, true));
        Ok(Self { key, destinations, https, plain })
    }

    /// One attempt of `delivery` at `now`: what the log keeps, and what follows.
    pub async fn attempt(&self, delivery: &DueDelivery, now: Timestamp) -> (AttemptLog, AttemptNext) {
        let started = Instant::now();
        let sent = tokio::time::timeout(TIMEOUT, self.send(delivery, now)).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        let attempt = delivery.attempts + 1;
        let jitter = rand::random::<f64>();
        let failed = |error: String| {
            let log = AttemptLog { status: None, error: Some(error), latency_ms, response: String::new() };
            (log, schedule::after_failure(attempt, now, jitter, None))
        };
        match sent {
            Err(_) => failed(format!("no answer within {} s", TIMEOUT.as_secs())),
            Ok(Err(error)) => failed(error),
            Ok(Ok(answer)) => {
                let next = match answer.status {
                    200..=299 => AttemptNext::Delivered,
                    410 => AttemptNext::Gone,
                    429 | 503 => schedule::after_failure(attempt, now, jitter, answer.retry_after),
                    _ => schedule::after_failure(attempt, now, jitter, None),
                };
                let log = AttemptLog { status: Some(answer.status), error: None, latency_ms, response: answer.head };
                (log, next)
            }
        }
    }

    async fn send(&self, delivery: &DueDelivery, now: Timestamp) -> Result<Answer, String> {
        let uri: Uri = delivery.endpoint.url.parse().map_err(|e| format!("the endpoint's url does not parse: {e}"))?;
        let plain = uri.scheme_str() == Some("http");
        // A literal address is connected to without the resolver: check it here.
        let host = uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            let permitted = if plain { self.destinations.allowed(ip) } else { self.destinations.permits(ip) };
            if !permitted {
                return Err(format!("{ip} is an address webhooks may not reach"));
            }
        }
        // Signed with the real time: receivers check it against theirs.
        let timestamp = Timestamp::now_utc().unix_timestamp();
        let signature = self.key.signature(&delivery.endpoint, now, &delivery.event_id, timestamp, &delivery.payload);
        let mut request = Request::new(Full::new(Bytes::from(delivery.payload.clone())));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        let value = |v: &str| HeaderValue::from_str(v).map_err(|_| "a header could not be written".to_owned());
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::USER_AGENT, HeaderValue::from_static("VisaKeys-Webhooks/1"));
        headers.insert("webhook-id", value(&delivery.event_id)?);
        headers.insert("webhook-timestamp", value(&timestamp.to_string())?);
        headers.insert("webhook-signature", value(&signature)?);
        let response = if plain { self.plain.request(request).await } else { self.https.request(request).await };
        let response = response.map_err(|e| format!("could not reach the endpoint: {}", root_cause(&e)))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| schedule::retry_after(v, std::time::SystemTime::now()));
        let mut body = response.into_body();
        let mut head = Vec::new();
        while head.len() < LOGGED_ANSWER {
            match body.frame().await {
                Some(Ok(frame)) => head.extend_from_slice(frame.data_ref().map_or(&[][..], |d| &d[..])),
                _ => break,
            }
        }
        head.truncate(LOGGED_ANSWER);
        Ok(Answer { status, retry_after, head: String::from_utf8_lossy(&head).into_owned() })
    }
}

struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    head: String,
}

/// The innermost error's words (hyper's outer ones say only "client error (Connect)").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = error;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}

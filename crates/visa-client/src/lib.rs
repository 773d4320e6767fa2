//! A small typed client for the Visa Keys HTTP API, used by `visa-cli`.
//!
//! Every error answer is parsed into [`ApiError`] (the server's `error_code`, message and
//! retry hints). [`Client::execute`] retries retryable failures with the same
//! `Idempotency-Key`, so a retry can never charge twice.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// A refused or failed call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The server answered with its error envelope.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// The server could not be reached or answered something that is not the API.
    #[error("{0}")]
    Transport(String),
    /// A credential would have crossed a network in clear text; nothing was sent.
    #[error("{0}")]
    PlainHttp(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub retryable: bool,
    pub retry_after: Option<u64>,
    pub body: Value,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// A successful answer: status, headers that matter, and the JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub replayed: bool,
    pub body: Value,
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    token: Option<String>,
}

fn refuse_remote_plain_http(base_url: &str) -> Result<(), ClientError> {
    let url =
        reqwest::Url::parse(base_url).map_err(|e| ClientError::Transport(format!("bad API URL {base_url:?}: {e}")))?;
    let host = url.host_str().unwrap_or_default();
    let address = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>();
    let local = host.eq_ignore_ascii_case("localhost") || address.is_ok_and(|ip| ip.is_loopback());
    if url.scheme() == "http" && !local {
        return Err(ClientError::PlainHttp(format!(
            "refusing to send a credential over plain HTTP to {}: use https:// (or set \
             VISA_ALLOW_PLAIN_HTTP=1 for a network you trust)",
            if host.is_empty() { "?" } else { host }
        )));
    }
    Ok(())
}

/// How often and how long `execute` retries a retryable failure.
const EXECUTE_ATTEMPTS: u32 = 4;
const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl Client {
    /// A client of the server at `base_url`, sending `token` as a bearer credential. Nothing
    /// goes over plain `http://` to anything but this machine (loopback or `localhost`): every
    /// call carries a credential (a token, or a password to sign in with), so the error says
    /// so before a byte leaves; see [`Client::new_plain_http`].
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self, ClientError> {
        refuse_remote_plain_http(base_url)?;
        Self::new_plain_http(base_url, token)
    }

    /// Like [`Client::new`] but sends the token over plain HTTP to any host, for a network the
    /// operator has declared safe (the server's `--local-network`).
    pub fn new_plain_http(base_url: &str, token: Option<String>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            // Named in the audit log's user agent column.
            .user_agent(concat!("visa-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(180))
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(Self { http, base_url: base_url.trim_end_matches('/').to_owned(), token })
    }

    /// Sends one request with the bearer token (if any) and a JSON body (if any).
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer, ClientError> {
        self.send_with(method, path, body, &[]).await
    }

    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Result<Answer, ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base_url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            ClientError::Transport(format!(
                "cannot reach {}: {} (is a server running there? start one with `visa-cli serve`, or set VISA_API_URL)",
                self.base_url,
                without_url(&e)
            ))
        })?;
        let status = response.status();
        let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
        let retry_after_header = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let text = response.text().await.map_err(|e| ClientError::Transport(without_url(&e)))?;
        let body: Value = serde_json::from_str(&text).map_err(|_| {
            ClientError::Transport(format!("the server answered HTTP {status} with a body that is not JSON"))
        })?;
        if status.is_success() {
            return Ok(Answer { status: status.as_u16(), replayed, body });
        }
        Err(ClientError::Api(Box::new(parse_error(status, body, retry_after_header))))
    }

    /// GETs `path` and copies the answer's body to `out` as it arrives (an export of any size);
    /// a refusal is the API's error, as from `send`.
    pub async fn download(&self, path: &str, out: &mut impl std::io::Write) -> Result<u64, ClientError> {
        let mut request = self.http.get(format!("{}{path}", self.base_url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| ClientError::Transport(format!("cannot reach {}: {}", self.base_url, without_url(&e))))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.map_err(|e| ClientError::Transport(without_url(&e)))?;
            let body = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Err(ClientError::Api(Box::new(parse_error(status, body, None))));
        }
        let mut written = 0u64;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ClientError::Transport(format!("the download broke off: {}", without_url(&e))))?
        {
            out.write_all(&chunk).map_err(|e| ClientError::Transport(format!("cannot write the download: {e}")))?;
            written += chunk.len() as u64;
        }
        Ok(written)
    }

    /// Executes a tool, retrying retryable failures with the same Idempotency-Key.
    pub async fn execute(
        &self,
        tool: &str,
        input: &Value,
        idempotency_key: Option<Uuid>,
    ) -> Result<Answer, ClientError> {
        let body = serde_json::json!({ "input": input });
        self.send_once(&format!("/v1/api/tools/{tool}/execute"), &body, idempotency_key).await
    }

    /// POSTs a request that must take effect once (an execution, an operator's credit or
    /// reconcile) under an Idempotency-Key (a fresh one unless given), reused by every retry
    /// of a retryable failure.
    pub async fn send_once(
        &self,
        path: &str,
        body: &Value,
        idempotency_key: Option<Uuid>,
    ) -> Result<Answer, ClientError> {
        let key = idempotency_key.unwrap_or_else(Uuid::new_v4).to_string();
        let mut attempt = 1;
        loop {
            let result = self.send_with(Method::POST, path, Some(body), &[("Idempotency-Key", key.clone())]).await;
            match result {
                Err(ClientError::Api(e)) if e.retryable && attempt < EXECUTE_ATTEMPTS => {
                    let wait = e.retry_after.map(Duration::from_secs).unwrap_or(Duration::from_millis(200 << attempt));
                    tokio::time::sleep(wait.min(MAX_BACKOFF)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

fn parse_error(status: StatusCode, body: Value, retry_after_header: Option<u64>) -> ApiError {
    let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
    ApiError {
        status: status.as_u16(),
        code: text("error_code").unwrap_or_else(|| format!("HTTP_{}", status.as_u16())),
        message: text("error").unwrap_or_else(|| status.to_string()),
        retryable: body.get("retryable").and_then(Value::as_bool).unwrap_or(false),
        retry_after: body.get("retry_after").and_then(Value::as_u64).or(retry_after_header),
        body,
    }
}

/// reqwest errors print the URL; keep the message short and free of query strings.
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url") {
        e.truncate(i);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_over_plain_http_only_to_this_machine() {
        let token = || Some("visa_session_secret".to_owned());
        for local in [
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://[::1]:80",
            "http://localhost:1",
            "https://api.example.com",
        ] {
            assert!(Client::new(local, token()).is_ok(), "{local}");
        }
        for remote in
            ["http://203.0.113.7:8080", "http://api.example.com", "http://[2001:db8::1]", "http://localhost.evil.com"]
        {
            let error = Client::new(remote, token()).unwrap_err();
            assert!(
                matches!(&error, ClientError::PlainHttp(m) if m.contains("VISA_ALLOW_PLAIN_HTTP")),
                "{remote}: {error}"
            );
            assert!(Client::new(remote, None).is_err(), "a sign-in carries a password: {remote}");
            assert!(Client::new_plain_http(remote, token()).is_ok(), "{remote}");
        }
    }
}

//! Request extractors whose every failure is the API's error envelope: `JsonBody` (strict
//! JSON with `deny_unknown_fields` types, naming the offending field), `OptionalJsonBody`
//! (an empty body means the defaults) and `ClientIp` (the TCP peer, or what a trusted proxy
//! says: `resolve_client`, which also marks `ViaHttps`); and the header readers
//! that refuse ambiguity (`single_header`, `idempotency_key_header`): a header that decides
//! who pays or what is charged once must be sent once, so that no proxy in front of us can
//! read a different one than we do.

use crate::error::ApiError;
use crate::state::SharedState;
use crate::trust::{Resolved, UnreadableHop};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::{HeaderValue, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use visa_core::ErrorCode;

/// The one value of header `name`, if sent; two or more lines of it are 400 INVALID_REQUEST.
pub fn single_header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(ApiError::invalid(format!("send the {name} header once")));
    }
    first.to_str().map(|v| Some(v.trim())).map_err(|_| ApiError::invalid(format!("the {name} header is not text")))
}

/// The `Idempotency-Key`, once, as a bare token or as an RFC 8941 string (`"…"`, as the IETF
/// Idempotency-Key draft writes it): both forms name the same key.
pub fn idempotency_key_header(headers: &axum::http::HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = single_header(headers, "idempotency-key")? else { return Ok(None) };
    Ok(Some(value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value)))
}

/// A JSON request body.
pub struct JsonBody<T>(pub T);

/// A body read but not yet parsed, for handlers that must authenticate before they judge
/// the body (so a bad key is a 401 even when the body is malformed too).
pub struct RawJsonBody {
    is_json: bool,
    bytes: Bytes,
}

impl RawJsonBody {
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse_json(self.is_json, &self.bytes)
    }
}

impl FromRequest<SharedState> for RawJsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, ApiError> {
        let (is_json, bytes) = read_body(req, state).await?;
        Ok(RawJsonBody { is_json, bytes })
    }
}

/// A JSON request body that may be absent; an empty body deserializes as `T::default()`.
pub struct OptionalJsonBody<T>(pub T);

/// Reads the whole body, within the size limit and within the server's body timeout counted
/// from the moment the handler asks for it (a client dribbling a body cannot hold the request,
/// or its connection, for longer).
async fn read_body(req: Request, state: &SharedState) -> Result<(bool, Bytes), ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        });
    let timeout = state.body_read_timeout;
    let bytes = tokio::time::timeout(timeout, collect_within_limit(req.into_body())).await.map_err(|_| {
        ApiError::new(
            ErrorCode::RequestTimeout,
            format!("the request body did not arrive within {} s", timeout.as_secs_f64()),
        )
    })??;
    Ok((is_json, bytes))
}

/// The body, up to `MAX_BODY_BYTES`. A larger one is read on and discarded up to
/// `DRAIN_BYTES` before the 413 is answered: closing a connection with unread data makes the
/// kernel reset it, and the client would see the reset instead of the answer.
async fn collect_within_limit(body: axum::body::Body) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let too_large = || ApiError::new(ErrorCode::PayloadTooLarge, "the request body is larger than 1 MiB");
    let mut body = body;
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ApiError::invalid("the request body could not be read"))?;
        let Some(data) = frame.data_ref() else { continue };
        seen += data.len();
        if seen > DRAIN_BYTES {
            return Err(too_large());
        }
        if seen <= crate::MAX_BODY_BYTES {
            kept.extend_from_slice(data);
        }
    }
    if seen > crate::MAX_BODY_BYTES { Err(too_large()) } else { Ok(Bytes::from(kept)) }
}

/// How much of an oversized body is read (and dropped) so that its 413 reaches the client.
const DRAIN_BYTES: usize = 64 * 1024 * 1024;

fn parse_json<T: DeserializeOwned>(is_json: bool, bytes: &[u8]) -> Result<T, ApiError> {
    if !is_json {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with 'Content-Type: application/json'",
        ));
    }
    serde_json::from_slice(bytes).map_err(body_error)
}

fn body_error(e: serde_json::Error) -> ApiError {
    if e.is_data() {
        ApiError::invalid(format!("invalid request body: {e}"))
    } else {
        ApiError::invalid("the request body is not valid JSON")
    }
}

/// A control-plane body: as `parse_json`, except that a whole-valued number written as a float
/// (`5.0`) is read as the integer it is, as JSON Schema's `integer` (and the OpenAPI document)
/// has it; `5.5` stays a float and is refused where an integer is wanted. Only a body the
/// strict reading refused for its numbers is read again, so a repeated field stays refused.
/// The execute path does not use this: a tool's input goes to the provider exactly as sent.
fn parse_control_json<T: DeserializeOwned>(is_json: bool, bytes: &[u8]) -> Result<T, ApiError> {
    if !is_json {
        return parse_json(is_json, bytes);
    }
    let strict = match serde_json::from_slice::<T>(bytes) {
        Ok(parsed) => return Ok(parsed),
        Err(e) if e.is_data() && !e.to_string().starts_with("duplicate field") => e,
        Err(e) => return Err(body_error(e)),
    };
    let mut value: Value = parse_json(is_json, bytes)?;
    if !whole_numbers(&mut value) {
        return Err(body_error(strict));
    }
    T::deserialize(value).map_err(|_| body_error(strict))
}

/// Rewrites whole-valued floats as integers; whether it changed anything.
fn whole_numbers(value: &mut Value) -> bool {
    /// Integers a float represents exactly.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        Value::Number(n) => match n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0 && f.abs() <= EXACT) {
            Some(f) => {
                *value = Value::from(f as i64);
                true
            }
            None => false,
        },
        Value::Array(items) => items.iter_mut().fold(false, |changed, v| whole_numbers(v) | changed),
        Value::Object(fields) => fields.values_mut().fold(false, |changed, v| whole_numbers(v) | changed),
        _ => false,
    }
}

impl<T: DeserializeOwned> FromRequest<SharedState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, ApiError> {
        let (is_json, bytes) = read_body(req, state).await?;
        parse_control_json(is_json, &bytes).map(JsonBody)
    }
}

impl<T: DeserializeOwned + Default> FromRequest<SharedState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, ApiError> {
        let (is_json, bytes) = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse_control_json(is_json, &bytes).map(OptionalJsonBody)
    }
}

/// The caller's IP address: the TCP peer, or the client behind a trusted proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        // Resolved by `resolve_client` (trusted proxies), else the TCP peer.
        if let Some(resolved) = parts.extensions.get::<ClientIp>() {
            return Ok(*resolved);
        }
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| ClientIp(addr.ip()))
            .ok_or_else(|| ApiError(visa_core::Rejection::internal()))
    }
}

/// Deserializes a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(de).map(Some)
}

const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Whether the request reached the server over HTTPS (directly, or from a trusted proxy that
/// says so): the dashboard's cookie is `Secure` then.
#[derive(Debug, Clone, Copy)]
pub struct ViaHttps(pub bool);

/// Who the client is and whether it came over HTTPS (`trust::TrustPolicy`: the TCP peer, or
/// what trusted proxies say), for every request: as `ClientIp` and `ViaHttps`; plain HTTP from
/// outside the local networks is refused, and HTTPS answers carry HSTS.
pub async fn resolve_client(State(state): State<SharedState>, mut request: Request, next: Next) -> Response {
    let Some(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) else {
        return next.run(request).await;
    };
    let Resolved { client, https } = match state.trust.resolve(peer, request.headers()) {
        Ok(resolved) => resolved,
        Err(UnreadableHop(entry)) => {
            let message = format!("X-Forwarded-For entry {entry:?} is not an address: the client cannot be identified");
            return ApiError::new(ErrorCode::InvalidRequest, message).into_response();
        }
    };
    if !https && !state.trust.may_use_plain_http(client) && request.uri().path() != "/healthz" {
        return ApiError::new(ErrorCode::HttpsRequired, "use HTTPS: keys and tokens must not travel in clear text")
            .into_response();
    }
    request.extensions_mut().insert(ClientIp(client));
    request.extensions_mut().insert(ViaHttps(https));
    let mut response = next.run(request).await;
    if https {
        response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    response
}

/// This server's origin as the client reached it (`https://host[:port]` or `http://…`): the
/// scheme from `ViaHttps`, the authority from `Host` (or HTTP/2's `:authority`). The OAuth
/// issuer and the MCP resource URL are named from it. An authority with characters no host
/// name has is refused (400), so nothing foreign is written into a URL we answer.
#[derive(Debug, Clone)]
pub struct PublicOrigin(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PublicOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let https = parts.extensions.get::<ViaHttps>().is_some_and(|v| v.0);
        let host = match single_header(&parts.headers, "host")? {
            Some(host) => host.to_owned(),
            None => parts.uri.authority().map(|a| a.to_string()).unwrap_or_default(),
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || ".-:[]".contains(c);
        if host.is_empty() || !host.chars().all(valid) {
            return Err(ApiError::invalid("the Host header must name this server"));
        }
        Ok(PublicOrigin(format!("{}://{}", if https { "https" } else { "http" }, host.to_ascii_lowercase())))
    }
}

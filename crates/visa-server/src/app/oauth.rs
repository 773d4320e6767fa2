//! OAuth for MCP clients that cannot hold a key (docs/mcp.md, "OAuth"), with Visa Keys as its
//! own authorization server. A client registers itself (RFC 7591; a public client: PKCE S256,
//! no secret); a member approves it on the dashboard's consent page, which mints a tool key with
//! the tools, caps and expiry the member chose (the grant); the client redeems the code for an
//! access token — a secret of that key that ends within the hour and is accepted at the MCP
//! endpoint alone (`auth::tool_key::Audience`) — and a refresh token, rotated at every use (a
//! second use of one revokes the grant). The OAuth endpoints (`crate::oauth`) and the consent
//! page (`crate::dashboard::oauth`) call these.

use crate::auth::{Origin, Session};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::wire::keys::CreateKeyRequest;
use axum::http::StatusCode;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::Duration;
use visa_core::key::random_token;
use visa_core::role::Permission;
use visa_store::{
    Actor, KeyRecord, NewKey, NewOAuthClient, OAuthApproval, OAuthClient, OAuthGrant, OAuthTokens, Refreshed,
    StoreError,
};

/// How long an access token works (a refresh brings the next one).
pub const ACCESS_TOKEN_SECONDS: i64 = 3600;
/// How long a code waits to be redeemed.
const CODE_SECONDS: i64 = 300;
/// The consent page's defaults: $10 in total, 7 days.
pub const DEFAULT_TOTAL_CAP_CENTS: i64 = 1000;
pub const DEFAULT_GRANT_DAYS: i64 = 7;
pub const MAX_GRANT_DAYS: i64 = 90;
const MAX_REDIRECT_URIS: usize = 10;
const MAX_URI_CHARS: usize = 2000;
const MAX_CLIENT_NAME_CHARS: usize = 80;
/// The optional RFC 7591 fields kept and answered back as the client sent them.
const KEPT_METADATA: [&str; 8] =
    ["client_uri", "logo_uri", "scope", "contacts", "tos_uri", "policy_uri", "software_id", "software_version"];

/// A refusal in OAuth's words (RFC 6749 §5.2, RFC 7591 §3.2.2, RFC 8707 §2): the status, the
/// error code and its description.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// Seconds to wait before trying again (a throttled registration), sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    /// A 400 with `error` and its description.
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, error, description: description.into(), retry_after: None }
    }

    fn grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }

    fn store(error: StoreError) -> Self {
        let error = ApiError::from(error).0;
        let status = StatusCode::from_u16(error.code.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        Self { status, error: "temporarily_unavailable", description: error.message, retry_after: error.retry_after }
    }
}

/// Whether `uri` may receive codes: `https`, `http` to a loopback host (a native client's local
/// listener, RFC 8252 §7.3), or a private-use scheme (`cursor://…`, §7.1); never a fragment,
/// nor a scheme that runs or reads something in the browser.
fn redirect_uri_ok(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else { return false };
    if uri.chars().count() > MAX_URI_CHARS || url.fragment().is_some() {
        return false;
    }
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" | "ftp" | "ws" | "wss" => false,
        _ => true,
    }
}

fn metadata_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new("invalid_client_metadata", description)
}

/// Dynamic client registration (RFC 7591): any client may register; what it may do is decided
/// by the member who approves it. Public clients only: whatever endpoint authentication a
/// client asks for, it is registered with `none` (RFC 7591 §3.2.1 lets the server say so).
/// Open to anyone, so each registration takes a token from its address's budget of
/// unauthenticated attempts (the sign-in throttle's, 30 a minute by default): a flood of
/// registrations is refused with 429 before it writes anything.
pub async fn register(state: &AppState, ip: std::net::IpAddr, body: Value) -> Result<Value, OAuthError> {
    state.sign_in.attempt(ip, None).map_err(|e| OAuthError {
        status: StatusCode::TOO_MANY_REQUESTS,
        error: "temporarily_unavailable",
        description: format!(
            "too many registrations and sign-ins from this address; retry in {} s",
            e.0.retry_after.unwrap_or(1)
        ),
        retry_after: e.0.retry_after,
    })?;
    let Value::Object(body) = body else { return Err(metadata_error("the body must be a JSON object")) };
    let uris: Vec<String> = match body.get("redirect_uris") {
        Some(Value::Array(uris)) if !uris.is_empty() && uris.len() <= MAX_REDIRECT_URIS => uris
            .iter()
            .map(|u| u.as_str().filter(|u| redirect_uri_ok(u)).map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                OAuthError::new(
                    "invalid_redirect_uri",
                    "each redirect URI must be https, http to a loopback host, or a private-use scheme, without a fragment",
                )
            })?,
        _ => return Err(metadata_error(format!("redirect_uris must list 1 to {MAX_REDIRECT_URIS} URIs"))),
    };
    let listed = |field: &str, allowed: &[&str]| match body.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(values)) if values.iter().all(|v| v.as_str().is_some_and(|v| allowed.contains(&v))) => Ok(()),
        Some(_) => Err(metadata_error(format!("{field} may only be {}", allowed.join(", ")))),
    };
    listed("grant_types", &["authorization_code", "refresh_token"])?;
    listed("response_types", &["code"])?;
    let name = match body.get("client_name") {
        None | Some(Value::Null) => "Unnamed MCP client".to_owned(),
        Some(Value::String(name)) if !name.trim().is_empty() && !name.chars().any(char::is_control) => {
            name.trim().chars().take(MAX_CLIENT_NAME_CHARS).collect()
        }
        Some(_) => return Err(metadata_error("client_name must be a non-empty string without control characters")),
    };
    let metadata: Map<String, Value> =
        KEPT_METADATA.iter().filter_map(|f| body.get(*f).map(|v| ((*f).to_owned(), v.clone()))).collect();
    let new = NewOAuthClient {
        client_id: random_token("visa_client"),
        name,
        redirect_uris: uris,
        metadata: Value::Object(metadata),
    };
    let client = state.store.register_oauth_client(new, state.now()).await.map_err(OAuthError::store)?;
    tracing::info!(client = %client.client_id, name = %client.name, "OAuth client registered");
    Ok(client_document(&client))
}

/// A registered client as RFC 7591 §3.2.1 answers it.
fn client_document(client: &OAuthClient) -> Value {
    let mut document = json!({
        "client_id": client.client_id,
        "client_id_issued_at": client.created_at.unix_timestamp(),
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    if let (Value::Object(document), Value::Object(kept)) = (&mut document, &client.metadata) {
        document.extend(kept.clone());
    }
    document
}

/// The query of an authorization request (and the consent form's hidden fields).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub state: Option<String>,
    pub scope: Option<String>,
    pub resource: Option<String>,
}

/// An authorization request that may be shown to a member.
#[derive(Debug, Clone)]
pub struct Authorize {
    pub client: OAuthClient,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub state: Option<String>,
    pub resource: String,
    /// The catalog's tools among those the client asked for (`scope`), canonical ids.
    pub requested_tools: Vec<String>,
}

/// Why an authorization request is refused: to the member on the page when the client or its
/// redirect URI cannot be trusted (never redirected: no open redirect), else back to the client.
#[derive(Debug)]
pub enum AuthorizeRefusal {
    Shown(String),
    Redirect(String),
}

/// `redirect_uri` carrying an error back to the client (RFC 6749 §4.1.2.1), with its `state`.
fn error_redirect(redirect_uri: &str, error: &str, description: &str, state: Option<&str>) -> String {
    redirect_to(redirect_uri, &[("error", Some(error)), ("error_description", Some(description)), ("state", state)])
}

/// `redirect_uri` with `pairs` added to its query.
fn redirect_to(redirect_uri: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let mut url = url::Url::parse(redirect_uri).expect("a registered redirect URI parses");
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
    }
    url.to_string()
}

/// Checks an authorization request for the MCP resource `resource_here` (this server's MCP URL).
pub async fn check_authorize(
    state: &AppState,
    params: &AuthorizeParams,
    resource_here: &str,
) -> Result<Authorize, AuthorizeRefusal> {
    let client_id = params.client_id.as_deref().unwrap_or_default();
    let client = state
        .store
        .oauth_client(client_id)
        .await
        .map_err(|e| AuthorizeRefusal::Shown(ApiError::from(e).0.message))?
        .ok_or_else(|| AuthorizeRefusal::Shown("This application is not registered with this server.".into()))?;
    let redirect_uri = match (&params.redirect_uri, client.redirect_uris.as_slice()) {
        (Some(uri), registered) if registered.contains(uri) => uri.clone(),
        (None, [only]) => only.clone(),
        _ => {
            return Err(AuthorizeRefusal::Shown(
                "The address this application asked to be sent back to is not one it registered.".into(),
            ));
        }
    };
    let refuse = |error: &str, description: &str| {
        AuthorizeRefusal::Redirect(error_redirect(&redirect_uri, error, description, params.state.as_deref()))
    };
    if params.response_type.as_deref() != Some("code") {
        return Err(refuse("unsupported_response_type", "only response_type=code is supported"));
    }
    let challenge = params.code_challenge.as_deref().unwrap_or_default();
    let challenge_ok = challenge.len() == 43
        && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && params.code_challenge_method.as_deref() == Some("S256");
    if !challenge_ok {
        return Err(refuse("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256"));
    }
    let resource = params.resource.clone().unwrap_or_else(|| resource_here.to_owned());
    if resource != resource_here {
        return Err(refuse("invalid_target", "resource must name this server's MCP endpoint"));
    }
    let requested_tools = params
        .scope
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|name| state.catalog.resolve(name).map(|tool| tool.id.clone()))
        .collect();
    Ok(Authorize {
        client,
        redirect_uri,
        code_challenge: challenge.to_owned(),
        state: params.state.clone(),
        resource,
        requested_tools,
    })
}

/// What the member chose on the consent page.
#[derive(Debug, Clone)]
pub struct Consent {
    pub tools: Vec<String>,
    pub daily_cap_cents: Option<i64>,
    pub total_cap_cents: i64,
    pub days: i64,
}

/// The member approves: the grant's key is minted with the chosen policy (the same rules as any
/// key's), and the client is sent back with a code. Returns where to send the browser.
pub async fn approve(state: &AppState, caller: &Session, request: &Authorize, consent: Consent) -> ApiResult<String> {
    caller.require(Permission::ManageKeys)?;
    let Actor::Member { id: member_id, .. } = &caller.actor else {
        return Err(ApiError::invalid("a member approves an application, signed in"));
    };
    if consent.tools.is_empty() {
        return Err(ApiError::invalid("choose at least one tool the application may run"));
    }
    if !(1..=MAX_GRANT_DAYS).contains(&consent.days) {
        return Err(ApiError::invalid(format!("the grant lasts 1 to {MAX_GRANT_DAYS} days")));
    }
    let now = state.now();
    let label: String =
        format!("MCP: {}", request.client.name).chars().take(visa_core::policy::MAX_LABEL_CHARS).collect();
    let mut policy = super::keys::policy_of(
        state,
        CreateKeyRequest {
            label,
            allowed_tools: Some(consent.tools),
            tool_scope: None,
            daily_cap_cents: consent.daily_cap_cents,
            total_cap_cents: Some(consent.total_cap_cents),
            ..CreateKeyRequest::default()
        },
        now,
    )?;
    policy.expires_at = Some(now + Duration::days(consent.days));
    // The key's first secret is never shown and never works: its access tokens come with the code.
    let (_, secret) = super::keys::mint_secret(state, Some(now));
    let code = random_token("visa_code");
    let approval = OAuthApproval {
        key: NewKey { account_id: caller.account.id, environment: state.environment, policy, secret },
        client: request.client.clone(),
        member_id: *member_id,
        resource: request.resource.clone(),
        code: state.hasher.hash(&code),
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        code_expires_at: now + Duration::seconds(CODE_SECONDS),
    };
    let key = state.store.approve_oauth(approval, caller.audit(state)).await?;
    tracing::info!(key_id = %key.id, client = %request.client.client_id, "OAuth grant approved");
    Ok(redirect_to(&request.redirect_uri, &[("code", Some(&code)), ("state", request.state.as_deref())]))
}

/// The member declines: the client hears `access_denied`.
pub fn deny(request: &Authorize) -> String {
    let declined = "the member declined the request";
    error_redirect(&request.redirect_uri, "access_denied", declined, request.state.as_deref())
}

/// The account's connected applications (its OAuth grants), newest first.
pub async fn connected(state: &AppState, caller: &Session) -> ApiResult<Vec<OAuthGrant>> {
    caller.require(Permission::Read)?;
    Ok(state.store.oauth_grants(caller.account.id).await?)
}

/// A token request (RFC 6749 §4.1.3 and §6), form-encoded.
#[derive(Debug, Default, Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub client_id: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub resource: Option<String>,
}

/// RFC 6749 §5.1.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    /// The tools the grant's key may run, space-separated.
    pub scope: String,
}

/// Whether `verifier` is the PKCE verifier of `challenge` (S256, RFC 7636 §4.6).
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    well_formed && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// The token endpoint: redeems a code or a refresh token of the client `client_id` for new
/// tokens, for the MCP resource `resource_here`.
pub async fn token(
    state: &AppState,
    origin: &Origin,
    request: TokenRequest,
    resource_here: &str,
) -> Result<TokenResponse, OAuthError> {
    let required = |value: &Option<String>, name: &str| {
        value
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| OAuthError::new("invalid_request", format!("{name} is required")))
    };
    let client_id = required(&request.client_id, "client_id")?;
    let client = state.store.oauth_client(&client_id).await.map_err(OAuthError::store)?.ok_or_else(|| OAuthError {
        status: StatusCode::UNAUTHORIZED,
        error: "invalid_client",
        description: "this client is not registered".into(),
        retry_after: None,
    })?;
    if request.resource.as_deref().is_some_and(|r| r != resource_here) {
        return Err(OAuthError::new("invalid_target", "resource must name this server's MCP endpoint"));
    }
    let now = state.now();
    let audit = origin.audit(Actor::OAuthClient { id: client.id, name: client.name.clone() }, now);
    let (access, secret) = super::keys::mint_secret(state, Some(now + Duration::seconds(ACCESS_TOKEN_SECONDS)));
    let refresh_token = random_token("visa_refresh");
    let tokens = OAuthTokens { access: secret, refresh: state.hasher.hash(&refresh_token) };
    let key = match request.grant_type.as_deref() {
        Some("authorization_code") => {
            let code = required(&request.code, "code")?;
            let verifier = required(&request.code_verifier, "code_verifier")?;
            let redeemed = state
                .store
                .redeem_oauth_code(state.hasher.hash(&code), now)
                .await
                .map_err(OAuthError::store)?
                .filter(|r| r.client == client.id)
                .ok_or_else(|| OAuthError::grant("the code is not one this client was given"))?;
            if !redeemed.first_use {
                // RFC 6749 §4.1.2: a code used twice may be in someone else's hands.
                state
                    .store
                    .revoke_oauth_grant(redeemed.account_id, redeemed.key_id, audit)
                    .await
                    .map_err(OAuthError::store)?;
                state.keys.invalidate_key(redeemed.key_id);
                return Err(OAuthError::grant("the code was already used: the grant it was issued for is revoked"));
            }
            if redeemed.expires_at <= now {
                return Err(OAuthError::grant("the code has expired; authorize again"));
            }
            if request.redirect_uri.as_deref().is_some_and(|uri| uri != redeemed.redirect_uri) {
                return Err(OAuthError::grant("redirect_uri is not the one the code was issued for"));
            }
            if !pkce_matches(&verifier, &redeemed.code_challenge) {
                return Err(OAuthError::grant("code_verifier does not match the code_challenge"));
            }
            if redeemed.resource != resource_here {
                return Err(OAuthError::new("invalid_target", "the code was issued for another resource"));
            }
            state.store.issue_oauth_tokens(redeemed.account_id, redeemed.key_id, tokens, audit).await.map_err(|e| {
                match e {
                    StoreError::Refused(_) => OAuthError::grant("the grant was revoked"),
                    other => OAuthError::store(other),
                }
            })?
        }
        Some("refresh_token") => {
            let presented = required(&request.refresh_token, "refresh_token")?;
            match state
                .store
                .refresh_oauth(state.hasher.hash(&presented), client.id, tokens, audit)
                .await
                .map_err(OAuthError::store)?
            {
                Refreshed::Tokens(key) => *key,
                Refreshed::Unknown => {
                    return Err(OAuthError::grant("the refresh token is not one this client was given"));
                }
                Refreshed::Ended => return Err(OAuthError::grant("the grant was revoked or has expired")),
                Refreshed::Replayed(key_id) => {
                    state.keys.invalidate_key(key_id);
                    return Err(OAuthError::grant(
                        "the refresh token was already used: the grant it belongs to is revoked",
                    ));
                }
            }
        }
        _ => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            ));
        }
    };
    // The previous access token ended: no node may keep it.
    state.keys.invalidate_key(key.id);
    tracing::info!(key_id = %key.id, client = %client.client_id, "OAuth tokens issued");
    Ok(TokenResponse {
        access_token: access.expose().to_owned(),
        token_type: "Bearer",
        expires_in: expires_in(&key, now),
        refresh_token,
        scope: key.policy.grant.tools().join(" "),
    })
}

/// Seconds until the access token ends: its hour, or the key's expiry if sooner.
fn expires_in(key: &KeyRecord, now: time::OffsetDateTime) -> i64 {
    key.policy.expires_at.map_or(ACCESS_TOKEN_SECONDS, |at| (at - now).whole_seconds().clamp(0, ACCESS_TOKEN_SECONDS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_the_rfc_7636_example_and_nothing_else() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl", challenge));
        assert!(!pkce_matches("short", challenge));
    }

    #[test]
    fn redirect_uris_that_could_leak_a_code_are_refused() {
        for ok in ["https://app.example/cb", "http://127.0.0.1:5555/callback", "http://localhost/cb", "cursor://auth"] {
            assert!(redirect_uri_ok(ok), "{ok}");
        }
        for bad in [
            "http://evil.example/cb",
            "https://app.example/cb#frag",
            "javascript:alert(1)",
            "data:text/html,x",
            "not a uri",
        ] {
            assert!(!redirect_uri_ok(bad), "{bad}");
        }
    }
}

//! The key lifecycle: create, list, get, update, revoke and rotate tool keys,
//! for a signed-in account. Another account's key id answers 404 KEY_NOT_FOUND, never 403.

use crate::auth::Session;
use crate::error::{ApiError, ApiResult, not_found_as};
use crate::extract::{JsonBody, OptionalJsonBody, double_option};
use crate::routes::{ListQuery, rfc3339};
use crate::state::SharedState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use visa_core::ErrorCode;
use visa_core::key::{KeyMode, RawKey};
use visa_core::policy::{
    CidrAllowlist, DEFAULT_DAILY_CAP_CENTS, DEFAULT_RATE_LIMIT_PER_SECOND, KeyLabel, ToolGrant, ToolScope,
    clamp_cap_cents, parse_expires_at, parse_rate_limit,
};
use visa_core::role::Permission;
use visa_store::{
    KeyPatch, KeyPolicy, KeyRecord, NewKey, NewSecret, RevokeCause, Rotation, SecretRecord, idempotency_name,
};

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, revoke))
        .routes(routes!(rotate))
        .routes(routes!(revoke_secret))
}

pub const MAX_GRACE_SECONDS: u32 = 604_800;

/// A key as the API shows it: never the raw key or its hash.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    pub id: i64,
    pub label: String,
    pub owner: String,
    /// The newest secret's prefix, e.g. `VisaKey_live_Ab12Cd...`.
    pub key_prefix: String,
    /// `production` or `preview`.
    pub environment: String,
    /// `restricted` or `all_supported_tools`.
    pub tool_scope: String,
    pub allowed_tools: Vec<String>,
    pub allowed_cidrs: Vec<String>,
    pub daily_cap_cents: i64,
    pub total_cap_cents: Option<i64>,
    pub expires_at: Option<String>,
    pub read_only: bool,
    /// Requests per second (and burst) this key may send.
    pub rate_limit_per_second: u32,
    /// `required`, or `optional`: the OpenAI-compatible surface takes this key's calls without
    /// an Idempotency-Key (an SDK's automatic retries may then be charged twice).
    pub idempotency: String,
    /// `active`, `revoked` or `expired`.
    pub status: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    pub last_used_ip: Option<String>,
    pub spent_today_cents: i64,
    pub spent_total_cents: i64,
    /// The key's secrets, newest first: two during a rotation's grace period.
    pub secrets: Vec<SecretView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretView {
    pub id: i64,
    pub key_prefix: String,
    /// `active`, `expiring` (in a rotation grace) or `revoked`.
    pub status: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    pub last_used_ip: Option<String>,
}

impl SecretView {
    fn new(secret: &SecretRecord, now: time::OffsetDateTime) -> Self {
        let status = if !secret.is_live(now) {
            "revoked"
        } else if secret.expires_at.is_some() {
            "expiring"
        } else {
            "active"
        };
        Self {
            id: secret.id,
            key_prefix: secret.key_prefix.clone(),
            status: status.into(),
            created_at: rfc3339(secret.created_at),
            expires_at: secret.expires_at.map(rfc3339),
            revoked_at: secret.revoked_at.or(secret.expires_at.filter(|at| *at <= now)).map(rfc3339),
            last_used_at: secret.last_used_at.map(rfc3339),
            last_used_ip: secret.last_used_ip.map(|ip| ip.to_string()),
        }
    }
}

impl KeyView {
    pub fn new(key: &KeyRecord, now: time::OffsetDateTime) -> Self {
        let p = &key.policy;
        let status = if key.revoked_at.is_some() {
            "revoked"
        } else if p.expires_at.is_some_and(|at| at <= now) {
            "expired"
        } else {
            "active"
        };
        let today = visa_store::rules::utc_day_number(now);
        Self {
            id: key.id,
            label: p.label.as_str().to_owned(),
            owner: key.owner.clone(),
            key_prefix: key.key_prefix().to_owned(),
            environment: key.environment.as_str().to_owned(),
            tool_scope: p.grant.scope().as_str().to_owned(),
            allowed_tools: p.grant.tools().to_vec(),
            allowed_cidrs: p.allowed_cidrs.to_strings(),
            daily_cap_cents: p.daily_cap_cents,
            total_cap_cents: p.total_cap_cents,
            expires_at: p.expires_at.map(rfc3339),
            read_only: p.read_only,
            rate_limit_per_second: p.rate_limit_per_second,
            idempotency: idempotency_name(p.idempotency_optional).into(),
            status: status.into(),
            created_at: rfc3339(key.created_at),
            revoked_at: key.revoked_at.map(rfc3339),
            last_used_at: key.last_used_at.map(rfc3339),
            last_used_ip: key.last_used_ip.map(|ip| ip.to_string()),
            spent_today_cents: key.spent_on(today).cents_ceil(),
            spent_total_cents: key.spent_total.cents_ceil(),
            secrets: key.secrets.iter().map(|s| SecretView::new(s, now)).collect(),
        }
    }
}

/// `{ success: true, ...key }`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyResponse {
    pub success: bool,
    #[serde(flatten)]
    pub key: KeyView,
}

/// Create and rotate: the key plus its raw secret, shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyWithSecretResponse {
    pub success: bool,
    /// The raw key. It is not stored and cannot be shown again.
    #[serde(rename = "key")]
    pub raw_key: String,
    #[serde(flatten)]
    pub key: KeyView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyListResponse {
    #[serde(flatten)]
    pub page: crate::routes::ListPage,
    pub keys: Vec<KeyView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RevokeResponse {
    pub success: bool,
    pub revoked: i64,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    #[schema(schema_with = crate::routes::schema::label)]
    pub label: String,
    /// Tool ids or aliases; resolved to canonical ids.
    pub allowed_tools: Option<Vec<String>>,
    #[schema(schema_with = crate::routes::schema::tool_scope_or_null)]
    pub tool_scope: Option<String>,
    /// Default 1000; clamped to [1, 100000000].
    #[schema(schema_with = crate::routes::schema::cap_cents_or_null)]
    pub daily_cap_cents: Option<i64>,
    /// Clamped to [1, 100000000]; null or omitted: no cumulative cap.
    #[schema(schema_with = crate::routes::schema::cap_cents_or_null)]
    pub total_cap_cents: Option<i64>,
    #[schema(schema_with = crate::routes::schema::cidrs_or_null)]
    pub allowed_cidrs: Option<Vec<String>>,
    /// RFC 3339 with a timezone, in the future.
    #[schema(schema_with = crate::routes::schema::instant_or_null)]
    pub expires_at: Option<String>,
    pub read_only: Option<bool>,
    /// Token-bucket rate and burst, 1 to 100000 requests per second (default 100).
    #[schema(schema_with = crate::routes::schema::rate_limit_or_null)]
    pub rate_limit_per_second: Option<i64>,
    /// `required` (default) or `optional` (see `KeyView.idempotency`).
    #[schema(schema_with = crate::routes::schema::idempotency_or_null)]
    pub idempotency: Option<String>,
}

/// Every field is optional; an absent field is left as it is. `null` clears the nullable
/// fields (`total_cap_cents`, `expires_at`) and is refused for the others.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = crate::routes::schema::label)]
    pub label: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Vec<String>, required = false)]
    pub allowed_tools: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = crate::routes::schema::tool_scope)]
    pub tool_scope: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = crate::routes::schema::cap_cents)]
    pub daily_cap_cents: Option<Option<i64>>,
    /// null clears the cumulative cap.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = crate::routes::schema::cap_cents_or_null)]
    pub total_cap_cents: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = crate::routes::schema::cidrs)]
    pub allowed_cidrs: Option<Option<Vec<String>>>,
    /// null removes the expiry.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = crate::routes::schema::instant_or_null)]
    pub expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = bool, required = false)]
    pub read_only: Option<Option<bool>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = crate::routes::schema::rate_limit)]
    pub rate_limit_per_second: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = crate::routes::schema::idempotency)]
    pub idempotency: Option<Option<String>>,
}

/// `required` or `optional`, as `idempotency_optional`.
fn parse_idempotency(text: &str) -> ApiResult<bool> {
    match text {
        "required" => Ok(false),
        "optional" => Ok(true),
        _ => Err(ApiError::invalid("idempotency must be required or optional")),
    }
}

/// A field that may be absent but not null.
fn not_null<T>(field: &str, value: Option<Option<T>>) -> ApiResult<Option<T>> {
    match value {
        Some(None) => Err(ApiError::invalid(format!("{field} cannot be null"))),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// 0 (default) ends the old secret at once; up to 604800 keeps it working that long.
    #[schema(maximum = 604_800)]
    pub grace_period_seconds: Option<u32>,
}

const KEY_NOT_FOUND: &str = "no such key";

fn key_not_found() -> ApiError {
    ApiError::new(ErrorCode::KeyNotFound, KEY_NOT_FOUND)
}

/// A path id that is not a positive integer cannot name a key of ours.
fn key_id(text: &str) -> ApiResult<i64> {
    crate::routes::path_id(text, ErrorCode::KeyNotFound, KEY_NOT_FOUND)
}

fn resolve_tools(state: &SharedState, names: Option<Vec<String>>) -> ApiResult<Option<Vec<String>>> {
    names
        .map(|names| {
            names
                .iter()
                .map(|name| {
                    state.catalog.resolve(name).map(|t| t.id.clone()).ok_or_else(|| {
                        ApiError::invalid(format!(
                            "allowed_tools: unknown tool '{}'",
                            visa_core::policy::truncate_for_message(name)
                        ))
                    })
                })
                .collect()
        })
        .transpose()
}

fn parse_scope(text: Option<String>) -> ApiResult<Option<ToolScope>> {
    Ok(text.map(|t| ToolScope::parse(&t)).transpose()?)
}

fn parse_cidrs(cidrs: Option<Vec<String>>) -> ApiResult<Option<CidrAllowlist>> {
    Ok(cidrs.map(|c| CidrAllowlist::parse(&c)).transpose()?)
}

#[utoipa::path(post, path = "/v1/api/keys", tag = "keys", request_body = CreateKeyRequest,
    responses((status = 201, body = KeyWithSecretResponse), (status = 400, body = crate::routes::ErrorBody)),
    security(("session" = [])))]
pub async fn create(
    State(state): State<SharedState>,
    session: Session,
    JsonBody(req): JsonBody<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<KeyWithSecretResponse>)> {
    session.require(Permission::ManageKeys)?;
    let now = state.now();
    let policy = KeyPolicy {
        label: KeyLabel::parse(&req.label)?,
        grant: ToolGrant::new(parse_scope(req.tool_scope)?, resolve_tools(&state, req.allowed_tools)?)?,
        allowed_cidrs: parse_cidrs(req.allowed_cidrs)?.unwrap_or_default(),
        daily_cap_cents: clamp_cap_cents(req.daily_cap_cents.unwrap_or(DEFAULT_DAILY_CAP_CENTS)),
        total_cap_cents: req.total_cap_cents.map(clamp_cap_cents),
        expires_at: req.expires_at.map(|at| parse_expires_at(&at, now)).transpose()?,
        read_only: req.read_only.unwrap_or(false),
        rate_limit_per_second: req
            .rate_limit_per_second
            .map(parse_rate_limit)
            .transpose()?
            .unwrap_or(DEFAULT_RATE_LIMIT_PER_SECOND),
        idempotency_optional: req.idempotency.as_deref().map(parse_idempotency).transpose()?.unwrap_or(false),
    };
    let (raw, secret) = mint_secret(&state);
    let new = NewKey { account_id: session.account.id, environment: state.environment, policy, secret };
    let key = state.store.create_key(new, session.audit(&state)).await?;
    tracing::info!(key_id = key.id, account = %key.owner, "key created");
    let body = KeyWithSecretResponse { success: true, raw_key: raw.expose().to_owned(), key: KeyView::new(&key, now) };
    Ok((StatusCode::CREATED, Json(body)))
}

fn mint_secret(state: &SharedState) -> (RawKey, NewSecret) {
    let raw = RawKey::generate(&state.brand, KeyMode::tool(state.environment));
    let secret = NewSecret { hash: state.hasher.hash(raw.expose()), key_prefix: raw.prefix() };
    (raw, secret)
}

#[utoipa::path(get, path = "/v1/api/keys", tag = "keys", params(ListQuery),
    responses((status = 200, body = KeyListResponse), (status = 400, body = crate::routes::ErrorBody)),
    security(("session" = [])))]
pub async fn list(
    State(state): State<SharedState>,
    session: Session,
    query: ListQuery,
) -> ApiResult<Json<KeyListResponse>> {
    session.require(Permission::Read)?;
    let page = state.store.list_keys(session.account.id, query.page()?).await?;
    let now = state.now();
    Ok(Json(KeyListResponse {
        page: crate::routes::ListPage::of(&page),
        keys: page.items.iter().map(|k| KeyView::new(k, now)).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/api/keys/{id}", tag = "keys", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = KeyResponse), (status = 404, body = crate::routes::ErrorBody)),
    security(("session" = [])))]
pub async fn get(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyResponse>> {
    session.require(Permission::Read)?;
    let key = state.store.get_key(session.account.id, key_id(&id)?).await?.ok_or_else(key_not_found)?;
    Ok(Json(KeyResponse { success: true, key: KeyView::new(&key, state.now()) }))
}

#[utoipa::path(patch, path = "/v1/api/keys/{id}", tag = "keys", params(("id" = i64, Path, minimum = 1)), request_body = UpdateKeyRequest,
    responses((status = 200, body = KeyResponse), (status = 400, body = crate::routes::ErrorBody), (status = 404, body = crate::routes::ErrorBody)),
    security(("session" = [])))]
pub async fn update(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdateKeyRequest>,
) -> ApiResult<Json<KeyResponse>> {
    session.require(Permission::ManageKeys)?;
    let id = key_id(&id)?;
    let account_id = session.account.id;
    let current = state.store.get_key(account_id, id).await?.ok_or_else(key_not_found)?;
    let now = state.now();
    let patch = KeyPatch {
        label: not_null("label", req.label)?.as_deref().map(KeyLabel::parse).transpose()?,
        grant: updated_grant(
            &state,
            &current,
            not_null("tool_scope", req.tool_scope)?,
            not_null("allowed_tools", req.allowed_tools)?,
        )?,
        allowed_cidrs: parse_cidrs(not_null("allowed_cidrs", req.allowed_cidrs)?)?,
        daily_cap_cents: not_null("daily_cap_cents", req.daily_cap_cents)?.map(clamp_cap_cents),
        total_cap_cents: req.total_cap_cents.map(|cap| cap.map(clamp_cap_cents)),
        expires_at: req.expires_at.map(|at| at.map(|at| parse_expires_at(&at, now)).transpose()).transpose()?,
        read_only: not_null("read_only", req.read_only)?,
        rate_limit_per_second: not_null("rate_limit_per_second", req.rate_limit_per_second)?
            .map(parse_rate_limit)
            .transpose()?,
        idempotency_optional: not_null("idempotency", req.idempotency)?
            .as_deref()
            .map(parse_idempotency)
            .transpose()?,
    };
    let key = state
        .store
        .update_key(account_id, id, patch, session.audit(&state))
        .await
        .map_err(not_found_as(ErrorCode::KeyNotFound, KEY_NOT_FOUND))?;
    state.keys.invalidate_key(id);
    tracing::info!(key_id = id, "key updated");
    Ok(Json(KeyResponse { success: true, key: KeyView::new(&key, now) }))
}

/// Scope and tools change together: a new scope alone keeps the current tools when it is
/// `restricted` and drops them for `all_supported_tools`; new tools alone imply the scope.
fn updated_grant(
    state: &SharedState,
    current: &KeyRecord,
    scope: Option<String>,
    tools: Option<Vec<String>>,
) -> ApiResult<Option<ToolGrant>> {
    let scope = parse_scope(scope)?;
    let tools = resolve_tools(state, tools)?;
    let grant = match (scope, tools) {
        (None, None) => return Ok(None),
        (Some(ToolScope::Restricted), None) => ToolGrant::new(scope, Some(current.policy.grant.tools().to_vec())),
        (scope, tools) => ToolGrant::new(scope, tools),
    };
    Ok(Some(grant?))
}

#[utoipa::path(delete, path = "/v1/api/keys/{id}", tag = "keys", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = RevokeResponse), (status = 404, body = crate::routes::ErrorBody)),
    security(("session" = [])))]
pub async fn revoke(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<RevokeResponse>> {
    session.require(Permission::ManageKeys)?;
    let id = key_id(&id)?;
    state
        .store
        .revoke_key(session.account.id, id, RevokeCause::Requested, session.audit(&state))
        .await
        .map_err(not_found_as(ErrorCode::KeyNotFound, KEY_NOT_FOUND))?;
    state.keys.invalidate_key(id);
    tracing::info!(key_id = id, "key revoked");
    Ok(Json(RevokeResponse { success: true, revoked: id }))
}

#[utoipa::path(post, path = "/v1/api/keys/{id}/secrets/{secret_id}/revoke", tag = "keys",
    params(("id" = i64, Path, minimum = 1), ("secret_id" = i64, Path, minimum = 1)),
    responses((status = 200, body = KeyResponse), (status = 400, body = crate::routes::ErrorBody), (status = 404, body = crate::routes::ErrorBody)),
    security(("session" = [])))]
pub async fn revoke_secret(
    State(state): State<SharedState>,
    session: Session,
    Path((id, secret_id)): Path<(String, String)>,
) -> ApiResult<Json<KeyResponse>> {
    session.require(Permission::ManageKeys)?;
    let id = key_id(&id)?;
    let secret_id = key_id(&secret_id)?;
    let now = state.now();
    let key = state
        .store
        .revoke_secret(session.account.id, id, secret_id, session.audit(&state))
        .await
        .map_err(not_found_as(ErrorCode::KeyNotFound, KEY_NOT_FOUND))?;
    state.keys.invalidate_key(id);
    tracing::info!(key_id = id, secret_id, "key secret revoked");
    Ok(Json(KeyResponse { success: true, key: KeyView::new(&key, now) }))
}

#[utoipa::path(post, path = "/v1/api/keys/{id}/rotate", tag = "keys", params(("id" = i64, Path, minimum = 1)), request_body(content = Option<RotateKeyRequest>, description = "Optional: an empty body rotates with no grace period"),
    responses((status = 200, body = KeyWithSecretResponse), (status = 400, body = crate::routes::ErrorBody), (status = 404, body = crate::routes::ErrorBody)),
    security(("session" = [])))]
pub async fn rotate(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
    OptionalJsonBody(req): OptionalJsonBody<RotateKeyRequest>,
) -> ApiResult<Json<KeyWithSecretResponse>> {
    session.require(Permission::ManageKeys)?;
    let id = key_id(&id)?;
    let grace = req.grace_period_seconds.unwrap_or(0);
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::invalid(format!("grace_period_seconds must be 0 to {MAX_GRACE_SECONDS}")));
    }
    let audit = session.audit(&state);
    let now = audit.now;
    let (raw, secret) = mint_secret(&state);
    let rotation = Rotation { secret, old_secrets_end: now + time::Duration::seconds(i64::from(grace)) };
    let key = state
        .store
        .rotate_key(session.account.id, id, rotation, audit)
        .await
        .map_err(not_found_as(ErrorCode::KeyNotFound, KEY_NOT_FOUND))?;
    state.keys.invalidate_key(id);
    tracing::info!(key_id = id, grace_seconds = grace, "key rotated");
    Ok(Json(KeyWithSecretResponse { success: true, raw_key: raw.expose().to_owned(), key: KeyView::new(&key, now) }))
}

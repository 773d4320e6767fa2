//! The key lifecycle of a signed-in account: create, list, get, update, revoke and rotate tool
//! keys, and end one old secret early. Another account's key id answers KEY_NOT_FOUND, never
//! FORBIDDEN; every change is audited and drops the key from the node's cache.

use crate::app::paid_call;
use crate::auth::{Reader, Session};
use crate::error::{ApiError, ApiResult, not_found_as};
use crate::state::AppState;
use crate::wire::keys::{
    BudgetQuery, CreateKeyRequest, EndUserBudget, KEY_NOT_FOUND, KeyBudget, KeyListResponse, KeyResponse, KeyView,
    KeyWithSecretResponse, MAX_GRACE_SECONDS, RevokeResponse, RotateKeyRequest, UpdateKeyRequest, key_not_found,
};
use crate::wire::{Limit, ListPage, rfc3339};
use visa_core::ErrorCode;
use visa_core::id::{KeyId, SecretId};
use visa_core::key::Environment;
use visa_core::key::{KeyMode, RawKey};
use visa_core::pagination::PageRequest;
use visa_core::policy::{
    CidrAllowlist, DEFAULT_CAP_ALERT_PERCENT, DEFAULT_DAILY_CAP_CENTS, DEFAULT_RATE_LIMIT_PER_SECOND, KeyLabel,
    ToolGrant, ToolScope, clamp_cap_cents, parse_cap_alert_percent, parse_expires_at, parse_rate_limit,
};
use visa_core::role::Permission;
use visa_store::rules;
use visa_store::{
    EndUser, EndUserCaps, KeyPatch, KeyPolicy, KeyRecord, NewKey, NewSecret, RevokeCause, Rotation, Timestamp,
};

pub async fn create(state: &AppState, caller: &Session, req: CreateKeyRequest) -> ApiResult<KeyWithSecretResponse> {
    caller.require(Permission::ManageKeys)?;
    let now = state.now();
    let policy = policy_of(state, req, now)?;
    let (raw, secret) = mint_secret(state, None);
    let new = NewKey { account_id: caller.account.id, environment: state.environment, policy, secret };
    let key = state.store.create_key(new, caller.audit(state)).await?;
    tracing::info!(key_id = %key.id, account = %key.owner, "key created");
    Ok(KeyWithSecretResponse { success: true, raw_key: raw.expose().to_owned(), key: KeyView::new(&key, now) })
}

/// A new key's policy, read from the request as the API reads it (defaults, clamps, checks):
/// for keys created as keys and for the keys OAuth consents mint (`super::oauth`).
pub(crate) fn policy_of(state: &AppState, req: CreateKeyRequest, now: Timestamp) -> ApiResult<KeyPolicy> {
    Ok(KeyPolicy {
        label: KeyLabel::parse(&req.label)?,
        grant: ToolGrant::new(parse_scope(req.tool_scope)?, resolve_tools(state, req.allowed_tools)?)?,
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
        cap_alert_percent: req
            .cap_alert_percent
            .map(parse_cap_alert_percent)
            .transpose()?
            .unwrap_or(DEFAULT_CAP_ALERT_PERCENT),
        end_user_required: req.end_user.as_deref().map(parse_end_user_rule).transpose()?.unwrap_or(false),
        end_user_caps: EndUserCaps {
            daily_cents: req.end_user_daily_cap_cents.map(clamp_cap_cents),
            total_cents: req.end_user_total_cap_cents.map(clamp_cap_cents),
        },
    })
}

/// What the calling tool key may still spend (`GET /v1/api/key`), for one of its end users if
/// `?end_user=` names one: read fresh from the store, decided by `rules::spendable` as the hold
/// decides. A session is refused: it reads a key at `/v1/api/keys/{id}`.
pub async fn budget(state: &AppState, reader: &Reader, query: BudgetQuery) -> ApiResult<KeyBudget> {
    let Reader::Key(record) = reader else {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "GET /v1/api/key is a tool key's view of itself: send the key; a session reads /v1/api/keys/{id}",
        ));
    };
    let end_user = query.end_user.as_deref().map(EndUser::parse).transpose()?;
    let key = state.store.get_key(record.key.account_id, record.key.id).await?.ok_or_else(key_not_found)?;
    let now = state.now();
    let today = rules::utc_day_number(now);
    let (spent_day, held_day) = (key.spent_on(today), key.held_on(today));
    let day = rules::hold_day(today, key.latest_day);
    let available = match state.environment {
        Environment::Preview => None,
        Environment::Production => {
            let account = state.store.account_by_id(key.account_id).await?.ok_or_else(key_not_found)?;
            Some(account.balance.checked_sub(account.held).unwrap_or_default())
        }
    };
    let p = &key.policy;
    let end_user = match end_user {
        None => None,
        Some(user) => Some((state.store.end_user_spend(key.id, user.clone(), day).await?, user)),
    };
    let caps = rules::CapState {
        daily_cap_cents: p.daily_cap_cents,
        total_cap_cents: p.total_cap_cents,
        spent_day,
        held_day,
        spent_total: key.spent_total,
        held_total: key.held_total,
        available,
        end_user: end_user.as_ref().map(|(spend, _)| rules::EndUserState {
            daily_cap_cents: p.end_user_caps.daily_cents,
            total_cap_cents: p.end_user_caps.total_cents,
            spent_day: spend.spent_day,
            held_day: spend.held_day,
            spent_total: spend.spent_total,
            held_total: spend.held_total,
        }),
    };
    let (spendable, bound) = rules::spendable(&caps);
    let limited_by = Limit::of(&bound).unwrap_or(Limit::KeyDailyCap);
    let resets_at = matches!(limited_by, Limit::KeyDailyCap | Limit::EndUserDailyCap)
        .then(|| time::OffsetDateTime::from_unix_timestamp(paid_call::next_midnight(day)).ok())
        .flatten()
        .map(rfc3339);
    Ok(KeyBudget {
        success: true,
        object: "key_budget".into(),
        key_id: key.id.get(),
        label: p.label.as_str().to_owned(),
        key_prefix: key.key_prefix().to_owned(),
        environment: key.environment.as_str().to_owned(),
        tool_scope: p.grant.scope().as_str().to_owned(),
        allowed_tools: p.grant.tools().to_vec(),
        daily_cap_cents: p.daily_cap_cents,
        total_cap_cents: p.total_cap_cents,
        expires_at: p.expires_at.map(rfc3339),
        rate_limit_per_second: p.rate_limit_per_second,
        spent_today_micros: spent_day.to_string(),
        spent_today_cents: spent_day.cents_ceil(),
        held_today_micros: held_day.to_string(),
        spent_total_micros: key.spent_total.to_string(),
        spent_total_cents: key.spent_total.cents_ceil(),
        end_user: end_user.map(|(spend, user)| EndUserBudget {
            id: user.as_str().to_owned(),
            daily_cap_cents: p.end_user_caps.daily_cents,
            total_cap_cents: p.end_user_caps.total_cents,
            spent_today_micros: spend.spent_day.to_string(),
            spent_today_cents: spend.spent_day.cents_ceil(),
            held_today_micros: spend.held_day.to_string(),
            spent_total_micros: spend.spent_total.to_string(),
            spent_total_cents: spend.spent_total.cents_ceil(),
        }),
        spendable_micros: spendable.to_string(),
        spendable_cents: spendable.cents_floor(),
        limited_by: limited_by.as_str().to_owned(),
        resets_at,
    })
}

pub async fn list(state: &AppState, caller: &Session, page: PageRequest) -> ApiResult<KeyListResponse> {
    caller.require(Permission::Read)?;
    let page = state.store.list_keys(caller.account.id, page).await?;
    let now = state.now();
    Ok(KeyListResponse { page: ListPage::of(&page), keys: page.items.iter().map(|k| KeyView::new(k, now)).collect() })
}

pub async fn get(state: &AppState, caller: &Session, id: KeyId) -> ApiResult<KeyResponse> {
    caller.require(Permission::Read)?;
    let key = state.store.get_key(caller.account.id, id).await?.ok_or_else(key_not_found)?;
    Ok(KeyResponse { success: true, key: KeyView::new(&key, state.now()) })
}

pub async fn update(state: &AppState, caller: &Session, id: KeyId, req: UpdateKeyRequest) -> ApiResult<KeyResponse> {
    caller.require(Permission::ManageKeys)?;
    let account_id = caller.account.id;
    let current = state.store.get_key(account_id, id).await?.ok_or_else(key_not_found)?;
    let now = state.now();
    let patch = KeyPatch {
        label: not_null("label", req.label)?.as_deref().map(KeyLabel::parse).transpose()?,
        grant: updated_grant(
            state,
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
        cap_alert_percent: not_null("cap_alert_percent", req.cap_alert_percent)?
            .map(parse_cap_alert_percent)
            .transpose()?,
        end_user_required: not_null("end_user", req.end_user)?.as_deref().map(parse_end_user_rule).transpose()?,
        end_user_daily_cap_cents: req.end_user_daily_cap_cents.map(|cap| cap.map(clamp_cap_cents)),
        end_user_total_cap_cents: req.end_user_total_cap_cents.map(|cap| cap.map(clamp_cap_cents)),
    };
    let key = state
        .store
        .update_key(account_id, id, patch, caller.audit(state))
        .await
        .map_err(not_found_as(ErrorCode::KeyNotFound, KEY_NOT_FOUND))?;
    state.keys.invalidate_key(id);
    tracing::info!(key_id = %id, "key updated");
    Ok(KeyResponse { success: true, key: KeyView::new(&key, now) })
}

pub async fn revoke(state: &AppState, caller: &Session, id: KeyId) -> ApiResult<RevokeResponse> {
    caller.require(Permission::ManageKeys)?;
    state
        .store
        .revoke_key(caller.account.id, id, RevokeCause::Requested, caller.audit(state))
        .await
        .map_err(not_found_as(ErrorCode::KeyNotFound, KEY_NOT_FOUND))?;
    state.keys.invalidate_key(id);
    tracing::info!(key_id = %id, "key revoked");
    Ok(RevokeResponse { success: true, revoked: id.get() })
}

/// Ends one of the key's secrets now (an old one kept by a rotation's grace period).
pub async fn revoke_secret(
    state: &AppState,
    caller: &Session,
    id: KeyId,
    secret_id: SecretId,
) -> ApiResult<KeyResponse> {
    caller.require(Permission::ManageKeys)?;
    let now = state.now();
    let key = state
        .store
        .revoke_secret(caller.account.id, id, secret_id, caller.audit(state))
        .await
        .map_err(not_found_as(ErrorCode::KeyNotFound, KEY_NOT_FOUND))?;
    state.keys.invalidate_key(id);
    tracing::info!(key_id = %id, secret_id = %secret_id, "key secret revoked");
    Ok(KeyResponse { success: true, key: KeyView::new(&key, now) })
}

/// A new secret for the key, shown this once; the old ones keep working for the grace period.
pub async fn rotate(
    state: &AppState,
    caller: &Session,
    id: KeyId,
    req: RotateKeyRequest,
) -> ApiResult<KeyWithSecretResponse> {
    caller.require(Permission::ManageKeys)?;
    let grace = req.grace_period_seconds.unwrap_or(0);
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::invalid(format!("grace_period_seconds must be 0 to {MAX_GRACE_SECONDS}")));
    }
    let audit = caller.audit(state);
    let now = audit.now;
    let (raw, secret) = mint_secret(state, None);
    let rotation = Rotation { secret, old_secrets_end: now + time::Duration::seconds(i64::from(grace)) };
    let key = state
        .store
        .rotate_key(caller.account.id, id, rotation, audit)
        .await
        .map_err(not_found_as(ErrorCode::KeyNotFound, KEY_NOT_FOUND))?;
    state.keys.invalidate_key(id);
    tracing::info!(key_id = %id, grace_seconds = grace, "key rotated");
    Ok(KeyWithSecretResponse { success: true, raw_key: raw.expose().to_owned(), key: KeyView::new(&key, now) })
}

/// A new tool key secret (the raw key, shown once, and what is stored), ending by itself at
/// `expires_at` if given (an OAuth access token).
pub(crate) fn mint_secret(state: &AppState, expires_at: Option<Timestamp>) -> (RawKey, NewSecret) {
    let raw = RawKey::generate(&state.brand, KeyMode::tool(state.environment));
    let secret = NewSecret { hash: state.hasher.hash(raw.expose()), key_prefix: raw.prefix(), expires_at };
    (raw, secret)
}

/// `required` or `optional`, as `idempotency_optional`.
fn parse_idempotency(text: &str) -> ApiResult<bool> {
    match text {
        "required" => Ok(false),
        "optional" => Ok(true),
        _ => Err(ApiError::invalid("idempotency must be required or optional")),
    }
}

/// `required` or `optional`, as `end_user_required`.
fn parse_end_user_rule(text: &str) -> ApiResult<bool> {
    match text {
        "required" => Ok(true),
        "optional" => Ok(false),
        _ => Err(ApiError::invalid("end_user must be required or optional")),
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

fn resolve_tools(state: &AppState, names: Option<Vec<String>>) -> ApiResult<Option<Vec<String>>> {
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

/// Scope and tools change together: a new scope alone keeps the current tools when it is
/// `restricted` and drops them for `all_supported_tools`; new tools alone imply the scope.
fn updated_grant(
    state: &AppState,
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

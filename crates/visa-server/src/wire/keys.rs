//! Tool keys on the wire: a key and its secrets as the API shows them (never the raw key or
//! its hash), the bodies that create, update and rotate one, and a key id in a path.

use super::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::extract::double_option;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use visa_core::ErrorCode;
use visa_core::id::{KeyId, SecretId};
use visa_store::{KeyRecord, SecretRecord, end_user_rule_name, idempotency_name};

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
    /// The share of a cap (percent) whose passing sends `key.cap.threshold` (docs/webhooks.md).
    pub cap_alert_percent: u8,
    /// `required`: every paid call must name its end user (docs/end-users.md); or `optional`.
    pub end_user: String,
    /// What each end user of the key may spend per UTC day, in cents; null: no such cap.
    pub end_user_daily_cap_cents: Option<i64>,
    /// What each end user of the key may spend in total, in cents; null: no such cap.
    pub end_user_total_cap_cents: Option<i64>,
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
            id: secret.id.get(),
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
            id: key.id.get(),
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
            cap_alert_percent: p.cap_alert_percent,
            end_user: end_user_rule_name(p.end_user_required).into(),
            end_user_daily_cap_cents: p.end_user_caps.daily_cents,
            end_user_total_cap_cents: p.end_user_caps.total_cents,
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
    pub page: super::ListPage,
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
    #[schema(schema_with = super::schema::label)]
    pub label: String,
    /// Tool ids or aliases; resolved to canonical ids.
    pub allowed_tools: Option<Vec<String>>,
    #[schema(schema_with = super::schema::tool_scope_or_null)]
    pub tool_scope: Option<String>,
    /// Default 1000; clamped to [1, 100000000].
    #[schema(schema_with = super::schema::cap_cents_or_null)]
    pub daily_cap_cents: Option<i64>,
    /// Clamped to [1, 100000000]; null or omitted: no cumulative cap.
    #[schema(schema_with = super::schema::cap_cents_or_null)]
    pub total_cap_cents: Option<i64>,
    #[schema(schema_with = super::schema::cidrs_or_null)]
    pub allowed_cidrs: Option<Vec<String>>,
    /// RFC 3339 with a timezone, in the future.
    #[schema(schema_with = super::schema::instant_or_null)]
    pub expires_at: Option<String>,
    pub read_only: Option<bool>,
    /// Token-bucket rate and burst, 1 to 100000 requests per second (default 100).
    #[schema(schema_with = super::schema::rate_limit_or_null)]
    pub rate_limit_per_second: Option<i64>,
    /// `required` (default) or `optional` (see `KeyView.idempotency`).
    #[schema(schema_with = super::schema::required_or_optional_or_null)]
    pub idempotency: Option<String>,
    /// The share of a cap whose passing sends `key.cap.threshold`: 1 to 100 (default 80).
    #[schema(schema_with = super::schema::percent_or_null)]
    pub cap_alert_percent: Option<i64>,
    /// `optional` (default) or `required`: every paid call must name its end user.
    #[schema(schema_with = super::schema::required_or_optional_or_null)]
    pub end_user: Option<String>,
    /// What each end user of the key may spend per UTC day (clamped as the caps); null or
    /// omitted: no such cap.
    #[schema(schema_with = super::schema::cap_cents_or_null)]
    pub end_user_daily_cap_cents: Option<i64>,
    /// What each end user of the key may spend in total; null or omitted: no such cap.
    #[schema(schema_with = super::schema::cap_cents_or_null)]
    pub end_user_total_cap_cents: Option<i64>,
}

/// Every field is optional; an absent field is left as it is. `null` clears the nullable
/// fields (`total_cap_cents`, `expires_at`, the end-user caps) and is refused for the others.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::schema::label)]
    pub label: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Vec<String>, required = false)]
    pub allowed_tools: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::schema::tool_scope)]
    pub tool_scope: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::schema::cap_cents)]
    pub daily_cap_cents: Option<Option<i64>>,
    /// null clears the cumulative cap.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::schema::cap_cents_or_null)]
    pub total_cap_cents: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::schema::cidrs)]
    pub allowed_cidrs: Option<Option<Vec<String>>>,
    /// null removes the expiry.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::schema::instant_or_null)]
    pub expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = bool, required = false)]
    pub read_only: Option<Option<bool>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::schema::rate_limit)]
    pub rate_limit_per_second: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::schema::required_or_optional)]
    pub idempotency: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::schema::percent)]
    pub cap_alert_percent: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::schema::required_or_optional)]
    pub end_user: Option<Option<String>>,
    /// null clears the cap on each end user per day.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::schema::cap_cents_or_null)]
    pub end_user_daily_cap_cents: Option<Option<i64>>,
    /// null clears the cap on each end user in total.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::schema::cap_cents_or_null)]
    pub end_user_total_cap_cents: Option<Option<i64>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// 0 (default) ends the old secret at once; up to 604800 keeps it working that long.
    #[schema(maximum = 604_800)]
    pub grace_period_seconds: Option<u32>,
}

pub const KEY_NOT_FOUND: &str = "no such key";

pub fn key_not_found() -> ApiError {
    ApiError::new(ErrorCode::KeyNotFound, KEY_NOT_FOUND)
}

/// A path id that is not a positive integer cannot name a key of ours.
pub fn key_id(text: &str) -> ApiResult<KeyId> {
    super::path_id(text, ErrorCode::KeyNotFound, KEY_NOT_FOUND).map(KeyId::new)
}

/// A secret's id in a path; one that names nothing of the key's is the key's "not found".
pub fn secret_id(text: &str) -> ApiResult<SecretId> {
    super::path_id(text, ErrorCode::KeyNotFound, KEY_NOT_FOUND).map(SecretId::new)
}

/// `GET /v1/api/key`: what a tool key may still spend, asked by the key itself. The account's
/// balance is not shown, only how far it bounds this key (`spendable_micros`, `limited_by`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyBudget {
    pub success: bool,
    /// Always `key_budget`.
    pub object: String,
    pub key_id: i64,
    pub label: String,
    pub key_prefix: String,
    /// `production` or `preview`.
    pub environment: String,
    /// `restricted` or `all_supported_tools`.
    pub tool_scope: String,
    pub allowed_tools: Vec<String>,
    pub daily_cap_cents: i64,
    pub total_cap_cents: Option<i64>,
    pub expires_at: Option<String>,
    pub rate_limit_per_second: u32,
    /// Captured today (UTC), and held by calls still running.
    pub spent_today_micros: String,
    pub spent_today_cents: i64,
    pub held_today_micros: String,
    pub spent_total_micros: String,
    pub spent_total_cents: i64,
    /// Asked with `?end_user=`: that end user's spend under the key's caps on each end user.
    pub end_user: Option<EndUserBudget>,
    /// What the key may still hold now (for the end user asked about, if any): the least of its
    /// caps' room and the account's available balance. A call whose hold is at most this is not
    /// refused by a cap or the balance.
    pub spendable_micros: String,
    pub spendable_cents: i64,
    /// The limit that bounds `spendable_micros`: `key_daily_cap`, `key_total_cap`,
    /// `end_user_daily_cap`, `end_user_total_cap` or `account_balance` (the names of refusals,
    /// docs/errors.md).
    #[schema(schema_with = super::schema::limit)]
    pub limited_by: String,
    /// When the daily cap resets (RFC 3339, 00:00 UTC), when a daily cap is what bounds the key.
    pub resets_at: Option<String>,
}

/// `GET /v1/api/key?end_user=`: the budget of one end user of the key.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BudgetQuery {
    /// An end user of the key (as calls name it: 1 to 128 printable characters).
    #[param(min_length = 1, max_length = 128)]
    pub end_user: Option<String>,
}

/// One end user of a key, in `KeyBudget`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndUserBudget {
    /// The end user, as calls name it.
    pub id: String,
    /// The key's caps on each end user (cents); null: no such cap.
    pub daily_cap_cents: Option<i64>,
    pub total_cap_cents: Option<i64>,
    /// Captured today (UTC) for this end user, and held by its calls still running.
    pub spent_today_micros: String,
    pub spent_today_cents: i64,
    pub held_today_micros: String,
    pub spent_total_micros: String,
    pub spent_total_cents: i64,
}

//! `GET /v1/api/keys/:id/usage?since=&until=&granularity=minute|hour|day`: requests,
//! successes, errors by code and charged micros per time bucket, per secret — so during a
//! rotation's grace the team sees the old secret's traffic reach zero before revoking it.

use crate::auth::Reader;
use crate::error::{ApiError, ApiResult};
use crate::routes::rfc3339;
use crate::state::SharedState;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use visa_core::ErrorCode;
use visa_core::money::Micros;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(usage))
}

const MAX_RANGE_DAYS: i64 = 31;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// RFC 3339; default 24 hours before `until`.
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// RFC 3339; default now.
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
    /// Bucket size, default `minute`.
    #[param(inline)]
    granularity: Option<Granularity>,
}

impl UsageQuery {
    /// The window `since`..now in buckets of `granularity` (the dashboard's chart).
    pub fn since(since: OffsetDateTime, granularity: Granularity) -> Self {
        UsageQuery { since: Some(rfc3339(since)), until: None, granularity: Some(granularity) }
    }
}

/// The size of a usage bucket.
#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    #[default]
    Minute,
    Hour,
    Day,
}

impl Granularity {
    pub fn minutes(self) -> i64 {
        match self {
            Self::Minute => 1,
            Self::Hour => 60,
            Self::Day => 1440,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct UsageCounts {
    pub requests: u64,
    pub successes: u64,
    /// error_code -> count (`HTTP_<status>` for replayed stored failures).
    pub errors: BTreeMap<String, u64>,
    pub charged_micros: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageBucket {
    /// Start of the bucket (UTC).
    pub start: String,
    #[serde(flatten)]
    pub counts: UsageCounts,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretUsage {
    pub secret_id: i64,
    pub key_prefix: String,
    /// Buckets with any traffic, oldest first.
    pub buckets: Vec<UsageBucket>,
    pub totals: UsageCounts,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageResponse {
    pub success: bool,
    pub key_id: i64,
    pub granularity: String,
    pub since: String,
    pub until: String,
    pub secrets: Vec<SecretUsage>,
}

fn parse_time(field: &str, text: Option<&str>, default: OffsetDateTime) -> ApiResult<OffsetDateTime> {
    Ok(crate::routes::parse_rfc3339(field, text)?.unwrap_or(default))
}

/// Adds `more` into `into`; charged amounts are carried as micros until the end.
fn add(into: &mut (UsageCounts, Micros), more: &visa_store::UsageCount) {
    into.0.requests += more.requests;
    into.0.successes += more.successes;
    for (code, n) in &more.errors {
        *into.0.errors.entry(code.clone()).or_default() += n;
    }
    into.1 = into.1.checked_add(more.charged).unwrap_or(into.1);
}

fn finish((mut counts, charged): (UsageCounts, Micros)) -> UsageCounts {
    counts.charged_micros = charged.to_string();
    counts
}

#[utoipa::path(get, path = "/v1/api/keys/{id}/usage", tag = "keys", params(("id" = i64, Path, minimum = 1), UsageQuery),
    responses((status = 200, body = UsageResponse), (status = 400, body = crate::routes::ErrorBody), (status = 404, body = crate::routes::ErrorBody)),
    security(("session" = []), ("api_key" = [])))]
pub async fn usage(
    State(state): State<SharedState>,
    reader: Reader,
    Path(id): Path<String>,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<UsageResponse>> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("invalid query string: {}", e.body_text())))?;
    let not_found = || ApiError::new(ErrorCode::KeyNotFound, "no such key");
    // A key reads its own usage only; any other id is "not found", like another account's.
    let id = visa_core::number::positive_id(&id)
        .filter(|id| reader.key_id().is_none_or(|own| own == *id))
        .ok_or_else(not_found)?;
    let key = state.store.get_key(reader.account_id(), id).await?.ok_or_else(not_found)?;
    let granularity = query.granularity.unwrap_or_default();
    let bucket_minutes = granularity.minutes();
    let until = parse_time("until", query.until.as_deref(), state.now())?;
    let since = parse_time("since", query.since.as_deref(), until - time::Duration::days(1))?;
    if since >= until || until - since > time::Duration::days(MAX_RANGE_DAYS) {
        return Err(ApiError::invalid(format!("since must be before until, at most {MAX_RANGE_DAYS} days apart")));
    }
    let (first, last) = (since.unix_timestamp().div_euclid(60), until.unix_timestamp().div_euclid(60) + 1);
    let rows = state.store.key_usage(key.id, first, last).await?;
    let secrets = key
        .secrets
        .iter()
        .map(|secret| {
            let mut buckets: BTreeMap<i64, (UsageCounts, Micros)> = BTreeMap::new();
            let mut totals = (UsageCounts::default(), Micros::ZERO);
            for row in rows.iter().filter(|r| r.secret_id == secret.id) {
                let start = row.minute - row.minute.rem_euclid(bucket_minutes);
                add(buckets.entry(start).or_insert_with(|| (UsageCounts::default(), Micros::ZERO)), row);
                add(&mut totals, row);
            }
            let buckets = buckets
                .into_iter()
                .map(|(minute, counts)| UsageBucket {
                    start: rfc3339(
                        OffsetDateTime::from_unix_timestamp(minute * 60).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    ),
                    counts: finish(counts),
                })
                .collect();
            SecretUsage { secret_id: secret.id, key_prefix: secret.key_prefix.clone(), buckets, totals: finish(totals) }
        })
        .collect();
    Ok(Json(UsageResponse {
        success: true,
        key_id: key.id,
        granularity: granularity.as_str().into(),
        since: rfc3339(since),
        until: rfc3339(until),
        secrets,
    }))
}

//! `GET /v1/api/keys/:id/usage?since=&until=&granularity=minute|hour|day`: requests,
//! successes, errors by code and charged micros per time bucket, per secret — so during a
//! rotation's grace the team sees the old secret's traffic reach zero before revoking it.

use crate::auth::Reader;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::wire::keys::key_not_found;
use crate::wire::rfc3339;
use crate::wire::usage::{MAX_RANGE_DAYS, SecretUsage, UsageBucket, UsageCounts, UsageQuery, UsageResponse};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use visa_core::id::KeyId;
use visa_core::money::Micros;

fn parse_time(field: &str, text: Option<&str>, default: OffsetDateTime) -> ApiResult<OffsetDateTime> {
    Ok(crate::wire::parse_rfc3339(field, text)?.unwrap_or(default))
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

/// A key's usage, for a session of its account or the key itself (any other id is "not
/// found", like another account's).
pub async fn usage(state: &AppState, reader: &Reader, id: KeyId, query: UsageQuery) -> ApiResult<UsageResponse> {
    if reader.key_id().is_some_and(|own| own != id) {
        return Err(key_not_found());
    }
    let key = state.store.get_key(reader.account_id(), id).await?.ok_or_else(key_not_found)?;
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
            SecretUsage {
                secret_id: secret.id.get(),
                key_prefix: secret.key_prefix.clone(),
                buckets,
                totals: finish(totals),
            }
        })
        .collect();
    Ok(UsageResponse {
        success: true,
        key_id: key.id.get(),
        granularity: granularity.as_str().into(),
        since: rfc3339(since),
        until: rfc3339(until),
        secrets,
    })
}

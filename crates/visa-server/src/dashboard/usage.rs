//! A key's traffic per secret over the last hour, day or week, from `GET
//! /v1/api/keys/{id}/usage` (`app::usage::usage` with the member's account): an SVG bar
//! chart per secret (requests per bucket, errors hatched so they read without colour, a
//! `<title>` on every bar) and the numbers in a table. The fragment is also served alone at
//! `/dashboard/keys/{id}/usage`, which `app.js` fetches every few seconds, so during a
//! rotation's grace the old secret's traffic is seen falling to zero without a reload.

use super::chart::{self, Axes, PLOT, WIDTH};
use super::session::Browser;
use crate::app;
use crate::auth::Reader;
use crate::state::SharedState;
use crate::wire::keys::key_id;
use crate::wire::usage::{Granularity, SecretUsage, UsageBucket, UsageQuery, UsageResponse};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use visa_core::money::{Micros, format_cents_as_dollars};

/// The ranges offered: (query value, label, length, bucket).
const RANGES: [(&str, &str, time::Duration, Granularity); 3] = [
    ("hour", "Last hour", time::Duration::HOUR, Granularity::Minute),
    ("day", "Last day", time::Duration::DAY, Granularity::Hour),
    ("week", "Last week", time::Duration::WEEK, Granularity::Day),
];

#[derive(Default, Deserialize)]
pub struct Range {
    range: Option<String>,
}

fn range_of(query: &Range) -> (&'static str, &'static str, time::Duration, Granularity) {
    RANGES.into_iter().find(|r| Some(r.0) == query.range.as_deref()).unwrap_or(RANGES[0])
}

/// The chart section of a key's page, refreshed in place by `app.js`.
pub async fn section(state: &SharedState, browser: &Browser, id: &str, query: &Range) -> Markup {
    let range = range_of(query);
    let source = format!("/dashboard/keys/{id}/usage?range={}", range.0);
    html! {
        section aria-labelledby="traffic" {
            h2 #traffic { "Traffic per secret" }
            nav aria-label="Range" {
                @for (value, label, _, _) in RANGES {
                    @if value == range.0 { strong { (label) } " " }
                    @else { a href={ "/dashboard/keys/" (id) "?range=" (value) } { (label) } " " }
                }
            }
            div #usage data-refresh=(source) aria-live="polite" { (charts(state, browser, id, range).await) }
        }
    }
}

/// The fragment alone, for the page's refresh.
pub async fn fragment(
    State(state): State<SharedState>,
    browser: Browser,
    Path(id): Path<String>,
    Query(query): Query<Range>,
) -> Response {
    charts(&state, &browser, &id, range_of(&query)).await.into_response()
}

async fn charts(
    state: &SharedState,
    browser: &Browser,
    id: &str,
    (_, label, length, granularity): (&str, &str, time::Duration, Granularity),
) -> Markup {
    let reader = Reader::Session(browser.session.account.clone());
    let query = UsageQuery::since(state.now() - length, granularity);
    let answer = async { app::usage::usage(state, &reader, key_id(id)?, query).await };
    let report = match answer.await {
        Ok(report) => report,
        Err(e) => return html! { p.error role="alert" { (e.0.message) } },
    };
    html! {
        @for secret in &report.secrets {
            figure {
                (chart(&report, secret, granularity))
                figcaption { code { (secret.key_prefix) } " — " (label.to_lowercase()) ": " (summary(secret)) }
            }
        }
    }
}

fn summary(secret: &SecretUsage) -> String {
    let t = &secret.totals;
    let errors: u64 = t.errors.values().sum();
    let by_code = t.errors.iter().map(|(code, n)| format!("{code} {n}")).collect::<Vec<_>>().join(", ");
    let charged = t.charged_micros.parse().map(Micros).unwrap_or(Micros::ZERO);
    let mut text = format!("{} requests, {} succeeded, {errors} errors", t.requests, t.successes);
    if !by_code.is_empty() {
        text.push_str(&format!(" ({by_code})"));
    }
    text.push_str(&format!(", {} charged", format_cents_as_dollars(charged.cents_ceil())));
    text
}

fn minute_of(rfc3339: &str) -> Option<i64> {
    OffsetDateTime::parse(rfc3339, &Rfc3339).ok().map(|t| t.unix_timestamp().div_euclid(60))
}

/// Requests per bucket over the whole window (empty buckets included), errors hatched.
fn chart(report: &UsageResponse, secret: &SecretUsage, granularity: Granularity) -> Markup {
    let step = granularity.minutes();
    let (Some(since), Some(until)) = (minute_of(&report.since), minute_of(&report.until)) else { return html! {} };
    let first = since - since.rem_euclid(step);
    let count = ((until - first) / step + 1).max(1);
    // Each bucket's start parsed once, not once per bar.
    let by_start: std::collections::HashMap<i64, &UsageBucket> =
        secret.buckets.iter().filter_map(|b| Some((minute_of(&b.start)?, b))).collect();
    let bucket = |start: i64| by_start.get(&start).copied();
    let max = secret.buckets.iter().map(|b| b.counts.requests).max().unwrap_or(0).max(1) as i64;
    let width = (WIDTH / count).max(1);
    let label = format!("Requests of {} per {}", secret.key_prefix, report.granularity);
    let requests = |n: i64| super::layout::count(n, "request");
    let axes = Axes { first: &report.since, last: &report.until, max: requests(max) };
    let (first_label, last_label) = (axis_time(axes.first), axis_time(axes.last));
    let axes = Axes { first: &first_label, last: &last_label, ..axes };
    chart::frame(
        &label,
        &axes,
        html! {
                defs {
                    pattern id={ "hatch-" (secret.secret_id) } width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)" {
                        rect width="2" height="4" fill="#9b1c1c" {}
                    }
                }
                @for i in 0..count {
                    @let start = first + i * step;
                    @if let Some(b) = bucket(start) {
                        @let errors: u64 = b.counts.errors.values().sum();
                        @let h = b.counts.requests as i64 * PLOT / max;
                        @let eh = errors as i64 * PLOT / max;
                        g {
                            title { (b.start) ": " (requests(b.counts.requests as i64)) ", " (super::layout::count(errors as i64, "error")) }
                            rect x=(i * width) y=(chart::bar_y(h)) width=((width - 1).max(1)) height=(h) fill="#3b6fb6" {}
                            @if eh > 0 {
                                rect x=(i * width) y=(chart::bar_y(eh)) width=((width - 1).max(1)) height=(eh)
                                    fill={ "url(#hatch-" (secret.secret_id) ")" } stroke="#9b1c1c" {}
                            }
                        }
                    }
                }
        },
    )
}

/// An axis' instant as `12-06 22:49 UTC`.
fn axis_time(rfc3339: &str) -> String {
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .ok()
        .and_then(|t| t.format(time::macros::format_description!("[month]-[day] [hour]:[minute] UTC")).ok())
        .unwrap_or_else(|| rfc3339.to_owned())
}

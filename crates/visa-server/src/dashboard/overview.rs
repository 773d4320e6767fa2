//! The overview, the first page after sign-in: the balance and what running calls hold, spend
//! per day over the last 30 days stacked by tool, the top keys and end users, the calls each
//! limit refused, and the keys near a cap or about to expire. Every number comes from the API's
//! use cases with the member's account: the balance, the spend series (read from the rollups
//! the money path writes, so it costs the same for a million executions as for ten) and the
//! keys.

use super::chart::{self, Axes, PLOT, WIDTH};
use super::layout;
use super::session::Browser;
use super::spend::{balance_section, key_name};
use crate::app;
use crate::app::spend::BucketSums;
use crate::auth::Reader;
use crate::state::SharedState;
use crate::wire::keys::KeyView;
use crate::wire::spend::SeriesQuery;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use std::collections::BTreeMap;
use visa_core::money::{Micros, format_cents_as_dollars as dollars};
use visa_core::pagination::{Cursor, MAX_LIMIT, PageRequest};

pub use super::paths::OVERVIEW as PATH;

/// The window the overview covers, in UTC days (today included).
const DAYS: i64 = 30;
/// How many keys and end users the top lists show.
const TOP: usize = 10;
/// A key is "about to expire" within this many days.
const EXPIRING_DAYS: i64 = 7;
/// The stacked chart's colours, one per tool in order of spend (the rest share the last).
const COLOURS: [&str; 6] = ["#3b6fb6", "#d9822b", "#2e8b57", "#9b59b6", "#c0392b", "#7f8c8d"];

/// A series' sums per group over the window: (calls, charged, refusals by limit).
type Totals = BTreeMap<String, BucketSums>;

pub async fn show(State(state): State<SharedState>, browser: Browser) -> Response {
    let reader = Reader::Session(browser.session.account.clone());
    let balance = match app::balance::balance(&state, &reader).await {
        Ok(balance) => balance,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let now = state.now();
    let from = now.replace_time(time::Time::MIDNIGHT) - time::Duration::days(DAYS - 1);
    let series = |group_by: &str| SeriesQuery {
        from: Some(crate::wire::rfc3339(from)),
        group_by: Some(group_by.to_owned()),
        ..SeriesQuery::default()
    };
    let mut read = vec![];
    for group_by in ["tool", "key", "end_user"] {
        match app::spend::read_series(&state, &reader, series(group_by)).await {
            Ok(answer) => read.push(answer.buckets),
            Err(e) => return layout::refused(&state, &browser, PATH, e),
        }
    }
    let [by_tool, by_key, by_user] = <[_; 3]>::try_from(read).unwrap_or_default();
    let keys = match app::keys::list(&state, &browser.session, PageRequest { limit: MAX_LIMIT, cursor: Cursor::Start })
        .await
    {
        Ok(listed) => listed.keys,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let labels: BTreeMap<i64, String> = keys.iter().map(|k| (k.id, k.label.clone())).collect();
    let first_day = from.date();
    let body = html! {
        (balance_section(&balance))
        (stacked_by_tool(&by_tool, first_day))
        (top_keys(&totals(&by_key), &labels))
        (top_end_users(&totals(&by_user)))
        (refusals(&totals(&by_key)))
        (keys_to_watch(&keys, now))
    };
    layout::page(&state, &browser, PATH, "Overview", body).into_response()
}

/// Each group's sums over the whole window.
fn totals(buckets: &BTreeMap<(i64, Option<String>), BucketSums>) -> Totals {
    let mut totals = Totals::new();
    for ((_, group), sums) in buckets {
        let total = totals.entry(group.clone().unwrap_or_default()).or_default();
        total.calls += sums.calls;
        total.charged = total.charged.checked_add(sums.charged).unwrap_or(Micros(i64::MAX));
        for (limit, n) in &sums.refusals {
            *total.refusals.entry(limit.clone()).or_default() += n;
        }
    }
    totals
}

/// Groups by what they were charged, largest first (then by name), at most `TOP`.
fn largest(totals: &Totals) -> Vec<(&String, &BucketSums)> {
    let mut ranked: Vec<_> = totals.iter().filter(|(_, s)| s.calls > 0).collect();
    ranked.sort_by(|a, b| b.1.charged.cmp(&a.1.charged).then(b.1.calls.cmp(&a.1.calls)).then(a.0.cmp(b.0)));
    ranked.truncate(TOP);
    ranked
}

/// Spend per UTC day as bars stacked by tool, with the tools' colours, calls and spend beside.
fn stacked_by_tool(buckets: &BTreeMap<(i64, Option<String>), BucketSums>, first_day: time::Date) -> Markup {
    let tool_totals = totals(buckets);
    let mut tools: Vec<&String> = tool_totals.keys().collect();
    tools.sort_by(|a, b| tool_totals[*b].charged.cmp(&tool_totals[*a].charged).then(a.cmp(b)));
    let colour = |tool: &str| COLOURS[tools.iter().position(|t| *t == tool).unwrap_or(0).min(COLOURS.len() - 1)];
    let first = first_day.to_julian_day() as i64 - 2_440_588;
    let mut days: Vec<Vec<(&str, i64)>> = vec![vec![]; DAYS as usize];
    for ((bucket, tool), sums) in buckets {
        if let Some(day) = days.get_mut((bucket - first) as usize) {
            day.push((tool.as_deref().unwrap_or(""), sums.charged.0));
        }
    }
    let max = days.iter().map(|d| d.iter().map(|(_, m)| m).sum::<i64>()).max().unwrap_or(0).max(1);
    let width = WIDTH / DAYS;
    let date = |i: i64| (first_day + time::Duration::days(i)).to_string();
    // Each day's tools stacked from the baseline up: (x, y, height, colour, tooltip).
    let mut bars = vec![];
    for (i, day) in days.iter().enumerate() {
        let mut stacked = 0;
        for (tool, charged) in day {
            let h = charged * PLOT / max;
            stacked += h;
            let tip = format!("{} · {tool}: {}", date(i as i64), dollars(Micros(*charged).cents_ceil()));
            bars.push((i as i64 * width, chart::bar_y(stacked), h, colour(tool), tip));
        }
    }
    let (first_date, last_date) = (date(0), date(DAYS - 1));
    let axes = Axes { first: &first_date, last: &last_date, max: dollars(Micros(max).cents_ceil()) };
    html! {
        h2 #per-day { "Spend per day by tool, last " (DAYS) " days" }
        figure {
            (chart::frame("Spend per day, stacked by tool", &axes, html! {
                @for (x, y, h, fill, tip) in &bars {
                    g { title { (tip) } rect x=(x) y=(y) width=(width - 1) height=(h) fill=(fill) {} }
                }
            }))
            figcaption { "One bar per UTC day, " (first_date) " to " (last_date) ", each tool in its colour" }
        }
        @if tools.is_empty() { p { "No calls in this window." } }
        @else {
            table.overview-tools {
                caption { "Tools by spend" }
                thead { tr { th scope="col" { "Tool" } th scope="col" { "Calls" } th scope="col" { "Spent" } } }
                tbody {
                    @for tool in &tools {
                        tr {
                            td {
                                svg.swatch width="12" height="12" aria-hidden="true" { rect width="12" height="12" fill=(colour(tool)) {} }
                                " " (tool)
                            }
                            td.num { (tool_totals[*tool].calls) }
                            td.num { (dollars(tool_totals[*tool].charged.cents_ceil())) }
                        }
                    }
                }
            }
        }
    }
}

fn top_keys(by_key: &Totals, labels: &BTreeMap<i64, String>) -> Markup {
    html! {
        h2 #top-keys { "Top keys, last " (DAYS) " days" }
        @let ranked = largest(by_key);
        @if ranked.is_empty() { p { "No calls in this window." } }
        @else {
            table.overview-keys {
                thead { tr { th scope="col" { "Key" } th scope="col" { "Calls" } th scope="col" { "Spent" } } }
                tbody {
                    @for (id, sums) in ranked {
                        @let id: i64 = id.parse().unwrap_or_default();
                        tr {
                            td { a href={ "/dashboard/keys/" (id) } { (key_name(labels, id)) } }
                            td.num { (sums.calls) }
                            td.num { (dollars(sums.charged.cents_ceil())) }
                        }
                    }
                }
            }
        }
    }
}

fn top_end_users(by_user: &Totals) -> Markup {
    html! {
        h2 #top-end-users { "Top end users, last " (DAYS) " days" }
        @let ranked = largest(by_user);
        @if ranked.is_empty() { p { "No calls named an end user in this window." } }
        @else {
            table.overview-end-users {
                thead { tr { th scope="col" { "End user" } th scope="col" { "Calls" } th scope="col" { "Spent" } } }
                tbody {
                    @for (user, sums) in ranked {
                        tr { td.wrap { (user) } td.num { (sums.calls) } td.num { (dollars(sums.charged.cents_ceil())) } }
                    }
                }
            }
        }
    }
}

/// The calls each limit refused over the window (from the per-key series: every refusal once).
fn refusals(by_key: &Totals) -> Markup {
    let mut by_limit: BTreeMap<&str, i64> = BTreeMap::new();
    for sums in by_key.values() {
        for (limit, n) in &sums.refusals {
            *by_limit.entry(limit.as_str()).or_default() += n;
        }
    }
    html! {
        h2 #refusals { "Refusals by limit, last " (DAYS) " days" }
        @if by_limit.is_empty() { p { "No call was refused by a limit." } }
        @else {
            table.overview-refusals {
                thead { tr { th scope="col" { "Limit" } th scope="col" { "Calls refused" } } }
                tbody { @for (limit, n) in by_limit { tr { td { code { (limit) } } td.num { (n) } } } }
            }
        }
    }
}

/// Active keys whose spend passed their cap alert percentage of a cap, or that expire within a
/// week.
fn keys_to_watch(keys: &[KeyView], now: time::OffsetDateTime) -> Markup {
    let passed = |spent: i64, cap: i64, percent: u8| spent * 100 >= cap * i64::from(percent);
    let soon = now + time::Duration::days(EXPIRING_DAYS);
    let watched: Vec<(&KeyView, Vec<String>)> = keys
        .iter()
        .filter(|k| k.status == "active")
        .map(|k| {
            let mut why = vec![];
            if passed(k.spent_today_cents, k.daily_cap_cents, k.cap_alert_percent) {
                why.push(format!(
                    "{} of its {} daily cap spent today",
                    dollars(k.spent_today_cents),
                    dollars(k.daily_cap_cents)
                ));
            }
            if let Some(total) =
                k.total_cap_cents.filter(|total| passed(k.spent_total_cents, *total, k.cap_alert_percent))
            {
                why.push(format!("{} of its {} total cap spent", dollars(k.spent_total_cents), dollars(total)));
            }
            let expires = k
                .expires_at
                .as_deref()
                .and_then(|at| crate::wire::parse_rfc3339("expires_at", Some(at)).ok().flatten());
            if let Some(at) = expires.filter(|at| *at <= soon) {
                why.push(format!("expires {}", at.date()));
            }
            (k, why)
        })
        .filter(|(_, why)| !why.is_empty())
        .collect();
    html! {
        h2 #watch { "Keys near a cap or expiring" }
        @if watched.is_empty() { p { "No key is near a cap or expires within " (EXPIRING_DAYS) " days." } }
        @else {
            table.overview-watch {
                thead { tr { th scope="col" { "Key" } th scope="col" { "Why" } } }
                tbody {
                    @for (key, why) in watched {
                        tr { td { a href={ "/dashboard/keys/" (key.id) } { (key.label) } } td { (why.join("; ")) } }
                    }
                }
            }
        }
    }
}

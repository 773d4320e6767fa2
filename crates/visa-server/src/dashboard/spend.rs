//! Spend: the balance (`GET /v1/api/balance`: balance, available, held), what the account spent
//! per day and per key over the last 30 days (`GET /v1/api/spend`) as SVG bars with the numbers
//! in a table beside them, the executions list with the API's state and key filters and cursors (`GET
//! /v1/api/executions`), and an execution's page with its receipt (`GET
//! /v1/api/executions/{id}`). Every number comes from the API's handlers with the member's
//! account.

use super::chart::{self, Axes, PLOT, WIDTH};
use super::layout::{self, given};
use super::session::Browser;
use crate::app;
use crate::auth::Reader;
use crate::error::ApiError;
use crate::state::SharedState;
use crate::wire::ListPage;
use crate::wire::balance::BalanceResponse;
use crate::wire::executions::{ExecutionView, StateQuery};
use crate::wire::spend::{SpendQuery, SpendResponse};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use std::collections::BTreeMap;
use visa_core::money::{Micros, format_cents_as_dollars as dollars};
use visa_core::pagination::{Cursor, MAX_LIMIT, PageRequest};

pub use super::paths::SPEND as PATH;
const DAYS: i64 = 30;

const STATES: [&str; 5] = ["running", "succeeded", "failed", "reconcile_required", "voided"];

/// The executions filter and cursors, passed through to the API as they came.
#[derive(Default, Deserialize)]
pub struct Filter {
    state: Option<String>,
    key_id: Option<String>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

impl Filter {
    /// The page the filter's cursors ask for (25 entries, the API's default).
    fn page(&self) -> Result<PageRequest, ApiError> {
        Ok(PageRequest::parse(None, given(&self.starting_after), given(&self.ending_before))?)
    }

    fn state(&self) -> Option<&str> {
        given(&self.state)
    }

    fn key_id(&self) -> Option<&str> {
        given(&self.key_id)
    }
}

fn micros(text: &str) -> Micros {
    Micros(text.parse().unwrap_or(0))
}

fn exact(text: &str) -> String {
    dollars(micros(text).cents_ceil())
}

pub async fn show(State(state): State<SharedState>, browser: Browser, Query(filter): Query<Filter>) -> Response {
    let reader = Reader::Session(browser.session.account.clone());
    let balance = match app::balance::balance(&state, &reader).await {
        Ok(balance) => balance,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let spent = match app::spend::spend(&state, &reader, SpendQuery::days(DAYS)).await {
        Ok(spent) => spent,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let page = match filter.page() {
        Ok(page) => page,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let by_state = StateQuery::of(filter.state(), filter.key_id());
    let listed = match app::executions::list(&state, &reader, page, &by_state).await {
        Ok(listed) => listed,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let labels = key_labels(&state, &browser).await;
    let body = html! {
        (balance_section(&balance))
        (per_day(&spent))
        (per_key(&spent, &labels))
        h2 #executions { "Executions" }
        (filter_form(&filter, &labels))
        @if listed.executions.is_empty() { p { "No executions." } }
        @else { (executions_table(&listed.executions, &labels)) }
        (pager(&listed.page, &filter))
    };
    layout::page(&state, &browser, PATH, "Spend", body).into_response()
}

/// Key id → label, for the tables (the newest 100 keys; older ones show as `key N`).
pub(super) async fn key_labels(state: &SharedState, browser: &Browser) -> BTreeMap<i64, String> {
    let newest = PageRequest { limit: MAX_LIMIT, cursor: Cursor::Start };
    match app::keys::list(state, &browser.session, newest).await {
        Ok(listed) => listed.keys.into_iter().map(|k| (k.id, k.label)).collect(),
        Err(_) => BTreeMap::new(),
    }
}

pub(super) fn key_name(labels: &BTreeMap<i64, String>, id: i64) -> String {
    labels.get(&id).cloned().unwrap_or_else(|| format!("key {id}"))
}

pub(super) fn balance_section(balance: &BalanceResponse) -> Markup {
    html! {
        h2 { "Balance" }
        dl.balance {
            dt { "Balance" } dd #balance { (exact_floor(&balance.balance_micros)) }
            dt { "Available" } dd #available { (exact_floor(&balance.available_micros)) }
            dt { "Held by running calls" } dd #held { (exact(&balance.held_micros)) }
        }
    }
}

/// Money the account has, rounded down (what it can spend), as the API's `balance_cents`.
fn exact_floor(text: &str) -> String {
    dollars(micros(text).cents_floor())
}

/// Spend per UTC day as bars (every day of the window, empty ones too) and as a table.
fn per_day(spent: &SpendResponse) -> Markup {
    let first = spent.since.as_str();
    let days: Vec<(String, Micros)> = (0..DAYS)
        .map(|i| {
            let date = date_after(first, i);
            let total = spent.days.iter().find(|d| d.date == date).map_or(Micros::ZERO, |d| micros(&d.spent_micros));
            (date, total)
        })
        .collect();
    let max = days.iter().map(|(_, m)| m.0).max().unwrap_or(0).max(1);
    let width = WIDTH / DAYS;
    let edge = |i: usize| days.get(i).map_or("", |d| d.0.as_str());
    let axes =
        Axes { first: edge(0), last: edge(days.len().saturating_sub(1)), max: dollars(Micros(max).cents_ceil()) };
    html! {
        h2 #per-day { "Spend per day, last " (DAYS) " days" }
        figure {
            (chart::frame("Spend per day", &axes, html! {
                @for (i, (date, total)) in days.iter().enumerate() {
                    @let h = total.0 * PLOT / max;
                    g {
                        title { (date) ": " (dollars(total.cents_ceil())) }
                        rect x=(i as i64 * width) y=(chart::bar_y(h)) width=(width - 1) height=(h) fill="#3b6fb6" {}
                    }
                }
            }))
            figcaption {
                "One bar per UTC day, " (days.first().map_or("", |d| d.0.as_str())) " to " (days.last().map_or("", |d| d.0.as_str()))
                "; total " (dollars(Micros(days.iter().map(|(_, m)| m.0).sum()).cents_ceil()))
            }
        }
        @if !spent.days.is_empty() {
            table.spend-days {
                caption { "Days with spend" }
                thead { tr { th scope="col" { "Day (UTC)" } th scope="col" { "Spent" } } }
                tbody { @for day in spent.days.iter().rev() { tr { td { (day.date) } td.num { (dollars(day.spent_cents)) } } } }
            }
        }
    }
}

fn date_after(first: &str, days: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(first, format)
        .ok()
        .and_then(|d| d.checked_add(time::Duration::days(days)))
        .map(|d| d.to_string())
        .unwrap_or_default()
}

/// Spend per key over the window, largest first, each with a `<meter>` against the largest.
fn per_key(spent: &SpendResponse, labels: &BTreeMap<i64, String>) -> Markup {
    let mut totals: BTreeMap<i64, i64> = BTreeMap::new();
    for key in spent.days.iter().flat_map(|d| &d.keys) {
        *totals.entry(key.key_id).or_default() += micros(&key.spent_micros).0;
    }
    let mut totals: Vec<(i64, i64)> = totals.into_iter().collect();
    totals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let max = totals.first().map_or(1, |t| t.1.max(1));
    html! {
        h2 #per-key { "Spend per key, last " (DAYS) " days" }
        @if totals.is_empty() { p { "Nothing spent in this window." } }
        @else {
            table.spend-keys {
                caption { "Keys by spend, largest first" }
                thead { tr { th scope="col" { "Key" } th scope="col" { "Spent" } th scope="col" { "Share of the largest" } } }
                tbody {
                    @for (key_id, total) in &totals {
                        tr {
                            td { a href={ "/dashboard/keys/" (key_id) } { (key_name(labels, *key_id)) } }
                            td.num { (dollars(Micros(*total).cents_ceil())) }
                            td { meter min="0" max=(max) value=(total) { (total * 100 / max) "%" } }
                        }
                    }
                }
            }
        }
    }
}

fn filter_form(filter: &Filter, labels: &BTreeMap<i64, String>) -> Markup {
    html! {
        form.filters method="get" action={ (PATH) "#executions" } {
            label for="key_id" { "Key" }
            select #key_id name="key_id" {
                option value="" { "any" }
                @for (id, label) in labels {
                    @if filter.key_id() == Some(id.to_string().as_str()) { option value=(id) selected { (label) } }
                    @else { option value=(id) { (label) } }
                }
            }
            label for="state" { "State" }
            select #state name="state" {
                option value="" { "any" }
                @for s in STATES {
                    @if filter.state() == Some(s) { option value=(s) selected { (s) } } @else { option value=(s) { (s) } }
                }
            }
            button type="submit" { "Filter" }
        }
    }
}

/// Executions as a table (also a key's newest calls, `calls.rs`); keys by label where known.
pub(super) fn executions_table(list: &[ExecutionView], labels: &BTreeMap<i64, String>) -> Markup {
    html! {
        table.executions {
            caption { "Executions, newest first" }
            thead { tr {
                th scope="col" { "Execution" } th scope="col" { "State" } th scope="col" { "Tool" }
                th scope="col" { "Charged" } th scope="col" { "Key" } th scope="col" { "End user" }
                th scope="col" { "Started" }
            } }
            tbody {
                @for e in list {
                    tr {
                        td { a href={ "/dashboard/executions/" (e.id) } { code { (e.id) } } }
                        td { (e.state) @if e.sandbox { " (sandbox)" } }
                        td { (e.tool) }
                        td.num { (dollars(e.charged_cents)) }
                        td { a href={ "/dashboard/keys/" (e.key_id) } { (key_name(labels, e.key_id)) } }
                        td.wrap { (e.end_user.as_deref().unwrap_or("")) }
                        td { (layout::when(&e.created_at)) }
                    }
                }
            }
        }
    }
}

fn pager(page: &ListPage, filter: &Filter) -> Markup {
    let with = |(name, cursor): (&str, i64)| {
        let cursor = cursor.to_string();
        let query = [("state", filter.state()), ("key_id", filter.key_id()), (name, Some(cursor.as_str()))];
        format!("{PATH}?{}#executions", layout::query_string(&query))
    };
    html! {
        nav.pager aria-label="Pages" {
            @if let Some(cursor) = page.previous_cursor { a href=(with(("ending_before", cursor))) { "Newer executions" } }
            @if let (true, Some(cursor)) = (page.has_more, page.next_cursor) {
                a href=(with(("starting_after", cursor))) { "Older executions" }
            }
        }
    }
}

/// An execution and its receipt.
pub async fn execution(State(state): State<SharedState>, browser: Browser, Path(id): Path<String>) -> Response {
    let reader = Reader::Session(browser.session.account.clone());
    let e = match app::executions::get(&state, &reader, &id).await {
        Ok(found) => found.execution,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let body = html! {
        dl {
            dt { "State" } dd { (e.state) @if e.sandbox { " (sandbox: nothing charged)" } }
            dt { "Tool" } dd { (e.tool) }
            dt { "Key" } dd { a href={ "/dashboard/keys/" (e.key_id) } { "key " (e.key_id) } }
            dt { "End user" } dd.wrap { (e.end_user.as_deref().unwrap_or("none named")) }
            dt { "Held" } dd { (e.held_micros) " micros" }
            dt { "Charged" } dd { (e.charged_micros) " micros (" (dollars(e.charged_cents)) ")" }
            dt { "Started" } dd { (layout::when(&e.created_at)) }
            dt { "Finished" } dd { @if let Some(at) = &e.finished_at { (layout::when(at)) } @else { "not yet" } }
        }
        h2 { "Receipt" }
        @match &e.receipt {
            Some(receipt) => {
                dl.receipt {
                    dt { "Receipt" } dd { code { (receipt.id) } }
                    dt { "Charged" } dd { (receipt.charged_micros) " micros" }
                    @if let Some(user) = &receipt.end_user { dt { "End user" } dd.wrap { (user) } }
                    dt { "Issued" } dd { (layout::when(&receipt.created_at)) }
                }
            }
            None => { p { "No receipt: nothing was charged." } }
        }
        p { a href={ (PATH) "#executions" } { "All executions" } }
    };
    layout::page(&state, &browser, PATH, &format!("Execution {}", e.id), body).into_response()
}

//! The keys table: every key of the account as `GET /v1/api/keys` lists it (`app::keys::list`
//! with the member's session, the API's cursors for paging), with how much of each cap is
//! spent as a `<meter>` (its numbers written beside it, so it reads without colour); and
//! creating a key (`app::keys::create`), whose raw key is shown on that one answer only.

use super::key_filter::{KeyFilter, MAX_KEYS};
use super::session::{Browser, Submitted};
use super::{layout, policy};
use crate::app;
use crate::error::ApiError;
use crate::state::SharedState;
use crate::wire::keys::KeyView;
use crate::wire::{ListPage, ListQuery};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use visa_core::money::format_cents_as_dollars as dollars;
use visa_core::pagination::{Cursor, MAX_LIMIT, PageRequest};
use visa_core::role::Permission;

const NEW: &str = "/dashboard/keys/new";

pub async fn list(
    State(state): State<SharedState>,
    browser: Browser,
    Query(filter): Query<KeyFilter>,
    query: ListQuery,
) -> Response {
    let tools: Vec<String> = state.catalog.tools().iter().map(|t| t.id.clone()).collect();
    let listing =
        if filter.active() { filtered(&state, &browser, &filter).await } else { paged(&state, &browser, query).await };
    let listing = match listing {
        Ok(listing) => listing,
        Err(e) => return layout::refused(&state, &browser, super::paths::KEYS, e),
    };
    let body = html! {
        @if browser.session.role.allows(Permission::ManageKeys) { p { a.action href=(NEW) { "Create key" } } }
        (filter.form(&tools))
        (listing)
    };
    layout::page(&state, &browser, super::paths::KEYS, "Keys", body).into_response()
}

/// One page of the API's list, with its cursors.
async fn paged(state: &SharedState, browser: &Browser, query: ListQuery) -> Result<Markup, ApiError> {
    let listed = app::keys::list(state, &browser.session, query.page()?).await?;
    Ok(html! {
        @if listed.keys.is_empty() { p { "No keys yet." } } @else { (table(state, &listed.keys)) }
        (pager(&listed.page))
    })
}

/// Every key (up to `MAX_KEYS`) through the API's list, narrowed and ordered by `filter`.
async fn filtered(state: &SharedState, browser: &Browser, filter: &KeyFilter) -> Result<Markup, ApiError> {
    let mut all = Vec::new();
    let mut cursor = None;
    let more = loop {
        let page = PageRequest { limit: MAX_LIMIT, cursor: cursor.map_or(Cursor::Start, Cursor::StartingAfter) };
        let listed = app::keys::list(state, &browser.session, page).await?;
        all.extend(listed.keys);
        match listed.page.next_cursor.filter(|_| listed.page.has_more) {
            Some(next) if all.len() < MAX_KEYS => cursor = Some(next),
            Some(_) => break true,
            None => break false,
        }
    };
    let kept = filter.apply(all, state.now());
    Ok(html! {
        p role="status" {
            (kept.len()) " matching " @if kept.len() == 1 { "key" } @else { "keys" }
            @if more { " among the newest " (MAX_KEYS) " (older keys are not searched)" }
        }
        @if !kept.is_empty() { (table(state, &kept)) }
    })
}

/// A cap and what is spent of it: the meter and the numbers.
fn cap_use(spent_cents: i64, cap_cents: Option<i64>) -> Markup {
    html! {
        @match cap_cents {
            Some(cap) => {
                meter min="0" max=(cap.max(1)) value=(spent_cents.min(cap)) { (dollars(spent_cents)) " of " (dollars(cap)) }
                " " (dollars(spent_cents)) " of " (dollars(cap))
            }
            None => { (dollars(spent_cents)) " (no cap)" }
        }
    }
}

fn table(state: &SharedState, keys: &[KeyView]) -> Markup {
    // In preview calls count toward the caps at catalog price but nothing is charged: the
    // columns say "counted", never "spent".
    let preview = state.environment == visa_core::key::Environment::Preview;
    let (today, total) = if preview {
        ("Counted today (not charged) / daily cap", "Counted in total (not charged) / total cap")
    } else {
        ("Spent today / daily cap", "Spent in total / total cap")
    };
    html! {
        table {
            caption { "Keys of this account, newest first" }
            thead {
                tr {
                    th scope="col" { "Label" } th scope="col" { "Owner" } th scope="col" { "Key" } th scope="col" { "Environment" }
                    th scope="col" { "Status" } th scope="col" { "Tools" } th scope="col" { (today) }
                    th scope="col" { (total) } th scope="col" { "Expires" } th scope="col" { "Last used" }
                    th scope="col" { "Created" }
                }
            }
            tbody {
                @for key in keys {
                    tr.revoked[key.status == "revoked"] {
                        td.wrap { a href={ "/dashboard/keys/" (key.id) } { (key.label) } }
                        td { (key.owner) }
                        td.wrap { code { (key.key_prefix) } }
                        td { (key.environment) }
                        td { span.status { (key.status) } }
                        td.wrap {
                            @if key.tool_scope == "all_supported_tools" { "all" }
                            @else { (key.allowed_tools.join(", ")) }
                        }
                        td.num { (cap_use(key.spent_today_cents, Some(key.daily_cap_cents))) }
                        td.num { (cap_use(key.spent_total_cents, key.total_cap_cents)) }
                        td { @if let Some(at) = &key.expires_at { (layout::when(at)) } @else { "never" } }
                        td {
                            @match (&key.last_used_at, &key.last_used_ip) {
                                (Some(at), Some(ip)) => { (layout::when(at)) " from " (ip) }
                                (Some(at), None) => { (layout::when(at)) }
                                _ => { "never" }
                            }
                        }
                        td { (layout::when(&key.created_at)) }
                    }
                }
            }
        }
    }
}

/// Older / newer links carrying the API's cursors.
fn pager(page: &ListPage) -> Markup {
    html! {
        nav.pager aria-label="Pages" {
            @if let Some(cursor) = page.previous_cursor { a href={ "/dashboard/keys?ending_before=" (cursor) } { "Newer keys" } }
            @if let (true, Some(cursor)) = (page.has_more, page.next_cursor) {
                a href={ "/dashboard/keys?starting_after=" (cursor) } { "Older keys" }
            }
        }
    }
}

pub async fn new(State(state): State<SharedState>, browser: Browser) -> Response {
    let body = policy::form(&state, "/dashboard/keys", &browser.csrf, None, "Create key");
    layout::page(&state, &browser, super::paths::KEYS, "Create a key", body).into_response()
}

pub async fn create(State(state): State<SharedState>, Submitted { browser, fields }: Submitted) -> Response {
    let request = match policy::Policy::read(&fields) {
        Ok(policy) => policy.into_create(),
        Err(e) => return layout::refused(&state, &browser, NEW, e),
    };
    let created = match app::keys::create(&state, &browser.session, request).await {
        Ok(created) => created,
        Err(e) => return layout::refused(&state, &browser, NEW, e),
    };
    let body = raw_key_shown_once(&created.raw_key, &created.key);
    (StatusCode::CREATED, layout::page(&state, &browser, super::paths::KEYS, "Key created", body)).into_response()
}

/// The one showing of a raw key (a new key, or a rotation's new secret). The page is never
/// cached (`Cache-Control: no-store`) and the key is in no URL.
pub fn raw_key_shown_once(raw_key: &str, key: &KeyView) -> Markup {
    html! {
        p.notice role="status" {
            strong { "Copy this key now: it is shown only once." }
            " Store it in your secret manager; Visa Keys keeps only its hash."
        }
        label for="raw-key" { "Key for " (key.label) }
        input #raw-key.raw-key type="text" readonly value=(raw_key) size="64";
        button type="button" data-copy="raw-key" { "Copy key" }
        p { a href={ "/dashboard/keys/" (key.id) } { "Go to the key" } " · " a href=(super::paths::KEYS) { "All keys" } }
    }
}

//! The keys table: every key of the account as `GET /v1/api/keys` lists it (`routes::keys::list`
//! with the member's session, the API's cursors for paging), with how much of each cap is
//! spent as a `<meter>` (its numbers written beside it, so it reads without colour).

use super::layout;
use super::session::Browser;
use crate::routes::keys::{self, KeyView};
use crate::routes::{ListPage, ListQuery};
use crate::state::SharedState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

pub async fn list(State(state): State<SharedState>, browser: Browser, query: ListQuery) -> Response {
    let listed = match keys::list(State(state.clone()), browser.session.clone(), query).await {
        Ok(axum::Json(listed)) => listed,
        Err(e) => return e.into_response(),
    };
    let body = html! {
        @if listed.keys.is_empty() {
            p { "No keys yet." }
        } @else {
            (table(&listed.keys))
        }
        (pager(&listed.page))
    };
    layout::page(&state, &browser, super::HOME, "Keys", body).into_response()
}

fn dollars(cents: i64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
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

fn table(keys: &[KeyView]) -> Markup {
    html! {
        table {
            caption { "Keys of this account, newest first" }
            thead {
                tr {
                    th scope="col" { "Label" } th scope="col" { "Key" } th scope="col" { "Environment" }
                    th scope="col" { "Status" } th scope="col" { "Tools" } th scope="col" { "Today / daily cap" }
                    th scope="col" { "Total / total cap" } th scope="col" { "Expires" } th scope="col" { "Last used" }
                    th scope="col" { "Created" }
                }
            }
            tbody {
                @for key in keys {
                    tr {
                        td { (key.label) }
                        td { code { (key.key_prefix) } }
                        td { (key.environment) }
                        td { (key.status) }
                        td {
                            @if key.tool_scope == "all_supported_tools" { "all" }
                            @else { (key.allowed_tools.join(", ")) }
                        }
                        td.num { (cap_use(key.spent_today_cents, Some(key.daily_cap_cents))) }
                        td.num { (cap_use(key.spent_total_cents, key.total_cap_cents)) }
                        td { (key.expires_at.as_deref().unwrap_or("never")) }
                        td {
                            @match (&key.last_used_at, &key.last_used_ip) {
                                (Some(at), Some(ip)) => { (at) " from " (ip) }
                                (Some(at), None) => { (at) }
                                _ => { "never" }
                            }
                        }
                        td { (key.created_at) }
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

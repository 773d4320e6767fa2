//! The audit log: `GET /v1/api/audit` (`app::audit::list` with the member's session) as a
//! table — time, what happened as a sentence (`audit_text`: keys and members by name), each
//! changed field before → after in words and money, the IP and a short user agent — with the API's filters (action, target, since) and cursors. On the first page the table
//! follows new entries live: `app.js` re-fetches `/dashboard/audit/entries` every few seconds.

use super::audit_text::{self, Names};
use super::layout::{self, given};
use super::session::Browser;
use crate::app;
use crate::error::ApiError;
use crate::state::SharedState;
use crate::wire::ListPage;
use crate::wire::audit::{AuditEntryView, AuditQuery};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use visa_core::pagination::PageRequest;

pub use super::paths::AUDIT as PATH;

/// The actions the server records, offered in the filter.
const ACTIONS: [&str; 22] = [
    "account.approval_changed",
    "account.created",
    "account.credited",
    "admin_key.created",
    "admin_key.revoked",
    "key.created",
    "key.revoked",
    "key.revoked_leaked",
    "key.revoked_oauth_replay",
    "key.rotated",
    "key.secret_revoked",
    "key.updated",
    "member.invited",
    "member.joined",
    "member.password_changed",
    "member.removed",
    "member.role_changed",
    "oauth.approved",
    "oauth.refreshed",
    "oauth.tokens_issued",
    "session.created",
    "session.ended",
];

/// The filters and cursors as the page's query string carries them.
#[derive(Default, Deserialize)]
pub struct Filter {
    action: Option<String>,
    target: Option<String>,
    /// A `datetime-local` value, read as UTC.
    since: Option<String>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

impl Filter {
    fn api_query(&self) -> AuditQuery {
        let since = given(&self.since).map(|t| if t.len() == 16 { format!("{t}:00Z") } else { format!("{t}Z") });
        AuditQuery::new(given(&self.action).map(str::to_owned), given(&self.target).map(str::to_owned), since)
    }

    /// The filters and, if given, a cursor (`name`, `id`), as a query string.
    fn query(&self, cursor: Option<(&str, &str)>) -> String {
        let mut pairs =
            vec![("action", given(&self.action)), ("target", given(&self.target)), ("since", given(&self.since))];
        pairs.extend(cursor.map(|(name, id)| (name, Some(id))));
        layout::query_string(&pairs)
    }

    /// The page the filter's cursors ask for (25 entries, the API's default).
    fn page(&self) -> Result<PageRequest, ApiError> {
        Ok(PageRequest::parse(None, given(&self.starting_after), given(&self.ending_before))?)
    }

    fn first_page(&self) -> bool {
        given(&self.starting_after).is_none() && given(&self.ending_before).is_none()
    }
}

/// The entries the filter selects, as the table and its pager; or the API's refusal.
async fn entries(state: &SharedState, browser: &Browser, filter: &Filter) -> Result<Markup, ApiError> {
    let listed = app::audit::list(state, &browser.session, filter.page()?, filter.api_query()).await?;
    let names = names(state, browser, &listed.entries).await;
    Ok(html! {
        @if listed.entries.is_empty() { p { "No entries." } } @else { (table(&listed.entries, &names)) }
        (pager(&listed.page, filter))
    })
}

pub async fn show(State(state): State<SharedState>, browser: Browser, Query(filter): Query<Filter>) -> Response {
    let listed = match entries(&state, &browser, &filter).await {
        Ok(listed) => listed,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let live = format!("{PATH}/entries?{}", filter.query(None));
    let body = html! {
        (filter_form(&filter))
        @if filter.first_page() {
            p.live { "New entries appear here as they happen." }
            div #audit-entries data-refresh=(live) aria-live="polite" { (listed) }
        } @else {
            div #audit-entries { (listed) }
        }
    };
    layout::page(&state, &browser, PATH, "Audit log", body).into_response()
}

/// The table alone, for the live refresh.
pub async fn fragment(State(state): State<SharedState>, browser: Browser, Query(filter): Query<Filter>) -> Response {
    match entries(&state, &browser, &filter).await {
        Ok(listed) => listed.into_response(),
        Err(e) => html! { p.error role="alert" { (e.0.message) } }.into_response(),
    }
}

fn filter_form(filter: &Filter) -> Markup {
    html! {
        form.filters method="get" action=(PATH) {
            label for="action" { "Action" }
            select #action name="action" {
                option value="" { "any" }
                @for action in ACTIONS {
                    @if given(&filter.action) == Some(action) { option value=(action) selected { (action) } }
                    @else { option value=(action) { (action) } }
                }
            }
            label for="target" { "Target (e.g. key:12, member:3)" }
            input #target name="target" type="text" value=(given(&filter.target).unwrap_or(""));
            label for="since" { "Since (UTC)" }
            input #since name="since" type="datetime-local" value=(given(&filter.since).unwrap_or(""));
            button type="submit" { "Filter" }
        }
    }
}

/// Key labels and member logins for the entries' targets, read through the API's own lists
/// with the member's session (keys as the spend page names them), so the log reads by name; an
/// id not found stays an id.
async fn names(state: &SharedState, browser: &Browser, list: &[AuditEntryView]) -> Names {
    let mut names = Names::default();
    if list.iter().any(|e| e.target.starts_with("key:")) {
        names.keys = super::spend::key_labels(state, browser).await;
    }
    if list.iter().any(|e| e.target.starts_with("member:"))
        && let Ok(listed) = app::members::list(state, &browser.session).await
    {
        names.members = listed.members.into_iter().map(|m| (m.id, m.login)).collect();
    }
    names
}

fn table(list: &[AuditEntryView], names: &Names) -> Markup {
    html! {
        table.audit {
            caption { "Audit log, newest first" }
            thead { tr {
                th scope="col" { "Time" } th scope="col" { "What happened" } th scope="col" { "Changes" }
                th scope="col" { "From" }
            } }
            tbody {
                @for entry in list {
                    tr {
                        td { (layout::when(&entry.created_at)) }
                        td { (audit_text::sentence(entry, names)) br; code.action { (entry.action) } }
                        td { (audit_text::changes(entry)) }
                        td.origin { (audit_text::origin(entry)) }
                    }
                }
            }
        }
    }
}

fn pager(page: &ListPage, filter: &Filter) -> Markup {
    let with = |name: &str, cursor: i64| format!("{PATH}?{}", filter.query(Some((name, &cursor.to_string()))));
    html! {
        nav.pager aria-label="Pages" {
            @if let Some(cursor) = page.previous_cursor { a href=(with("ending_before", cursor)) { "Newer entries" } }
            @if let (true, Some(cursor)) = (page.has_more, page.next_cursor) {
                a href=(with("starting_after", cursor)) { "Older entries" }
            }
        }
    }
}

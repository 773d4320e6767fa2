//! A key's newest calls on its page, from `GET /v1/api/executions?key_id=` (the member's
//! session), refreshed every second by `app.js` from `/dashboard/keys/{id}/calls`: a call shows
//! on its key's page within a second of its hold (executions are written with the hold, not
//! with the per-second usage flush the traffic chart waits for).

use super::session::Browser;
use crate::app;
use crate::auth::Reader;
use crate::state::SharedState;
use crate::wire::executions::StateQuery;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use visa_core::pagination::{Cursor, PageRequest};

/// How many of the key's calls the page shows.
const NEWEST: u32 = 10;

/// The key's newest calls, or the API's refusal as a line.
async fn newest(state: &SharedState, browser: &Browser, id: &str) -> Markup {
    let reader = Reader::Session(browser.session.account.clone());
    let page = PageRequest { limit: NEWEST, cursor: Cursor::Start };
    match app::executions::list(state, &reader, page, &StateQuery::of(None, Some(id))).await {
        Ok(listed) if listed.executions.is_empty() => html! { p { "No calls yet." } },
        Ok(listed) => super::spend::executions_table(&listed.executions, &Default::default()),
        Err(e) => html! { p.error role="alert" { (e.0.message) } },
    }
}

/// The section of a key's page.
pub async fn section(state: &SharedState, browser: &Browser, id: &str) -> Markup {
    let source = format!("/dashboard/keys/{id}/calls");
    html! {
        section aria-labelledby="calls" {
            h2 #calls { "Newest calls" }
            div #key-calls data-refresh=(source) data-interval="1000" aria-live="polite" { (newest(state, browser, id).await) }
        }
    }
}

/// The fragment alone, for the page's refresh.
pub async fn fragment(State(state): State<SharedState>, browser: Browser, Path(id): Path<String>) -> Response {
    newest(&state, &browser, &id).await.into_response()
}

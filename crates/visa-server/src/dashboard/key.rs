//! A key's page: its policy (editable with the API's validation, `app::keys::update`), its
//! secrets (prefix, created, expiry, last used time and IP, status), rotation with a grace
//! period (`app::keys::rotate`, the new raw key shown once), revoking one old secret early
//! (`revoke_secret`), and revoking the key after a confirmation (`revoke`). Controls the
//! member's role may not use are not rendered; the handlers refuse them anyway.

use super::keys::raw_key_shown_once;
use super::session::{Browser, Submitted};
use super::{layout, policy, usage};
use crate::app;
use crate::state::SharedState;
use crate::wire::keys::{KeyView, RotateKeyRequest, key_id, secret_id};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use visa_core::role::Permission;

fn path_of(id: &str) -> String {
    format!("/dashboard/keys/{id}")
}

/// The key as the API answers it, or the API's refusal as a page.
async fn fetch(state: &SharedState, browser: &Browser, id: &str) -> Result<KeyView, Response> {
    match async { app::keys::get(state, &browser.session, key_id(id)?).await }.await {
        Ok(found) => Ok(found.key),
        Err(e) => Err(layout::refused(state, browser, super::paths::KEYS, e)),
    }
}

pub async fn show(
    State(state): State<SharedState>,
    browser: Browser,
    Path(id): Path<String>,
    Query(range): Query<usage::Range>,
) -> Response {
    let key = match fetch(&state, &browser, &id).await {
        Ok(key) => key,
        Err(refused) => return refused,
    };
    let traffic = usage::section(&state, &browser, &id, &range).await;
    let calls = super::calls::section(&state, &browser, &id).await;
    let body = page_body(&state, &browser, &key, Some(html! { (calls) (traffic) }));
    layout::page(&state, &browser, super::paths::KEYS, &format!("Key {}", key.label), body).into_response()
}

fn page_body(state: &SharedState, browser: &Browser, key: &KeyView, notice: Option<Markup>) -> Markup {
    let manage = browser.session.role.allows(Permission::ManageKeys) && key.status == "active";
    let path = path_of(&key.id.to_string());
    html! {
        @if let Some(notice) = notice { (notice) }
        p { "Status: " strong { (key.status) } " · environment " (key.environment) " · created " (layout::when(&key.created_at)) }
        h2 { "Secrets" }
        table {
            caption { "Secrets of this key, newest first" }
            thead { tr {
                th scope="col" { "Prefix" } th scope="col" { "Status" } th scope="col" { "Created" }
                th scope="col" { "Expires" } th scope="col" { "Last used" }
                @if manage { th scope="col" { "Action" } }
            } }
            tbody {
                @for secret in &key.secrets {
                    tr {
                        td { code { (secret.key_prefix) } }
                        td { (secret.status) }
                        td { (layout::when(&secret.created_at)) }
                        td { @if let Some(at) = &secret.expires_at { (layout::when(at)) } @else { "never" } }
                        td {
                            @match (&secret.last_used_at, &secret.last_used_ip) {
                                (Some(at), Some(ip)) => { (layout::when(at)) " from " (ip) }
                                (Some(at), None) => { (layout::when(at)) }
                                _ => { "never" }
                            }
                        }
                        @if manage {
                            td {
                                @if secret.status == "expiring" {
                                    form method="post" action={ (path) "/secrets/" (secret.id) "/revoke" } {
                                        input type="hidden" name="csrf" value=(browser.csrf);
                                        button type="submit" { "Revoke this secret now" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if manage {
            h2 { "Rotate" }
            form method="post" action={ (path) "/rotate" } {
                input type="hidden" name="csrf" value=(browser.csrf);
                label for="grace" { "Keep the old secret working for" }
                select #grace name="grace" {
                    option value="0" { "no grace: end it now" }
                    option value="600" { "10 minutes" }
                    option value="3600" selected { "1 hour" }
                    option value="86400" { "1 day" }
                    option value="604800" { "7 days" }
                }
                button type="submit" { "Rotate" }
            }
            h2 { "Policy" }
            (policy::form(state, &path, &browser.csrf, Some(key), "Save policy"))
            h2 { "Revoke" }
            p { a.danger href={ (path) "/revoke" } { "Revoke this key…" } }
        } @else {
            h2 { "Policy" }
            (policy_table(key))
        }
    }
}

fn policy_table(key: &KeyView) -> Markup {
    html! {
        dl {
            dt { "Tools" } dd { @if key.tool_scope == "restricted" { (key.allowed_tools.join(", ")) } @else { "all" } }
            dt { "Daily cap" } dd { (visa_core::money::format_cents_as_dollars(key.daily_cap_cents)) }
            dt { "Total cap" } dd { (key.total_cap_cents.map(visa_core::money::format_cents_as_dollars).unwrap_or_else(|| "none".into())) }
            dt { "Allowed networks" } dd { @if key.allowed_cidrs.is_empty() { "any" } @else { (key.allowed_cidrs.join(", ")) } }
            dt { "Expires" } dd { @if let Some(at) = &key.expires_at { (layout::when(at)) } @else { "never" } }
            dt { "Rate limit" } dd { (layout::count(key.rate_limit_per_second, "request")) " per second" }
            dt { "Read-only" } dd { @if key.read_only { "yes" } @else { "no" } }
            dt { "Idempotency-Key" } dd { (key.idempotency) }
            dt { "Cap alert" } dd { "at " (key.cap_alert_percent) " % of a cap" }
            dt { "End user" } dd { (key.end_user) }
        }
    }
}

pub async fn update(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Submitted { browser, fields }: Submitted,
) -> Response {
    let path = path_of(&id);
    let request = match policy::Policy::read(&fields) {
        Ok(policy) => policy.into_update(),
        Err(e) => return layout::refused(&state, &browser, &path, e),
    };
    match async { app::keys::update(&state, &browser.session, key_id(&id)?, request).await }.await {
        Ok(_) => Redirect::to(&path).into_response(),
        Err(e) => layout::refused(&state, &browser, &path, e),
    }
}

pub async fn rotate(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Submitted { browser, fields }: Submitted,
) -> Response {
    let path = path_of(&id);
    let grace = match fields.integer("grace", "The grace period") {
        Ok(grace) => grace.and_then(|g| u32::try_from(g).ok()),
        Err(e) => return layout::refused(&state, &browser, &path, e),
    };
    let request = RotateKeyRequest { grace_period_seconds: grace };
    match async { app::keys::rotate(&state, &browser.session, key_id(&id)?, request).await }.await {
        Ok(rotated) => {
            let traffic = usage::section(&state, &browser, &rotated.key.id.to_string(), &usage::Range::default()).await;
            let notice = html! { (raw_key_shown_once(&rotated.raw_key, &rotated.key)) (traffic) };
            let body = page_body(&state, &browser, &rotated.key, Some(notice));
            layout::page(&state, &browser, super::paths::KEYS, &format!("Key {} rotated", rotated.key.label), body)
                .into_response()
        }
        Err(e) => layout::refused(&state, &browser, &path, e),
    }
}

pub async fn revoke_secret(
    State(state): State<SharedState>,
    Path((id, secret)): Path<(String, String)>,
    Submitted { browser, .. }: Submitted,
) -> Response {
    let path = path_of(&id);
    let revoked = async { app::keys::revoke_secret(&state, &browser.session, key_id(&id)?, secret_id(&secret)?).await };
    match revoked.await {
        Ok(_) => Redirect::to(&path).into_response(),
        Err(e) => layout::refused(&state, &browser, &path, e),
    }
}

/// Revoking asks first: this page, then its button.
pub async fn confirm_revoke(State(state): State<SharedState>, browser: Browser, Path(id): Path<String>) -> Response {
    let key = match fetch(&state, &browser, &id).await {
        Ok(key) => key,
        Err(refused) => return refused,
    };
    let message = html! { "Every secret of " strong { (key.label) } " stops working at once, on every node. This cannot be undone." };
    let action = format!("{}/revoke", path_of(&id));
    layout::confirm(
        &state,
        &browser,
        super::paths::KEYS,
        &format!("Revoke {}?", key.label),
        message,
        &action,
        "Revoke key",
    )
}

pub async fn revoke(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Submitted { browser, .. }: Submitted,
) -> Response {
    let path = path_of(&id);
    match async { app::keys::revoke(&state, &browser.session, key_id(&id)?).await }.await {
        Ok(_) => Redirect::to(&path).into_response(),
        Err(e) => layout::refused(&state, &browser, &path, e),
    }
}

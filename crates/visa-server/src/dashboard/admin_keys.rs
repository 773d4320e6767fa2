//! Admin keys: the account's keys for automation (`app::admin_keys::list`), creating one
//! (`create`: the raw key shown once, with how to use it) and revoking one after a
//! confirmation (`revoke`). Owners and admins manage them; other roles only see the list.

use super::layout;
use super::session::{Browser, Submitted};
use crate::app;
use crate::state::SharedState;
use crate::wire::admin_keys::{ADMIN_KEY_NOT_FOUND, AdminKeyView, CreateAdminKeyRequest, admin_key_id};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use visa_core::role::Permission;

pub use super::paths::ADMIN_KEYS as PATH;

pub async fn list(State(state): State<SharedState>, browser: Browser) -> Response {
    let listed = match app::admin_keys::list(&state, &browser.session).await {
        Ok(listed) => listed,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let manage = browser.session.role.allows(Permission::ManageMembers);
    let body = html! {
        p { "Admin keys let automation (a CI pipeline, a provisioning script) manage this account's tool keys and members "
            "as a session would, with " code { "Authorization: Bearer VisaKey_admin_…" } ". They never execute tools and cannot mint admin keys." }
        @if listed.admin_keys.is_empty() { p { "No admin keys." } } @else { (table(&listed.admin_keys, manage)) }
        @if manage {
            h2 { "Create an admin key" }
            form method="post" action=(PATH) {
                input type="hidden" name="csrf" value=(browser.csrf);
                label for="admin-label" { "Label" }
                input #admin-label name="label" type="text" required autocomplete="off";
                button type="submit" { "Create admin key" }
            }
        }
    };
    layout::page(&state, &browser, PATH, "Admin keys", body).into_response()
}

fn table(list: &[AdminKeyView], manage: bool) -> Markup {
    html! {
        table.admin-keys {
            caption { "Admin keys of this account, newest first" }
            thead { tr {
                th scope="col" { "Label" } th scope="col" { "Key" } th scope="col" { "Environment" } th scope="col" { "Status" }
                th scope="col" { "Created" } @if manage { th scope="col" { "Revoke" } }
            } }
            tbody {
                @for key in list {
                    tr {
                        td { (key.label) }
                        td { code { (key.key_prefix) } }
                        td { (key.environment) }
                        td { (key.status) @if let Some(at) = &key.revoked_at { " " (layout::when(at)) } }
                        td { (layout::when(&key.created_at)) }
                        @if manage {
                            td { @if key.status == "active" { a.danger href={ (PATH) "/" (key.id) "/revoke" } { "Revoke " (key.label) "…" } } }
                        }
                    }
                }
            }
        }
    }
}

pub async fn create(State(state): State<SharedState>, Submitted { browser, fields }: Submitted) -> Response {
    let request = CreateAdminKeyRequest { label: fields.get("label").to_owned() };
    let created = match app::admin_keys::create(&state, &browser.session, request).await {
        Ok(created) => created,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let body = html! {
        p.notice role="status" {
            strong { "Copy this admin key now: it is shown only once." }
            " Store it in your CI's secret store and send it as " code { "Authorization: Bearer <key>" }
            " (for visa-cli: " code { "VISA_SESSION_TOKEN" } ")."
        }
        label for="raw-key" { "Admin key " (created.admin_key.label) }
        input #raw-key.raw-key type="text" readonly value=(created.key) size="64";
        button type="button" data-copy="raw-key" { "Copy key" }
        p { a href=(PATH) { "All admin keys" } }
    };
    (StatusCode::CREATED, layout::page(&state, &browser, PATH, "Admin key created", body)).into_response()
}

pub async fn confirm_revoke(State(state): State<SharedState>, browser: Browser, Path(id): Path<String>) -> Response {
    let listed = match app::admin_keys::list(&state, &browser.session).await {
        Ok(listed) => listed,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let Some(key) = listed.admin_keys.iter().find(|k| k.id.to_string() == id) else {
        let missing = crate::error::ApiError::new(visa_core::ErrorCode::KeyNotFound, ADMIN_KEY_NOT_FOUND);
        return layout::refused(&state, &browser, PATH, missing);
    };
    let message = html! { "Revoke the admin key " strong { (key.label) } "? Automation using it is refused at once." };
    let action = format!("{PATH}/{id}/revoke");
    layout::confirm(&state, &browser, PATH, &format!("Revoke {}?", key.label), message, &action, "Revoke admin key")
}

pub async fn revoke(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Submitted { browser, .. }: Submitted,
) -> Response {
    match async { app::admin_keys::revoke(&state, &browser.session, admin_key_id(&id)?).await }.await {
        Ok(_) => Redirect::to(PATH).into_response(),
        Err(e) => layout::refused(&state, &browser, PATH, e),
    }
}

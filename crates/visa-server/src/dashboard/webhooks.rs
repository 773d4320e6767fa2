//! Webhooks: the account's endpoints (`app::webhooks::list`) with their state (enabled, or
//! disabled and why, or failing since when), adding one (its signing secret shown once), and
//! an endpoint's page: its delivery log (each attempt, its status or error, latency and the
//! start of the answer), sending a test event, replaying an event, enabling or disabling it,
//! rotating its secret (the new one shown once) and deleting it after a confirmation. Owners
//! and admins manage them; every member sees them and their log.

use super::form::Fields;
use super::layout;
use super::session::{Browser, Submitted};
use crate::app;
use crate::error::ApiError;
use crate::state::SharedState;
use crate::wire::webhooks::{
    CreateWebhookRequest, DeliveryView, ReplayRequest, UpdateWebhookRequest, WebhookView, webhook_id,
};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use visa_core::role::Permission;
use visa_store::events;

pub use super::paths::WEBHOOKS as PATH;

fn endpoint_path(id: i64) -> String {
    format!("{PATH}/{id}")
}

/// An endpoint's state in words: enabled, failing since, or disabled and why.
fn state_of(hook: &WebhookView) -> Markup {
    html! {
        @if !hook.enabled {
            span.disabled {
                "Disabled"
                @match hook.disabled_reason.as_deref() {
                    Some("gone") => { " (it answered 410 Gone)" }
                    Some("failing") => { " (every attempt failed for 5 days)" }
                    _ => { " (by a member)" }
                }
            }
        } @else if let Some(since) = &hook.failing_since {
            span.failing { "Failing since " (layout::when(since)) }
        } @else {
            "Enabled"
        }
    }
}

pub async fn list(State(state): State<SharedState>, browser: Browser) -> Response {
    let listed = match app::webhooks::list(&state, &browser.session).await {
        Ok(listed) => listed,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let manage = browser.session.role.allows(Permission::ManageWebhooks);
    let body = html! {
        p { "Endpoints receive signed events (Standard Webhooks): a low balance, a key near or at a cap, a key about to "
            "expire or revoked, a call waiting for an operator. " a href="/docs/webhooks.md" { "Event catalog and verifying signatures" } "." }
        @if listed.webhooks.is_empty() { p { "No endpoints." } } @else {
            table.webhooks {
                caption { "Webhook endpoints of this account" }
                thead { tr {
                    th scope="col" { "URL" } th scope="col" { "Events" } th scope="col" { "Description" }
                    th scope="col" { "State" } th scope="col" { "Created" }
                } }
                tbody {
                    @for hook in &listed.webhooks {
                        tr {
                            td { a href=(endpoint_path(hook.id)) { code { (hook.url) } } }
                            td { (hook.events.join(", ")) }
                            td { (hook.description) }
                            td { (state_of(hook)) }
                            td { (layout::when(&hook.created_at)) }
                        }
                    }
                }
            }
        }
        @if manage {
            h2 { "Add an endpoint" }
            form method="post" action=(PATH) {
                input type="hidden" name="csrf" value=(browser.csrf);
                label for="webhook-url" { "URL (https)" }
                input #webhook-url name="url" type="url" required placeholder="https://example.com/visa-webhooks";
                label for="webhook-description" { "Description" }
                input #webhook-description name="description" type="text" maxlength="500";
                fieldset {
                    legend { "Events" }
                    label { input type="checkbox" name="event" value="*" checked; " All events" }
                    @for kind in events::TYPES {
                        label.event { input type="checkbox" name="event" value=(kind); " " code { (kind) } }
                    }
                }
                button type="submit" { "Add endpoint" }
            }
        }
    };
    layout::page(&state, &browser, PATH, "Webhooks", body).into_response()
}

/// The signing secret, shown this once, and how to use it.
fn secret_notice(secret: &str, id: i64) -> Markup {
    html! {
        p.notice role="status" {
            strong { "Copy this signing secret now: it is shown only once." }
            " Verify each delivery's " code { "webhook-signature" } " with it (any Standard Webhooks library)."
        }
        label for="webhook-secret" { "Signing secret" }
        input #webhook-secret.raw-key type="text" readonly value=(secret) size="64";
        button type="button" data-copy="webhook-secret" { "Copy secret" }
        p { a href=(endpoint_path(id)) { "The endpoint and its deliveries" } }
    }
}

pub async fn create(State(state): State<SharedState>, Submitted { browser, fields }: Submitted) -> Response {
    let request = CreateWebhookRequest {
        url: fields.get("url").trim().to_owned(),
        events: fields.all("event"),
        description: Some(fields.get("description").to_owned()),
    };
    match app::webhooks::create(&state, &browser.session, request).await {
        Ok(created) => {
            let body = secret_notice(&created.secret, created.webhook.id);
            (StatusCode::CREATED, layout::page(&state, &browser, PATH, "Endpoint added", body)).into_response()
        }
        Err(e) => layout::refused(&state, &browser, PATH, e),
    }
}

pub async fn show(State(state): State<SharedState>, browser: Browser, Path(id): Path<String>) -> Response {
    let found = async {
        let id = webhook_id(&id)?;
        let hook = app::webhooks::get(&state, &browser.session, id).await?.webhook;
        let log = app::webhooks::deliveries(&state, &browser.session, id).await?.deliveries;
        Ok::<_, ApiError>((hook, log))
    }
    .await;
    let (hook, log) = match found {
        Ok(found) => found,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let manage = browser.session.role.allows(Permission::ManageWebhooks);
    let here = endpoint_path(hook.id);
    let button = |action: &str, label: &str| {
        html! {
            form.inline method="post" action={ (here) "/" (action) } {
                input type="hidden" name="csrf" value=(browser.csrf);
                button type="submit" { (label) }
            }
        }
    };
    let body = html! {
        dl {
            dt { "URL" } dd { code { (hook.url) } }
            dt { "Events" } dd { (hook.events.join(", ")) }
            dt { "Description" } dd { (hook.description) }
            dt { "State" } dd { (state_of(&hook)) }
            dt { "Created" } dd { (layout::when(&hook.created_at)) }
        }
        @if manage {
            div.actions {
                (button("test", "Send test event"))
                @if hook.enabled { (button("disable", "Disable")) } @else { (button("enable", "Enable")) }
                (button("rotate-secret", "Rotate secret"))
                a.danger href={ (here) "/delete" } { "Delete endpoint…" }
            }
        }
        h2 { "Delivery log" }
        (delivery_log(&log, manage.then_some((here.as_str(), browser.csrf.as_str()))))
        p { a href=(PATH) { "All endpoints" } }
    };
    layout::page(&state, &browser, PATH, &format!("Endpoint {}", hook.url), body).into_response()
}

/// The attempts, newest first; with `replay` (the endpoint's path and the CSRF token), a
/// button beside each event to send it again.
fn delivery_log(log: &[DeliveryView], replay: Option<(&str, &str)>) -> Markup {
    html! {
        @if log.is_empty() { p { "No attempts yet." } } @else {
            table.deliveries {
                caption { "Attempts, newest first (the last 100)" }
                thead { tr {
                    th scope="col" { "Time" } th scope="col" { "Event" } th scope="col" { "Attempt" }
                    th scope="col" { "Result" } th scope="col" { "Latency" } th scope="col" { "Answer (first KB)" }
                    @if replay.is_some() { th scope="col" { "Replay" } }
                } }
                tbody {
                    @for attempt in log {
                        tr {
                            td { (layout::when(&attempt.created_at)) }
                            td { code { (attempt.event_type) } br; small { (attempt.event_id) } }
                            td { (attempt.attempt) }
                            td {
                                @match (attempt.status, &attempt.error) {
                                    (Some(status), _) => { span class=(if (200..300).contains(&status) { "ok" } else { "failed" }) { "HTTP " (status) } }
                                    (None, Some(error)) => { span.failed { (error) } }
                                    (None, None) => { "—" }
                                }
                            }
                            td { (attempt.latency_ms) " ms" }
                            td { code.answer { (attempt.response) } }
                            @if let Some((here, csrf)) = replay {
                                td {
                                    form.inline method="post" action={ (here) "/replay" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="event_id" value=(attempt.event_id);
                                        button type="submit" { "Replay" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What a button on an endpoint's page asks for.
enum Action {
    Test,
    Enable(bool),
    Replay,
    Rotate,
    Delete,
}

async fn act(state: &SharedState, browser: &Browser, id: &str, action: Action, fields: &Fields) -> Response {
    let done = async {
        let id = webhook_id(id)?;
        let session = &browser.session;
        match action {
            Action::Test => app::webhooks::test(state, session, id).await.map(drop)?,
            Action::Enable(enabled) => {
                let patch = UpdateWebhookRequest { enabled: Some(enabled), ..Default::default() };
                app::webhooks::update(state, session, id, patch).await.map(drop)?
            }
            Action::Replay => {
                let request = ReplayRequest { event_id: Some(fields.get("event_id").to_owned()), since: None };
                app::webhooks::replay(state, session, id, request).await.map(drop)?
            }
            Action::Rotate => {
                let rotated = app::webhooks::rotate_secret(state, session, id).await?;
                let body = html! {
                    p { "The old secret keeps signing beside the new one until " (layout::when(&rotated.previous_secret_expires_at)) "." }
                    (secret_notice(&rotated.secret, rotated.webhook.id))
                };
                return Ok(layout::page(state, browser, PATH, "Secret rotated", body).into_response());
            }
            Action::Delete => {
                app::webhooks::delete(state, session, id).await?;
                return Ok(Redirect::to(PATH).into_response());
            }
        }
        Ok::<_, ApiError>(Redirect::to(&endpoint_path(id.get())).into_response())
    }
    .await;
    done.unwrap_or_else(|e| layout::refused(state, browser, PATH, e))
}

pub async fn test(State(state): State<SharedState>, Path(id): Path<String>, form: Submitted) -> Response {
    act(&state, &form.browser, &id, Action::Test, &form.fields).await
}

pub async fn enable(State(state): State<SharedState>, Path(id): Path<String>, form: Submitted) -> Response {
    act(&state, &form.browser, &id, Action::Enable(true), &form.fields).await
}

pub async fn disable(State(state): State<SharedState>, Path(id): Path<String>, form: Submitted) -> Response {
    act(&state, &form.browser, &id, Action::Enable(false), &form.fields).await
}

pub async fn replay(State(state): State<SharedState>, Path(id): Path<String>, form: Submitted) -> Response {
    act(&state, &form.browser, &id, Action::Replay, &form.fields).await
}

pub async fn rotate(State(state): State<SharedState>, Path(id): Path<String>, form: Submitted) -> Response {
    act(&state, &form.browser, &id, Action::Rotate, &form.fields).await
}

pub async fn delete(State(state): State<SharedState>, Path(id): Path<String>, form: Submitted) -> Response {
    act(&state, &form.browser, &id, Action::Delete, &form.fields).await
}

pub async fn confirm_delete(State(state): State<SharedState>, browser: Browser, Path(id): Path<String>) -> Response {
    let found = async { app::webhooks::get(&state, &browser.session, webhook_id(&id)?).await }.await;
    let hook = match found {
        Ok(found) => found.webhook,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let message = html! { "Delete the endpoint " code { (hook.url) } "? Its pending deliveries are dropped." };
    let action = format!("{}/delete", endpoint_path(hook.id));
    layout::confirm(&state, &browser, &endpoint_path(hook.id), "Delete endpoint?", message, &action, "Delete endpoint")
}

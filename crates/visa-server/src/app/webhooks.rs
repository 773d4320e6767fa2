//! Webhook endpoints (`/v1/api/webhooks`): owners and admins create, change, rotate, delete,
//! replay and test them; every member reads them and their delivery log. An endpoint's URL is
//! checked against the SSRF rules as it is set (`webhooks::ssrf`), its events against the
//! catalog (`visa_store::events::TYPES`); its secret is shown once, at creation and at each
//! rotation, after which the old one keeps signing beside it for `ROTATION_OVERLAP`.

use crate::auth::Session;
use crate::error::{ApiError, ApiResult, not_found_as};
use crate::state::AppState;
use crate::webhooks::signing::WebhookKey;
use crate::wire::rfc3339;
use crate::wire::webhooks::*;
use serde_json::json;
use visa_core::ErrorCode;
use visa_core::id::WebhookId;
use visa_core::role::Permission;
use visa_store::{NewWebhook, Replay, StoreError, WebhookPatch, events};

/// How long a rotated-out secret still signs deliveries, so receivers can switch over.
pub const ROTATION_OVERLAP: time::Duration = time::Duration::hours(24);
/// The longest description kept.
const MAX_DESCRIPTION: usize = 500;
/// The most attempts `deliveries` lists.
const LOG_LIMIT: u32 = 100;

fn missing(e: StoreError) -> ApiError {
    not_found_as(ErrorCode::NotFound, WEBHOOK_NOT_FOUND)(e)
}

async fn checked_url(state: &AppState, url: &str) -> ApiResult<String> {
    state.webhooks.destinations.check_url(url).await.map(|u| u.to_string()).map_err(ApiError::invalid)
}

fn checked_events(events: Vec<String>) -> ApiResult<Vec<String>> {
    if events.is_empty() {
        return Err(ApiError::invalid("events must name at least one event type, or \"*\" for all"));
    }
    if let Some(unknown) = events.iter().find(|e| *e != "*" && !events::TYPES.contains(&e.as_str())) {
        return Err(ApiError::invalid(format!(
            "events: {unknown} is not an event type ({})",
            events::TYPES.join(", ")
        )));
    }
    let mut events = events;
    events.sort();
    events.dedup();
    Ok(events)
}

fn checked_description(description: String) -> ApiResult<String> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::invalid(format!("description is longer than {MAX_DESCRIPTION} characters")));
    }
    Ok(description)
}

pub async fn create(state: &AppState, caller: &Session, req: CreateWebhookRequest) -> ApiResult<WebhookCreated> {
    caller.require(Permission::ManageWebhooks)?;
    let new = NewWebhook {
        account_id: caller.account.id,
        url: checked_url(state, &req.url).await?,
        events: checked_events(req.events)?,
        description: checked_description(req.description.unwrap_or_default())?,
        secret_salt: WebhookKey::new_salt(),
    };
    let created = state.store.create_webhook(new, caller.audit(state)).await?;
    tracing::info!(webhook = %created.id, account = %caller.account.login, "webhook endpoint created");
    Ok(WebhookCreated {
        success: true,
        secret: state.webhooks.key.secret(&created.secret_salt),
        webhook: WebhookView::from(&created),
    })
}

pub async fn list(state: &AppState, caller: &Session) -> ApiResult<WebhookList> {
    caller.require(Permission::Read)?;
    let endpoints = state.store.list_webhooks(caller.account.id).await?;
    Ok(WebhookList {
        success: true,
        object: "list".into(),
        webhooks: endpoints.iter().map(WebhookView::from).collect(),
    })
}

pub async fn get(state: &AppState, caller: &Session, id: WebhookId) -> ApiResult<WebhookAnswer> {
    caller.require(Permission::Read)?;
    let endpoint = state.store.get_webhook(caller.account.id, id).await.map_err(missing)?;
    Ok(WebhookAnswer { success: true, webhook: WebhookView::from(&endpoint) })
}

pub async fn update(
    state: &AppState,
    caller: &Session,
    id: WebhookId,
    req: UpdateWebhookRequest,
) -> ApiResult<WebhookAnswer> {
    caller.require(Permission::ManageWebhooks)?;
    let url = match &req.url {
        Some(url) => Some(checked_url(state, url).await?),
        None => None,
    };
    let patch = WebhookPatch {
        url,
        events: req.events.map(checked_events).transpose()?,
        description: req.description.map(checked_description).transpose()?,
        enabled: req.enabled,
    };
    let endpoint =
        state.store.update_webhook(caller.account.id, id, patch, caller.audit(state)).await.map_err(missing)?;
    Ok(WebhookAnswer { success: true, webhook: WebhookView::from(&endpoint) })
}

pub async fn delete(state: &AppState, caller: &Session, id: WebhookId) -> ApiResult<WebhookDeleted> {
    caller.require(Permission::ManageWebhooks)?;
    state.store.delete_webhook(caller.account.id, id, caller.audit(state)).await.map_err(missing)?;
    Ok(WebhookDeleted { success: true, deleted: id.get() })
}

pub async fn rotate_secret(state: &AppState, caller: &Session, id: WebhookId) -> ApiResult<WebhookRotated> {
    caller.require(Permission::ManageWebhooks)?;
    let until = state.now() + ROTATION_OVERLAP;
    let salt = WebhookKey::new_salt();
    let endpoint = state
        .store
        .rotate_webhook_secret(caller.account.id, id, salt, until, caller.audit(state))
        .await
        .map_err(missing)?;
    Ok(WebhookRotated {
        success: true,
        secret: state.webhooks.key.secret(&endpoint.secret_salt),
        previous_secret_expires_at: rfc3339(until),
        webhook: WebhookView::from(&endpoint),
    })
}

pub async fn deliveries(state: &AppState, caller: &Session, id: WebhookId) -> ApiResult<DeliveryList> {
    caller.require(Permission::Read)?;
    let attempts = state.store.list_webhook_attempts(caller.account.id, id, LOG_LIMIT).await.map_err(missing)?;
    Ok(DeliveryList {
        success: true,
        object: "list".into(),
        deliveries: attempts.iter().map(DeliveryView::from).collect(),
    })
}

pub async fn replay(state: &AppState, caller: &Session, id: WebhookId, req: ReplayRequest) -> ApiResult<Replayed> {
    caller.require(Permission::ManageWebhooks)?;
    let what = match (req.event_id, req.since) {
        (Some(event), None) => Replay::Event(event),
        (None, Some(since)) => Replay::FailedSince(
            time::OffsetDateTime::parse(&since, &time::format_description::well_known::Rfc3339)
                .map_err(|_| ApiError::invalid("since must be an RFC 3339 time"))?,
        ),
        _ => return Err(ApiError::invalid("replay takes one of event_id or since")),
    };
    let replayed = state.store.replay_webhook(caller.account.id, id, what, state.now()).await.map_err(missing)?;
    Ok(Replayed { success: true, replayed })
}

pub async fn test(state: &AppState, caller: &Session, id: WebhookId) -> ApiResult<TestSent> {
    caller.require(Permission::ManageWebhooks)?;
    let data = json!({ "webhook_id": id, "message": "a test event from Visa Keys" });
    let event_id = state
        .store
        .send_webhook_event(caller.account.id, id, events::WEBHOOK_TEST, data, state.now())
        .await
        .map_err(missing)?;
    Ok(TestSent { success: true, event_id })
}

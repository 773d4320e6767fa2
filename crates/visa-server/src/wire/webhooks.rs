//! Webhooks on the wire: an endpoint as the API shows it (never its secret, which is shown
//! once: at creation and at rotation), the bodies that create, change and replay, the delivery
//! log, and a webhook id in a path.

use super::rfc3339;
use crate::error::ApiResult;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use visa_core::ErrorCode;
use visa_core::id::WebhookId;
use visa_store::{WebhookAttempt, WebhookEndpoint};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    pub id: i64,
    pub url: String,
    /// The event types it receives (`*`: all).
    pub events: Vec<String>,
    pub description: String,
    /// False once disabled, by a member or by the server (`disabled_reason`).
    pub enabled: bool,
    /// `gone` (it answered 410) or `failing` (it failed for 5 days), when the server disabled it.
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed (none delivered since); after 5 days of it the
    /// server disables the endpoint.
    pub failing_since: Option<String>,
    pub created_at: String,
}

impl From<&WebhookEndpoint> for WebhookView {
    fn from(e: &WebhookEndpoint) -> Self {
        Self {
            id: e.id.get(),
            url: e.url.clone(),
            events: e.events.clone(),
            description: e.description.clone(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            failing_since: e.failing_since.map(rfc3339),
            created_at: rfc3339(e.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    pub url: String,
    /// Event types (docs/webhooks.md), or `["*"]` for all.
    pub events: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookCreated {
    pub success: bool,
    /// The signing secret (`whsec_…`), shown this once.
    pub secret: String,
    #[serde(flatten)]
    pub webhook: WebhookView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookRotated {
    pub success: bool,
    /// The new signing secret, shown this once.
    pub secret: String,
    /// Until then deliveries carry a signature by the old secret too.
    pub previous_secret_expires_at: String,
    #[serde(flatten)]
    pub webhook: WebhookView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookAnswer {
    pub success: bool,
    #[serde(flatten)]
    pub webhook: WebhookView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    pub success: bool,
    pub object: String,
    pub webhooks: Vec<WebhookView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeleted {
    pub success: bool,
    pub deleted: i64,
}

/// One attempt of the delivery log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    /// The event's id, sent as `webhook-id`.
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub attempt: u32,
    /// The endpoint's HTTP status; null when it could not be reached (`error` says why).
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    /// The first KB of the answer.
    pub response: String,
    pub created_at: String,
}

impl From<&WebhookAttempt> for DeliveryView {
    fn from(a: &WebhookAttempt) -> Self {
        Self {
            event_id: a.event_id.clone(),
            event_type: a.event_type.clone(),
            attempt: a.attempt,
            status: a.log.status,
            error: a.log.error.clone(),
            latency_ms: a.log.latency_ms,
            response: a.log.response.clone(),
            created_at: rfc3339(a.created_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    pub success: bool,
    pub object: String,
    pub deliveries: Vec<DeliveryView>,
}

/// One event again (`event_id`), or every failed delivery of events since a time (`since`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    pub event_id: Option<String>,
    /// RFC 3339.
    pub since: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Replayed {
    pub success: bool,
    pub replayed: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TestSent {
    pub success: bool,
    /// The `webhook.test` event's id (`webhook-id`).
    pub event_id: String,
}

pub const WEBHOOK_NOT_FOUND: &str = "no such webhook endpoint";

/// A path id that is not a positive integer cannot name a webhook of ours.
pub fn webhook_id(text: &str) -> ApiResult<WebhookId> {
    super::path_id(text, ErrorCode::NotFound, WEBHOOK_NOT_FOUND).map(WebhookId::new)
}

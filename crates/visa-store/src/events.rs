//! The events webhooks deliver, written once for whichever code fires them: each type's name
//! and its `data` (docs/webhooks.md has the catalog with sample payloads). Keys are named by
//! `key_id`, `label` and `key_prefix`; money by `*_cents` and `*_micros`.

use crate::model::{KeyRecord, RevokeCause};
use serde_json::{Value, json};
use visa_core::money::Micros;

/// Sent by `POST /v1/api/webhooks/:id/test`, to that endpoint only.
pub const WEBHOOK_TEST: &str = "webhook.test";
pub const KEY_CREATED: &str = "key.created";
pub const KEY_REVOKED: &str = "key.revoked";
pub const BALANCE_LOW: &str = "balance.low";

/// Every type an endpoint may subscribe to (`*` subscribes to all).
pub const TYPES: &[&str] = &[BALANCE_LOW, KEY_CREATED, KEY_REVOKED, WEBHOOK_TEST];

/// `balance.low`: the threshold the available balance fell under, and where it is now.
pub fn balance_low(threshold_cents: i64, available: Micros) -> Value {
    json!({
        "threshold_cents": threshold_cents,
        "available_cents": available.cents_floor(),
        "available_micros": available.0,
    })
}

/// A key as events name it.
pub fn key(key: &KeyRecord) -> Value {
    json!({ "key_id": key.id, "label": key.policy.label.as_str(), "key_prefix": key.key_prefix() })
}

/// `key.revoked`: the key and why: `revoked` by a member or an admin key, `leaked` when its raw
/// value was reported or a used OAuth refresh token came back (someone else may hold it).
pub fn key_revoked(revoked: &KeyRecord, cause: RevokeCause) -> Value {
    let mut data = key(revoked);
    data["reason"] = json!(match cause {
        RevokeCause::Requested => "revoked",
        RevokeCause::Leaked | RevokeCause::OAuthReplay => "leaked",
    });
    data
}

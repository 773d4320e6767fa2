//! The events webhooks deliver, written once for whichever code fires them: each type's name
//! and its `data` (docs/webhooks.md has the catalog with sample payloads). Keys are named by
//! `key_id`, `label` and `key_prefix`; money by `*_cents` and `*_micros`.

use crate::model::{KeyId, KeyRecord, RevokeCause};
use crate::rules::{Cap, CapAlert};
use serde_json::{Value, json};
use visa_core::money::Micros;

/// Sent by `POST /v1/api/webhooks/:id/test`, to that endpoint only.
pub const WEBHOOK_TEST: &str = "webhook.test";
pub const KEY_CREATED: &str = "key.created";
pub const KEY_REVOKED: &str = "key.revoked";
pub const KEY_EXPIRING: &str = "key.expiring";
pub const BALANCE_LOW: &str = "balance.low";
pub const BALANCE_DEPLETED: &str = "balance.depleted";
pub const EXECUTION_RECONCILE_REQUIRED: &str = "execution.reconcile_required";
pub const KEY_CAP_THRESHOLD: &str = "key.cap.threshold";
pub const KEY_CAP_REACHED: &str = "key.cap.reached";

/// Every type an endpoint may subscribe to (`*` subscribes to all).
pub const TYPES: &[&str] = &[
    BALANCE_DEPLETED,
    BALANCE_LOW,
    EXECUTION_RECONCILE_REQUIRED,
    KEY_CAP_REACHED,
    KEY_CAP_THRESHOLD,
    KEY_CREATED,
    KEY_EXPIRING,
    KEY_REVOKED,
    WEBHOOK_TEST,
];

/// `execution.reconcile_required`: a call whose outcome could not be recorded waits for an
/// operator, its hold kept; the execution id is also the support id its caller was given.
pub fn reconcile_required(public_id: &str, key_id: KeyId, tool: &str, hold: Micros) -> Value {
    json!({
        "execution_id": public_id,
        "support_id": public_id,
        "key_id": key_id,
        "tool": tool,
        "hold_cents": hold.cents_ceil(),
        "hold_micros": hold.0,
    })
}

/// `key.cap.threshold` (the key's captured and held spend passed its alert percentage of a cap) or
/// `key.cap.reached` (a call was refused by it): the key, which cap, its amount and, for the
/// daily cap, the UTC day (days since 1970-01-01 as a date).
pub fn cap_alert(key: &KeyRecord, alert: CapAlert, day: i64) -> (&'static str, Value) {
    let mut data = self::key(key);
    let (cap, cents) = match alert.cap() {
        Cap::Daily => ("daily", Some(key.policy.daily_cap_cents)),
        Cap::Total => ("total", key.policy.total_cap_cents),
    };
    data["cap"] = json!(cap);
    data["cap_cents"] = json!(cents);
    if alert.cap() == Cap::Daily {
        let date = time::Date::from_julian_day(UNIX_EPOCH_JULIAN_DAY + day as i32).ok().map(|d| d.to_string());
        data["day"] = json!(date);
    }
    match alert {
        CapAlert::Threshold(_) => {
            data["percent"] = json!(key.policy.cap_alert_percent);
            (KEY_CAP_THRESHOLD, data)
        }
        CapAlert::Reached(_) => (KEY_CAP_REACHED, data),
    }
}

/// 1970-01-01 as a Julian day.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// `balance.depleted`: a call was refused because the available balance could not hold it.
pub fn balance_depleted(available: Micros, hold: Micros) -> Value {
    json!({
        "available_cents": available.cents_floor(),
        "available_micros": available.0,
        "refused_hold_micros": hold.0,
    })
}

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

/// `key.expiring`: the key, when it expires, and which notice this is (7 or 1 days before).
pub fn key_expiring(key: &KeyRecord, days_before: i64) -> Value {
    let mut data = self::key(key);
    data["expires_at"] = crate::audit::time(key.policy.expires_at);
    data["days_before"] = json!(days_before);
    data
}

/// `key.revoked` with reason `secret_ended`: one old secret of the key (`ended_key_prefix`)
/// stopped working — its rotation's grace ended, or it was revoked early — while the key and
/// its newest secret go on.
pub fn secret_ended(key: &KeyRecord, ended_prefix: &str) -> Value {
    let mut data = self::key(key);
    data["reason"] = json!("secret_ended");
    data["ended_key_prefix"] = json!(ended_prefix);
    data
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

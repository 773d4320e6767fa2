//! What the audit log records of each change, for every backend: the snapshot of each kind of
//! object (what is audited of it; secrets and hashes never are) and the diff of two snapshots
//! into the changed fields, `{"field": {"before": .., "after": ..}}`. A backend stores what
//! `changed_fields` returns, in the same transaction as the change.

use crate::model::*;
use serde_json::{Map, Value, json};

/// The fields whose values differ between two snapshots (either may be `null`).
pub fn changed_fields(before: &Value, after: &Value) -> Map<String, Value> {
    let empty = Map::new();
    let (old, new) = (before.as_object().unwrap_or(&empty), after.as_object().unwrap_or(&empty));
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let (b, a) = (old.get(name).unwrap_or(&Value::Null), new.get(name).unwrap_or(&Value::Null));
            (b != a).then(|| (name.clone(), json!({ "before": b, "after": a })))
        })
        .collect()
}

/// Times in snapshots are RFC 3339 in UTC, as the API shows them.
pub fn time(at: Option<Timestamp>) -> Value {
    at.and_then(|t| {
        t.checked_to_offset(time::UtcOffset::UTC)
            .unwrap_or(t)
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .map(Value::String)
    .unwrap_or(Value::Null)
}

/// What is audited of a key: its policy, revocation and secrets (prefixes and lifetimes).
pub fn key_snapshot(key: &KeyRecord) -> Value {
    let p = &key.policy;
    let secrets: Vec<Value> = key
        .secrets
        .iter()
        .map(|s| json!({ "id": s.id, "key_prefix": s.key_prefix, "expires_at": time(s.expires_at), "revoked_at": time(s.revoked_at) }))
        .collect();
    json!({
        "label": p.label.as_str(),
        "tool_scope": p.grant.scope().as_str(),
        "allowed_tools": p.grant.tools(),
        "allowed_cidrs": p.allowed_cidrs.to_strings(),
        "daily_cap_cents": p.daily_cap_cents,
        "total_cap_cents": p.total_cap_cents,
        "expires_at": time(p.expires_at),
        "read_only": p.read_only,
        "rate_limit_per_second": p.rate_limit_per_second,
        "idempotency": idempotency_name(p.idempotency_optional),
        "cap_alert_percent": p.cap_alert_percent,
        "end_user": end_user_rule_name(p.end_user_required),
        "end_user_daily_cap_cents": p.end_user_caps.daily_cents,
        "end_user_total_cap_cents": p.end_user_caps.total_cents,
        "environment": key.environment.as_str(),
        "revoked_at": time(key.revoked_at),
        "secrets": secrets,
    })
}

pub fn member_snapshot(member: &Member) -> Value {
    json!({ "login": member.login, "role": member.role.as_str(), "invited": member.invite_expires_at.is_some() })
}

pub fn admin_key_snapshot(key: &AdminKeyRecord) -> Value {
    json!({
        "label": key.label.as_str(),
        "environment": key.environment.as_str(),
        "key_prefix": key.key_prefix,
        "revoked_at": time(key.revoked_at),
    })
}

pub fn account_snapshot(account: &Account) -> Value {
    json!({
        "login": account.login,
        "approved": account.approved,
        "balance_micros": account.balance.0,
        "low_balance_thresholds_cents": account.low_balance_thresholds_cents,
    })
}

pub fn execution_snapshot(e: &ExecutionRecord) -> Value {
    json!({ "state": e.state.as_str(), "charged_micros": e.charged.0, "receipt_id": e.receipt_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_fields_are_kept() {
        let before = json!({ "label": "a", "cap": 5, "gone": true });
        let after = json!({ "label": "a", "cap": 7, "new": "x" });
        let changes = changed_fields(&before, &after);
        assert_eq!(
            Value::Object(changes),
            json!({
                "cap": { "before": 5, "after": 7 },
                "gone": { "before": true, "after": null },
                "new": { "before": null, "after": "x" },
            })
        );
        assert!(changed_fields(&before, &before).is_empty());
        assert_eq!(changed_fields(&Value::Null, &json!({ "a": 1 })).len(), 1);
    }
}

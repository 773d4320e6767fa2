//! The audit log: one append-only row per control-plane change, written by the same job
//! (so in the same transaction) as the change it describes. A change that fails rolls its
//! entry back with it; an entry without its change cannot exist.
//!
//! Entries record the changed fields only: each mutation passes JSON snapshots of the
//! object before and after (`null` for creation or removal) and `record` keeps the fields
//! that differ, as `{"field": {"before": .., "after": ..}}`. The snapshot functions below
//! decide what is audited of each object; secrets and hashes are never part of them.

use super::map_sqlite_error;
use super::queries::{from_db, to_db};
use crate::StoreResult;
use crate::model::*;
use rusqlite::{Connection, Row, params};
use serde_json::{Map, Value, json};
use visa_core::pagination::{Page, PageRequest};

/// Appends one entry for `account_id` unless nothing changed.
pub(crate) fn record(
    conn: &Connection,
    account_id: i64,
    ctx: &AuditContext,
    action: &str,
    target: &str,
    before: Value,
    after: Value,
) -> StoreResult<()> {
    let changes = changed_fields(&before, &after);
    if changes.is_empty() {
        return Ok(());
    }
    let (actor_type, actor_id, actor_label) = match &ctx.actor {
        Actor::Operator => ("operator", None, None),
        Actor::Member { id, login } => ("member", Some(*id), Some(login.as_str())),
        Actor::AdminKey { id, label } => ("admin_key", Some(*id), Some(label.as_str())),
    };
    conn.prepare_cached(
        "INSERT INTO audit_log (account_id, actor_type, actor_id, actor_label, action, target, changes, ip, user_agent, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            account_id,
            actor_type,
            actor_id,
            actor_label,
            action,
            target,
            Value::Object(changes).to_string(),
            ctx.ip.map(|ip| ip.to_string()),
            ctx.user_agent,
            to_db(ctx.now)
        ])
    })
    .map_err(map_sqlite_error)?;
    Ok(())
}

/// The fields whose values differ between two snapshots (either may be `null`).
fn changed_fields(before: &Value, after: &Value) -> Map<String, Value> {
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
pub(crate) fn time(at: Option<Timestamp>) -> Value {
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
pub(crate) fn key_snapshot(key: &KeyRecord) -> Value {
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
        "environment": key.environment.as_str(),
        "revoked_at": time(key.revoked_at),
        "secrets": secrets,
    })
}

pub(crate) fn member_snapshot(member: &Member) -> Value {
    json!({ "login": member.login, "role": member.role.as_str(), "invited": member.invite_expires_at.is_some() })
}

pub(crate) fn admin_key_snapshot(key: &AdminKeyRecord) -> Value {
    json!({
        "label": key.label.as_str(),
        "environment": key.environment.as_str(),
        "key_prefix": key.key_prefix,
        "revoked_at": time(key.revoked_at),
    })
}

pub(crate) fn account_snapshot(account: &Account) -> Value {
    json!({ "login": account.login, "approved": account.approved, "balance_micros": account.balance.0 })
}

pub(crate) fn execution_snapshot(e: &ExecutionRecord) -> Value {
    json!({ "state": e.state.as_str(), "charged_micros": e.charged.0, "receipt_id": e.receipt_id })
}

const COLUMNS: &str =
    "id, account_id, actor_type, actor_id, actor_label, action, target, changes, ip, user_agent, created_at";

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    let actor_type: String = row.get(2)?;
    let actor_id: Option<i64> = row.get(3)?;
    let label: String = row.get::<_, Option<String>>(4)?.unwrap_or_default();
    let actor = match (actor_type.as_str(), actor_id) {
        ("member", Some(id)) => Actor::Member { id, login: label },
        ("admin_key", Some(id)) => Actor::AdminKey { id, label },
        _ => Actor::Operator,
    };
    Ok(AuditEntry {
        id: row.get(0)?,
        account_id: row.get(1)?,
        actor,
        action: row.get(5)?,
        target: row.get(6)?,
        changes: serde_json::from_str(&row.get::<_, String>(7)?).unwrap_or(Value::Null),
        ip: row.get::<_, Option<String>>(8)?.and_then(|ip| ip.parse().ok()),
        user_agent: row.get(9)?,
        created_at: from_db(row.get(10)?),
    })
}

/// A page of an account's entries, newest first, narrowed by `filter`.
pub(crate) fn list(
    conn: &Connection,
    account_id: i64,
    filter: &AuditFilter,
    page: PageRequest,
) -> StoreResult<Page<AuditEntry>> {
    let (op, order, cursor) = page.id_bounds();
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log WHERE account_id = ?1 AND id {op} ?2 \
         AND (?3 IS NULL OR action = ?3) AND (?4 IS NULL OR target = ?4) AND (?5 IS NULL OR created_at >= ?5) \
         ORDER BY id {order} LIMIT ?6"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(map_sqlite_error)?;
    let rows = stmt
        .query_map(
            params![account_id, cursor, filter.action, filter.target, filter.since.map(to_db), page.fetch_limit()],
            entry_from_row,
        )
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(map_sqlite_error)?;
    Ok(Page::cut(&page, rows, |e| e.id))
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

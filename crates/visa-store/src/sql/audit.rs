//! The audit log: one append-only row per control-plane change, written by the same job
//! (so in the same transaction) as the change it describes. A change that fails rolls its
//! entry back with it; an entry without its change cannot exist.
//!
//! Entries record the changed fields only: each mutation passes JSON snapshots of the
//! object before and after (`null` for creation or removal) and `record` keeps the fields
//! that differ (`crate::audit`, shared by every backend, decides what is audited of each
//! object and computes the diff).

use super::db::{Db, Row, params};
use super::{Engine, SqlStore};
use super::{from_db, to_db};
use crate::StoreResult;
use crate::audit::changed_fields;
use crate::model::*;
use async_trait::async_trait;
use serde_json::Value;
use visa_core::pagination::{Page, PageRequest};

/// Appends one entry for `account_id` unless nothing changed.
pub(crate) fn record(
    conn: &dyn Db,
    account_id: AccountId,
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
        Actor::Member { id, login } => ("member", Some(id.get()), Some(login.as_str())),
        Actor::AdminKey { id, label } => ("admin_key", Some(id.get()), Some(label.as_str())),
        Actor::OAuthClient { id, name } => ("oauth_client", Some(*id), Some(name.as_str())),
        Actor::System => ("system", None, None),
    };
    conn.execute(
        "INSERT INTO audit_log (account_id, actor_type, actor_id, actor_label, action, target, changes, ip, user_agent, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
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
        ],
    )?;
    Ok(())
}

const COLUMNS: &str =
    "id, account_id, actor_type, actor_id, actor_label, action, target, changes, ip, user_agent, created_at";

fn entry_from_row(row: &Row) -> StoreResult<AuditEntry> {
    let actor_type: String = row.get(2)?;
    let actor_id: Option<i64> = row.get(3)?;
    let label: String = row.get::<Option<String>>(4)?.unwrap_or_default();
    let actor = match (actor_type.as_str(), actor_id) {
        ("member", Some(id)) => Actor::Member { id: MemberId::new(id), login: label },
        ("admin_key", Some(id)) => Actor::AdminKey { id: AdminKeyId::new(id), label },
        ("oauth_client", Some(id)) => Actor::OAuthClient { id, name: label },
        ("system", None) => Actor::System,
        _ => Actor::Operator,
    };
    Ok(AuditEntry {
        id: row.get(0)?,
        account_id: row.get(1)?,
        actor,
        action: row.get(5)?,
        target: row.get(6)?,
        changes: serde_json::from_str(&row.get::<String>(7)?).unwrap_or(Value::Null),
        ip: row.get::<Option<String>>(8)?.and_then(|ip| ip.parse().ok()),
        user_agent: row.get(9)?,
        created_at: from_db(row.get(10)?),
    })
}

/// A page of an account's entries, newest first, narrowed by `filter`.
pub(crate) fn list(
    conn: &dyn Db,
    account_id: AccountId,
    filter: &AuditFilter,
    page: PageRequest,
) -> StoreResult<Page<AuditEntry>> {
    let (op, order, cursor) = page.id_bounds();
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log WHERE account_id = ?1 AND id {op} ?2 \
         AND (CAST(?3 AS TEXT) IS NULL OR action = ?3) AND (CAST(?4 AS TEXT) IS NULL OR target = ?4) \
         AND (CAST(?5 AS BIGINT) IS NULL OR created_at >= ?5) \
         ORDER BY id {order} LIMIT ?6"
    );
    let rows = conn.query_map(
        &sql,
        params![account_id, cursor, filter.action, filter.target, filter.since.map(to_db), page.fetch_limit()],
        entry_from_row,
    )?;
    Ok(Page::cut(&page, rows, |e| e.id))
}

/// The audit log, read. Part of the store (`crate::Store`).
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// A page of the account's audit log, newest first.
    async fn list_audit(
        &self,
        account_id: AccountId,
        filter: AuditFilter,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEntry>>;
}

#[async_trait]
impl<E: Engine> AuditStore for SqlStore<E> {
    async fn list_audit(
        &self,
        account_id: AccountId,
        filter: AuditFilter,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEntry>> {
        self.read(move |conn| list(conn, account_id, &filter, page)).await
    }
}

//! Admin keys: account credentials for automation, stored as hashes; created, listed, revoked.

use super::audit;
use super::map_sqlite_error;
use super::sql::{corrupt, from_db, select_one, to_db};
use crate::audit::admin_key_snapshot;
use crate::model::*;
use crate::{StoreError, StoreResult};
use rusqlite::{Connection, Row, params};
use serde_json::Value;
use visa_core::key::Environment;
use visa_core::policy::KeyLabel;
use visa_core::secret::SecretHash;

const ADMIN_KEY_COLUMNS: &str = "id, account_id, label, environment, key_prefix, created_at, revoked_at, hash";

fn admin_key_from_row(row: &Row<'_>) -> rusqlite::Result<(AdminKeyRecord, SecretHash)> {
    let hash: Vec<u8> = row.get(7)?;
    Ok((
        AdminKeyRecord {
            id: row.get(0)?,
            account_id: row.get(1)?,
            label: KeyLabel::parse(&row.get::<_, String>(2)?).map_err(|_| corrupt("label"))?,
            environment: Environment::parse(&row.get::<_, String>(3)?).ok_or_else(|| corrupt("environment"))?,
            key_prefix: row.get(4)?,
            created_at: from_db(row.get(5)?),
            revoked_at: row.get::<_, Option<i64>>(6)?.map(from_db),
        },
        SecretHash(hash.try_into().map_err(|_| corrupt("hash"))?),
    ))
}

pub(crate) fn admin_key_where(
    conn: &Connection,
    clause: &str,
    value: impl rusqlite::ToSql,
) -> StoreResult<Option<(AdminKeyRecord, SecretHash)>> {
    select_one(conn, &format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys"), clause, value, admin_key_from_row)
}

fn admin_key_target(id: i64) -> String {
    format!("admin_key:{id}")
}

pub(crate) fn create(
    conn: &Connection,
    account_id: i64,
    label: &KeyLabel,
    environment: Environment,
    secret: &NewSecret,
    ctx: &AuditContext,
) -> StoreResult<AdminKeyRecord> {
    conn.execute(
        "INSERT INTO admin_keys (account_id, label, environment, hash, key_prefix, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![account_id, label.as_str(), environment.as_str(), &secret.hash.0[..], secret.key_prefix, to_db(ctx.now)],
    )
    .map_err(map_sqlite_error)?;
    let key =
        admin_key_where(conn, "id = ?1", conn.last_insert_rowid())?.map(|(k, _)| k).ok_or(StoreError::NotFound)?;
    let target = admin_key_target(key.id);
    audit::record(conn, account_id, ctx, "admin_key.created", &target, Value::Null, admin_key_snapshot(&key))?;
    Ok(key)
}

pub(crate) fn list(conn: &Connection, account_id: i64) -> StoreResult<Vec<AdminKeyRecord>> {
    let mut stmt = conn
        .prepare(&format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys WHERE account_id = ?1 ORDER BY id DESC"))
        .map_err(map_sqlite_error)?;
    let rows: Vec<(AdminKeyRecord, SecretHash)> =
        stmt.query_map([account_id], admin_key_from_row).and_then(|r| r.collect()).map_err(map_sqlite_error)?;
    Ok(rows.into_iter().map(|(k, _)| k).collect())
}

pub(crate) fn revoke(conn: &Connection, account_id: i64, id: i64, ctx: &AuditContext) -> StoreResult<AdminKeyRecord> {
    let (before, _) = admin_key_where(conn, "id = ?1", id)?
        .filter(|(k, _)| k.account_id == account_id)
        .ok_or(StoreError::NotFound)?;
    conn.execute(
        "UPDATE admin_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
        params![id, to_db(ctx.now)],
    )
    .map_err(map_sqlite_error)?;
    let (after, _) = admin_key_where(conn, "id = ?1", id)?.ok_or(StoreError::NotFound)?;
    let (old, new) = (admin_key_snapshot(&before), admin_key_snapshot(&after));
    audit::record(conn, account_id, ctx, "admin_key.revoked", &admin_key_target(id), old, new)?;
    Ok(after)
}

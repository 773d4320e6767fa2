//! Admin keys: account credentials for automation, stored as hashes; created, listed, revoked.

use super::audit;
use super::db::corrupt;
use super::db::{Db, Row, params};
use super::{Engine, SqlStore};
use super::{from_db, to_db};
use crate::audit::admin_key_snapshot;
use crate::model::*;
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use serde_json::Value;
use visa_core::key::Environment;
use visa_core::policy::KeyLabel;
use visa_core::secret::SecretHash;

const ADMIN_KEY_COLUMNS: &str = "id, account_id, label, environment, key_prefix, created_at, revoked_at, hash";

fn admin_key_from_row(row: &Row) -> StoreResult<(AdminKeyRecord, SecretHash)> {
    let hash: Vec<u8> = row.get(7)?;
    Ok((
        AdminKeyRecord {
            id: row.get(0)?,
            account_id: row.get(1)?,
            label: KeyLabel::parse(&row.get::<String>(2)?).map_err(|_| corrupt("label"))?,
            environment: Environment::parse(&row.get::<String>(3)?).ok_or_else(|| corrupt("environment"))?,
            key_prefix: row.get(4)?,
            created_at: from_db(row.get(5)?),
            revoked_at: row.get::<Option<i64>>(6)?.map(from_db),
        },
        SecretHash(hash.try_into().map_err(|_| corrupt("hash"))?),
    ))
}

pub(crate) fn admin_key_where(
    conn: &dyn Db,
    clause: &str,
    value: impl super::ToValue,
) -> StoreResult<Option<(AdminKeyRecord, SecretHash)>> {
    conn.query_row(
        &format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys WHERE {clause}"),
        params![value],
        admin_key_from_row,
    )
}

fn admin_key_target(id: AdminKeyId) -> String {
    format!("admin_key:{id}")
}

pub(crate) fn create(
    conn: &dyn Db,
    account_id: AccountId,
    label: &KeyLabel,
    environment: Environment,
    secret: &NewSecret,
    ctx: &AuditContext,
) -> StoreResult<AdminKeyRecord> {
    let id = conn.insert(
        "INSERT INTO admin_keys (account_id, label, environment, hash, key_prefix, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        params![account_id, label.as_str(), environment.as_str(), secret.hash.0, secret.key_prefix, to_db(ctx.now)],
    )?;
    let key = admin_key_where(conn, "id = ?1", id)?.map(|(k, _)| k).ok_or(StoreError::NotFound)?;
    let target = admin_key_target(key.id);
    audit::record(conn, account_id, ctx, "admin_key.created", &target, Value::Null, admin_key_snapshot(&key))?;
    Ok(key)
}

pub(crate) fn list(conn: &dyn Db, account_id: AccountId) -> StoreResult<Vec<AdminKeyRecord>> {
    let rows = conn.query_map(
        &format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys WHERE account_id = ?1 ORDER BY id DESC"),
        params![account_id],
        admin_key_from_row,
    )?;
    Ok(rows.into_iter().map(|(k, _)| k).collect())
}

pub(crate) fn revoke(
    conn: &dyn Db,
    account_id: AccountId,
    id: AdminKeyId,
    ctx: &AuditContext,
) -> StoreResult<AdminKeyRecord> {
    let (before, _) = admin_key_where(conn, "id = ?1", id)?
        .filter(|(k, _)| k.account_id == account_id)
        .ok_or(StoreError::NotFound)?;
    conn.execute(
        "UPDATE admin_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
        params![id, to_db(ctx.now)],
    )?;
    let (after, _) = admin_key_where(conn, "id = ?1", id)?.ok_or(StoreError::NotFound)?;
    let (old, new) = (admin_key_snapshot(&before), admin_key_snapshot(&after));
    audit::record(conn, account_id, ctx, "admin_key.revoked", &admin_key_target(id), old, new)?;
    Ok(after)
}

/// Admin keys. Part of the store (`crate::Store`).
#[async_trait]
pub trait AdminKeyStore: Send + Sync {
    async fn create_admin_key(
        &self,
        account_id: AccountId,
        label: visa_core::policy::KeyLabel,
        environment: visa_core::key::Environment,
        secret: NewSecret,
        audit: AuditContext,
    ) -> StoreResult<AdminKeyRecord>;
    async fn list_admin_keys(&self, account_id: AccountId) -> StoreResult<Vec<AdminKeyRecord>>;
    async fn revoke_admin_key(
        &self,
        account_id: AccountId,
        id: AdminKeyId,
        audit: AuditContext,
    ) -> StoreResult<AdminKeyRecord>;
    /// The admin key (live or revoked) behind a secret hash, with its stored hash.
    async fn admin_key_by_secret(&self, hash: SecretHash) -> StoreResult<Option<(AdminKeyRecord, SecretHash)>>;
}

#[async_trait]
impl<E: Engine> AdminKeyStore for SqlStore<E> {
    async fn create_admin_key(
        &self,
        account_id: AccountId,
        label: KeyLabel,
        environment: Environment,
        secret: NewSecret,
        ctx: AuditContext,
    ) -> StoreResult<AdminKeyRecord> {
        self.write(move |conn| create(conn, account_id, &label, environment, &secret, &ctx)).await
    }

    async fn list_admin_keys(&self, account_id: AccountId) -> StoreResult<Vec<AdminKeyRecord>> {
        self.read(move |conn| list(conn, account_id)).await
    }

    async fn revoke_admin_key(
        &self,
        account_id: AccountId,
        id: AdminKeyId,
        ctx: AuditContext,
    ) -> StoreResult<AdminKeyRecord> {
        self.write(move |conn| revoke(conn, account_id, id, &ctx)).await
    }

    async fn admin_key_by_secret(&self, hash: SecretHash) -> StoreResult<Option<(AdminKeyRecord, SecretHash)>> {
        self.read(move |conn| admin_key_where(conn, "hash = ?1", hash.0)).await
    }
}

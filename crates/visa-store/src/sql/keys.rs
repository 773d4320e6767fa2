//! Tool keys: their policy, secrets (rotation with a grace period, revocation) and the spend
//! counters they are read with; every change audited with the key before and after.

use super::db::corrupt;
use super::db::{Db, Row, params};
use super::{Engine, SqlStore};
use super::{audit, auth_version, webhooks};
use super::{from_db, to_db};
use crate::audit::key_snapshot;
use crate::columns::{cidrs_from_db, cidrs_to_db, grant_from_db, grant_to_db};
use crate::events;
use crate::model::*;
use crate::{Refusal, StoreError, StoreResult};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashMap;
use visa_core::key::Environment;
use visa_core::money::Micros;
use visa_core::pagination::{Page, PageRequest};
use visa_core::policy::KeyLabel;
use visa_core::secret::SecretHash;

const KEY_COLUMNS: &str = "k.id, k.account_id, a.login, k.environment, k.label, k.tool_scope, k.allowed_tools, \
    k.allowed_cidrs, k.daily_cap_cents, k.total_cap_cents, k.expires_at, k.read_only, k.created_at, k.revoked_at, \
    k.last_used_at, k.last_used_ip, s.latest_day, COALESCE(d.spent_micros, 0), s.spent_total_micros, k.rate_limit_per_second, \
    COALESCE(d.held_micros, 0), s.held_total_micros, k.idempotency_optional, k.cap_alert_percent, \
    k.end_user_required, k.end_user_daily_cap_cents, k.end_user_total_cap_cents";

/// The tables `KEY_COLUMNS` reads from.
const KEY_TABLES: &str = "keys k JOIN key_spend s ON s.key_id = k.id JOIN accounts a ON a.id = k.account_id \
    LEFT JOIN key_days d ON d.key_id = k.id AND d.day_number = s.latest_day";

fn key_from_row(row: &Row) -> StoreResult<KeyRecord> {
    let environment = Environment::parse(&row.get::<String>(3)?).ok_or_else(|| corrupt("environment"))?;
    let label = KeyLabel::parse(&row.get::<String>(4)?).map_err(|_| corrupt("label"))?;
    let grant = grant_from_db(&row.get::<String>(5)?, &row.get::<String>(6)?).map_err(corrupt)?;
    let allowed_cidrs = cidrs_from_db(&row.get::<String>(7)?).map_err(corrupt)?;
    Ok(KeyRecord {
        id: row.get(0)?,
        account_id: row.get(1)?,
        owner: row.get(2)?,
        environment,
        policy: KeyPolicy {
            label,
            grant,
            allowed_cidrs,
            daily_cap_cents: row.get(8)?,
            total_cap_cents: row.get(9)?,
            expires_at: row.get::<Option<i64>>(10)?.map(from_db),
            read_only: row.get(11)?,
            rate_limit_per_second: row.get(19)?,
            idempotency_optional: row.get(22)?,
            cap_alert_percent: row.get(23)?,
            end_user_required: row.get(24)?,
            end_user_caps: EndUserCaps { daily_cents: row.get(25)?, total_cents: row.get(26)? },
        },
        created_at: from_db(row.get(12)?),
        revoked_at: row.get::<Option<i64>>(13)?.map(from_db),
        last_used_at: row.get::<Option<i64>>(14)?.map(from_db),
        last_used_ip: row.get::<Option<String>>(15)?.and_then(|ip| ip.parse().ok()),
        latest_day: row.get(16)?,
        spent_day: Micros(row.get(17)?),
        held_day: Micros(row.get(20)?),
        spent_total: Micros(row.get(18)?),
        held_total: Micros(row.get(21)?),
        secrets: Vec::new(),
    })
}

/// The secret whose columns start at column `first` of `row`.
fn secret_at(row: &Row, first: usize) -> StoreResult<SecretRecord> {
    Ok(SecretRecord {
        id: row.get(first)?,
        key_prefix: row.get(first + 1)?,
        created_at: from_db(row.get(first + 2)?),
        expires_at: row.get::<Option<i64>>(first + 3)?.map(from_db),
        revoked_at: row.get::<Option<i64>>(first + 4)?.map(from_db),
        last_used_at: row.get::<Option<i64>>(first + 5)?.map(from_db),
        last_used_ip: row.get::<Option<String>>(first + 6)?.and_then(|ip| ip.parse().ok()),
    })
}

/// The account's keys that `filter` (a condition on `k`, whose first parameter is the account)
/// selects, in `order`, each with its secrets: two statements whatever their number.
pub(crate) fn keys_where(
    conn: &dyn Db,
    filter: &str,
    order: &str,
    params: &[super::Value],
) -> StoreResult<Vec<KeyRecord>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM {KEY_TABLES} WHERE k.account_id = ?1 AND {filter} {order}");
    let mut keys = conn.query_map(&sql, params, key_from_row)?;
    if keys.is_empty() {
        return Ok(keys);
    }
    let sql = format!(
        "SELECT x.key_id, x.id, x.key_prefix, x.created_at, x.expires_at, x.revoked_at, x.last_used_at, \
         x.last_used_ip FROM key_secrets x WHERE x.key_id IN (SELECT k.id FROM keys k WHERE k.account_id = ?1 AND \
         {filter} {order}) ORDER BY x.id DESC"
    );
    let mut secrets: HashMap<KeyId, Vec<SecretRecord>> = HashMap::new();
    for (key_id, secret) in conn.query_map(&sql, params, |r| Ok((r.get::<KeyId>(0)?, secret_at(r, 1)?)))? {
        secrets.entry(key_id).or_default().push(secret);
    }
    for key in &mut keys {
        key.secrets = secrets.remove(&key.id).unwrap_or_default();
    }
    Ok(keys)
}

/// One of the account's keys, with its secrets; `None` for another account's key.
pub(crate) fn load_key(conn: &dyn Db, account_id: AccountId, key_id: KeyId) -> StoreResult<Option<KeyRecord>> {
    Ok(keys_where(conn, "k.id = ?2", "", params![account_id, key_id])?.pop())
}

pub(crate) fn require_key(conn: &dyn Db, account_id: AccountId, key_id: KeyId) -> StoreResult<KeyRecord> {
    load_key(conn, account_id, key_id)?.ok_or(StoreError::NotFound)
}

fn insert_secret(conn: &dyn Db, key_id: KeyId, secret: &NewSecret, now: Timestamp) -> StoreResult<()> {
    conn.execute(
        // A secret that ends by itself (an OAuth access token) is never announced ending.
        "INSERT INTO key_secrets (key_id, hash, key_prefix, created_at, expires_at, end_announced) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            key_id,
            secret.hash.0,
            secret.key_prefix,
            to_db(now),
            secret.expires_at.map(to_db),
            secret.expires_at.is_some()
        ],
    )?;
    Ok(())
}

fn policy_params(policy: &KeyPolicy) -> (String, String, Option<i64>) {
    let (_, tools) = grant_to_db(&policy.grant);
    (tools, cidrs_to_db(&policy.allowed_cidrs), policy.expires_at.map(to_db))
}

fn write_policy(conn: &dyn Db, key_id: KeyId, policy: &KeyPolicy) -> StoreResult<()> {
    let (tools, cidrs, expires_at) = policy_params(policy);
    conn.execute(
        "UPDATE keys SET label = ?2, tool_scope = ?3, allowed_tools = ?4, allowed_cidrs = ?5, daily_cap_cents = ?6, \
         total_cap_cents = ?7, expires_at = ?8, read_only = ?9, rate_limit_per_second = ?10, \
         idempotency_optional = ?11, cap_alert_percent = ?12, end_user_required = ?13, \
         end_user_daily_cap_cents = ?14, end_user_total_cap_cents = ?15, \
         expiry_alerts = CASE WHEN COALESCE(expires_at, -1) = COALESCE(CAST(?8 AS BIGINT), -1) THEN expiry_alerts ELSE 0 END \
         WHERE id = ?1",
        params![
            key_id,
            policy.label.as_str(),
            policy.grant.scope().as_str(),
            tools,
            cidrs,
            policy.daily_cap_cents,
            policy.total_cap_cents,
            expires_at,
            policy.read_only,
            policy.rate_limit_per_second,
            policy.idempotency_optional,
            policy.cap_alert_percent,
            policy.end_user_required,
            policy.end_user_caps.daily_cents,
            policy.end_user_caps.total_cents
        ],
    )?;
    Ok(())
}

/// Reloads a key after a change, audits the difference from `before` and tells the credential
/// caches.
fn audited_key_change(conn: &dyn Db, ctx: &AuditContext, action: &str, before: &KeyRecord) -> StoreResult<KeyRecord> {
    let after = require_key(conn, before.account_id, before.id)?;
    auth_version::bump(conn)?;
    audit::record(
        conn,
        after.account_id,
        ctx,
        action,
        &key_target(after.id),
        key_snapshot(before),
        key_snapshot(&after),
    )?;
    Ok(after)
}

fn key_target(id: KeyId) -> String {
    format!("key:{id}")
}

pub(crate) fn create(conn: &dyn Db, new: &NewKey, ctx: &AuditContext) -> StoreResult<KeyRecord> {
    let (tools, cidrs, expires_at) = policy_params(&new.policy);
    let p = &new.policy;
    let key_id = KeyId::new(conn.insert(
        "INSERT INTO keys (account_id, environment, label, tool_scope, allowed_tools, allowed_cidrs, daily_cap_cents, \
         total_cap_cents, expires_at, read_only, created_at, rate_limit_per_second, idempotency_optional, \
         cap_alert_percent, end_user_required, end_user_daily_cap_cents, end_user_total_cap_cents) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) RETURNING id",
        params![
            new.account_id,
            new.environment.as_str(),
            p.label.as_str(),
            p.grant.scope().as_str(),
            tools,
            cidrs,
            p.daily_cap_cents,
            p.total_cap_cents,
            expires_at,
            p.read_only,
            to_db(ctx.now),
            p.rate_limit_per_second,
            p.idempotency_optional,
            p.cap_alert_percent,
            p.end_user_required,
            p.end_user_caps.daily_cents,
            p.end_user_caps.total_cents
        ],
    )?);
    conn.execute("INSERT INTO key_spend (key_id) VALUES (?1)", params![key_id])?;
    insert_secret(conn, key_id, &new.secret, ctx.now)?;
    let key = require_key(conn, new.account_id, key_id)?;
    audit::record(conn, key.account_id, ctx, "key.created", &key_target(key_id), Value::Null, key_snapshot(&key))?;
    webhooks::emit(conn, key.account_id, events::KEY_CREATED, events::key(&key), ctx.now)?;
    Ok(key)
}

/// Sends `key.expiring` for live keys that expire within a week (bit 1) or a day (bit 2) of
/// `now` and were not told so yet for their current expiry (a change of `expires_at` re-arms
/// them): the nearer notice only, if both are due. At most `limit` keys; how many. Where
/// writers run concurrently, a key another node is announcing is skipped.
pub(crate) fn announce_expiring(conn: &dyn Db, now: Timestamp, limit: u32) -> StoreResult<usize> {
    let (week, day) = (to_db(now + time::Duration::days(7)), to_db(now + time::Duration::days(1)));
    let lock = if conn.dialect().single_writer() { "" } else { "FOR UPDATE SKIP LOCKED" };
    let due = conn.query_map(
        &format!(
            "SELECT id, account_id, expires_at FROM keys WHERE revoked_at IS NULL AND expires_at > ?1 \
             AND ((expires_at <= ?2 AND expiry_alerts & 1 = 0) OR (expires_at <= ?3 AND expiry_alerts & 2 = 0)) \
             ORDER BY id LIMIT ?4 {lock}"
        ),
        params![to_db(now), week, day, limit],
        |row| Ok((row.get::<KeyId>(0)?, row.get::<AccountId>(1)?, row.get::<i64>(2)?)),
    )?;
    for (key_id, account_id, expires_at) in &due {
        let (sent, days) = if *expires_at <= day { (3, 1) } else { (1, 7) };
        conn.execute("UPDATE keys SET expiry_alerts = expiry_alerts | ?2 WHERE id = ?1", params![key_id, sent])?;
        let key = require_key(conn, *account_id, *key_id)?;
        webhooks::emit(conn, *account_id, events::KEY_EXPIRING, events::key_expiring(&key, days), now)?;
    }
    Ok(due.len())
}

/// Sends `key.revoked` (reason `secret_ended`) for old secrets of live keys that stopped
/// working (a rotation's grace ended, or one was revoked early) and were not announced yet;
/// those of OAuth grants (tokens that end every hour) are only marked. At most `limit`, or
/// only the secret `only`; how many. Where writers run concurrently, a secret another node is
/// announcing is skipped.
fn announce_ended_secrets(conn: &dyn Db, now: Timestamp, limit: u32, only: Option<SecretId>) -> StoreResult<usize> {
    let lock = if conn.dialect().single_writer() { "" } else { "FOR UPDATE OF s SKIP LOCKED" };
    // The first condition on the secret repeats the partial index's own (`key_secrets_ending`),
    // so both backends read the few rows it holds; the second is the one that decides.
    let ended = conn.query_map(
        &format!(
            "SELECT s.id, k.id, k.account_id, s.key_prefix, \
             EXISTS (SELECT 1 FROM oauth_grants g WHERE g.key_id = k.id) \
             FROM key_secrets s JOIN keys k ON k.id = s.key_id \
             WHERE NOT s.end_announced AND (s.revoked_at IS NOT NULL OR s.expires_at IS NOT NULL) \
             AND (s.revoked_at IS NOT NULL OR s.expires_at <= ?1) AND k.revoked_at IS NULL \
             AND (CAST(?3 AS BIGINT) IS NULL OR s.id = ?3) ORDER BY s.id LIMIT ?2 {lock}"
        ),
        params![to_db(now), limit, only],
        |row| {
            Ok((
                row.get::<SecretId>(0)?,
                row.get::<KeyId>(1)?,
                row.get::<AccountId>(2)?,
                row.get::<String>(3)?,
                row.get::<bool>(4)?,
            ))
        },
    )?;
    for (secret_id, key_id, account_id, prefix, oauth) in &ended {
        conn.execute("UPDATE key_secrets SET end_announced = ?2 WHERE id = ?1", params![secret_id, true])?;
        if !oauth {
            let key = require_key(conn, *account_id, *key_id)?;
            webhooks::emit(conn, *account_id, events::KEY_REVOKED, events::secret_ended(&key, prefix), now)?;
        }
    }
    Ok(ended.len())
}

pub(crate) fn list(conn: &dyn Db, account_id: AccountId, page: PageRequest) -> StoreResult<Page<KeyRecord>> {
    let (op, order, cursor) = page.id_bounds();
    let (filter, order) = (format!("k.id {op} ?2"), format!("ORDER BY k.id {order} LIMIT ?3"));
    let rows = keys_where(conn, &filter, &order, params![account_id, cursor, page.fetch_limit()])?;
    Ok(Page::cut(&page, rows, |k| k.id.get()))
}

pub(crate) fn update(
    conn: &dyn Db,
    account_id: AccountId,
    key_id: KeyId,
    patch: &KeyPatch,
    ctx: &AuditContext,
) -> StoreResult<KeyRecord> {
    let before = require_key(conn, account_id, key_id)?;
    let mut policy = before.policy.clone();
    policy.apply(patch);
    write_policy(conn, key_id, &policy)?;
    audited_key_change(conn, ctx, "key.updated", &before)
}

pub(crate) fn revoke(
    conn: &dyn Db,
    account_id: AccountId,
    key_id: KeyId,
    cause: RevokeCause,
    ctx: &AuditContext,
) -> StoreResult<KeyRecord> {
    let before = require_key(conn, account_id, key_id)?;
    let at = to_db(ctx.now);
    conn.execute("UPDATE keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1", params![key_id, at])?;
    // The key's own `key.revoked` covers its secrets: none is announced ending after it.
    conn.execute(
        "UPDATE key_secrets SET revoked_at = COALESCE(revoked_at, ?2), end_announced = ?3 WHERE key_id = ?1",
        params![key_id, at, true],
    )?;
    let action = match cause {
        RevokeCause::Requested => "key.revoked",
        RevokeCause::Leaked => "key.revoked_leaked",
        RevokeCause::OAuthReplay => "key.revoked_oauth_replay",
    };
    let after = audited_key_change(conn, ctx, action, &before)?;
    if before.revoked_at.is_none() {
        webhooks::emit(conn, after.account_id, events::KEY_REVOKED, events::key_revoked(&after, cause), ctx.now)?;
    }
    Ok(after)
}

pub(crate) fn revoke_secret(
    conn: &dyn Db,
    account_id: AccountId,
    key_id: KeyId,
    secret_id: SecretId,
    ctx: &AuditContext,
) -> StoreResult<KeyRecord> {
    let key = require_key(conn, account_id, key_id)?;
    if !key.secrets.iter().any(|s| s.id == secret_id) {
        return Err(StoreError::NotFound);
    }
    if key.secrets.first().is_some_and(|newest| newest.id == secret_id) {
        return Err(StoreError::Refused(Refusal::NewestSecret));
    }
    conn.execute(
        "UPDATE key_secrets SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
        params![secret_id, to_db(ctx.now)],
    )?;
    let after = audited_key_change(conn, ctx, "key.secret_revoked", &key)?;
    announce_ended_secrets(conn, ctx.now, 1, Some(secret_id))?;
    Ok(after)
}

pub(crate) fn rotate(
    conn: &dyn Db,
    account_id: AccountId,
    key_id: KeyId,
    rotation: &Rotation,
    ctx: &AuditContext,
) -> StoreResult<KeyRecord> {
    rotate_as(conn, account_id, key_id, rotation, ctx, "key.rotated")
}

/// A rotation audited as `action` (an OAuth grant's tokens are issued by rotating its key).
pub(crate) fn rotate_as(
    conn: &dyn Db,
    account_id: AccountId,
    key_id: KeyId,
    rotation: &Rotation,
    ctx: &AuditContext,
    action: &str,
) -> StoreResult<KeyRecord> {
    let key = require_key(conn, account_id, key_id)?;
    if key.revoked_at.is_some() {
        return Err(StoreError::Refused(Refusal::KeyRevoked));
    }
    let now = to_db(ctx.now);
    let end = to_db(rotation.old_secrets_end);
    if end <= now {
        conn.execute(
            "UPDATE key_secrets SET revoked_at = ?2 WHERE key_id = ?1 AND revoked_at IS NULL",
            params![key_id, now],
        )
    } else {
        // A secret already ending sooner (an earlier grace) keeps its earlier end.
        conn.execute(
            "UPDATE key_secrets SET expires_at = CASE WHEN expires_at < ?2 THEN expires_at ELSE ?2 END \
             WHERE key_id = ?1 AND revoked_at IS NULL",
            params![key_id, end],
        )
    }?;
    insert_secret(conn, key_id, &rotation.secret, ctx.now)?;
    audited_key_change(conn, ctx, action, &key)
}

pub(crate) fn by_secret(conn: &dyn Db, hash: &SecretHash) -> StoreResult<Option<AuthRecord>> {
    let found = conn.query_row(
        "SELECT s.id, s.hash, s.key_id, k.account_id, a.approved, g.resource FROM key_secrets s \
             JOIN keys k ON k.id = s.key_id JOIN accounts a ON a.id = k.account_id \
             LEFT JOIN oauth_grants g ON g.key_id = s.key_id WHERE s.hash = ?1",
        params![hash.0],
        |r| {
            Ok((
                r.get::<SecretId>(0)?,
                r.get::<Vec<u8>>(1)?,
                r.get::<KeyId>(2)?,
                r.get::<AccountId>(3)?,
                r.get::<bool>(4)?,
                r.get::<Option<String>>(5)?,
            ))
        },
    )?;
    let Some((secret_id, stored, key_id, account_id, account_approved, oauth_resource)) = found else {
        return Ok(None);
    };
    let secret_hash = SecretHash(stored.try_into().map_err(|_| StoreError::Internal("bad secret hash".into()))?);
    let key = require_key(conn, account_id, key_id)?;
    Ok(Some(AuthRecord { key, secret_id, secret_hash, account_approved, oauth_resource }))
}

pub(crate) fn record_use(conn: &dyn Db, uses: &[KeyUse]) -> StoreResult<()> {
    for u in uses {
        let (at, ip) = (to_db(u.at), u.ip.to_string());
        conn.execute(
            "UPDATE keys SET last_used_at = ?2, last_used_ip = ?3 WHERE id = ?1 AND COALESCE(last_used_at, 0) <= ?2",
            params![u.key_id, at, ip],
        )?;
        conn.execute(
            "UPDATE key_secrets SET last_used_at = ?2, last_used_ip = ?3 WHERE id = ?1 AND COALESCE(last_used_at, 0) <= ?2",
            params![u.secret_id, at, ip],
        )
        ?;
    }
    Ok(())
}

/// Tool keys: their lifecycle, and what authentication reads. Part of the store (`crate::Store`).
#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn create_key(&self, new: NewKey, audit: AuditContext) -> StoreResult<KeyRecord>;
    /// What time alone makes happen to keys, announced: `key.expiring` for keys a week or a day
    /// from their expiry (`announce_expiring`), `key.revoked` for old secrets whose rotation
    /// grace ended (`announce_ended_secrets`). At most `limit` of each; how many in all.
    async fn announce_key_events(&self, now: Timestamp, limit: u32) -> StoreResult<usize>;
    async fn get_key(&self, account_id: AccountId, key_id: KeyId) -> StoreResult<Option<KeyRecord>>;
    async fn list_keys(&self, account_id: AccountId, page: PageRequest) -> StoreResult<Page<KeyRecord>>;
    /// What one end user of a key spent and holds on `day_number` (the day a hold would count
    /// on) and in total; zero for an end user the key never served.
    async fn end_user_spend(&self, key_id: KeyId, end_user: EndUser, day_number: i64) -> StoreResult<EndUserSpend>;
    async fn update_key(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        patch: KeyPatch,
        audit: AuditContext,
    ) -> StoreResult<KeyRecord>;
    /// Revokes the key and all its secrets; revoking a revoked key changes (and audits) nothing.
    async fn revoke_key(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        cause: RevokeCause,
        audit: AuditContext,
    ) -> StoreResult<KeyRecord>;
    /// Ends one secret of a key at once (e.g. the old one during a rotation's grace). The
    /// key's newest secret cannot be revoked this way: that is rotating or revoking the key.
    async fn revoke_secret(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        secret_id: SecretId,
        audit: AuditContext,
    ) -> StoreResult<KeyRecord>;
    async fn rotate_key(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        rotation: Rotation,
        audit: AuditContext,
    ) -> StoreResult<KeyRecord>;
    /// The key and account behind a secret hash, for authentication.
    async fn key_by_secret(&self, hash: SecretHash) -> StoreResult<Option<AuthRecord>>;
    /// Records when and from where keys were last used (coalesced by the caller).
    async fn record_key_use(&self, uses: Vec<KeyUse>) -> StoreResult<()>;
}

#[async_trait]
impl<E: Engine> KeyStore for SqlStore<E> {
    async fn announce_key_events(&self, now: Timestamp, limit: u32) -> StoreResult<usize> {
        self.write_locking(move |conn| {
            Ok(announce_expiring(conn, now, limit)? + announce_ended_secrets(conn, now, limit, None)?)
        })
        .await
    }

    async fn create_key(&self, new: NewKey, ctx: AuditContext) -> StoreResult<KeyRecord> {
        self.write_credentials(move |conn| create(conn, &new, &ctx)).await
    }

    async fn get_key(&self, account_id: AccountId, key_id: KeyId) -> StoreResult<Option<KeyRecord>> {
        self.read(move |conn| load_key(conn, account_id, key_id)).await
    }

    async fn list_keys(&self, account_id: AccountId, page: PageRequest) -> StoreResult<Page<KeyRecord>> {
        self.read(move |conn| list(conn, account_id, page)).await
    }

    async fn end_user_spend(&self, key_id: KeyId, end_user: EndUser, day_number: i64) -> StoreResult<EndUserSpend> {
        self.read(move |conn| {
            let spend = conn.query_row(
                "SELECT COALESCE(d.spent_micros, 0), COALESCE(d.held_micros, 0), t.spent_micros, t.held_micros \
                 FROM end_user_totals t LEFT JOIN end_user_days d \
                   ON d.key_id = t.key_id AND d.end_user = t.end_user AND d.day_number = ?3 \
                 WHERE t.key_id = ?1 AND t.end_user = ?2",
                params![key_id, end_user.as_str(), day_number],
                |r| {
                    Ok(EndUserSpend {
                        spent_day: Micros(r.get(0)?),
                        held_day: Micros(r.get(1)?),
                        spent_total: Micros(r.get(2)?),
                        held_total: Micros(r.get(3)?),
                    })
                },
            )?;
            Ok(spend.unwrap_or_default())
        })
        .await
    }

    async fn update_key(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        patch: KeyPatch,
        ctx: AuditContext,
    ) -> StoreResult<KeyRecord> {
        self.write_credentials(move |conn| update(conn, account_id, key_id, &patch, &ctx)).await
    }

    async fn revoke_key(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        cause: RevokeCause,
        ctx: AuditContext,
    ) -> StoreResult<KeyRecord> {
        self.write_credentials(move |conn| revoke(conn, account_id, key_id, cause, &ctx)).await
    }

    async fn revoke_secret(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        secret_id: SecretId,
        ctx: AuditContext,
    ) -> StoreResult<KeyRecord> {
        self.write_credentials(move |conn| revoke_secret(conn, account_id, key_id, secret_id, &ctx)).await
    }

    async fn rotate_key(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        rotation: Rotation,
        ctx: AuditContext,
    ) -> StoreResult<KeyRecord> {
        self.write_credentials(move |conn| rotate(conn, account_id, key_id, &rotation, &ctx)).await
    }

    async fn key_by_secret(&self, hash: SecretHash) -> StoreResult<Option<AuthRecord>> {
        self.read(move |conn| by_secret(conn, &hash)).await
    }

    async fn record_key_use(&self, uses: Vec<KeyUse>) -> StoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        self.write_locking(move |conn| record_use(conn, &uses)).await
    }
}

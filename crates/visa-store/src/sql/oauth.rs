//! OAuth for MCP clients that cannot hold a key: the clients that registered themselves, the
//! grants members approved (each one a tool key minted for its client, `oauth_grants`), the
//! authorization codes that hand a grant over, and the rotating refresh tokens. The access token
//! is a secret of the grant's key that ends by itself (`key_secrets.expires_at`), so every check
//! of a key — revoked, expired, CIDR, caps — applies to it, and revoking the key ends the grant
//! on every node at once (the credential caches hear of it as of any key change).

use super::db::{Db, Row, params};
use super::{Engine, SqlStore, audit, from_db, keys, to_db};
use crate::StoreResult;
use crate::model::*;
use async_trait::async_trait;
use serde_json::json;
use std::collections::HashMap;
use visa_core::secret::SecretHash;

const CLIENT_COLUMNS: &str = "c.id, c.client_id, c.client_name, c.redirect_uris, c.metadata, c.created_at";

/// The client whose `CLIENT_COLUMNS` start at column `first` of `row`.
fn client_at(row: &Row, first: usize) -> StoreResult<OAuthClient> {
    Ok(OAuthClient {
        id: row.get(first)?,
        client_id: row.get(first + 1)?,
        name: row.get(first + 2)?,
        redirect_uris: serde_json::from_str(&row.get::<String>(first + 3)?).unwrap_or_default(),
        metadata: serde_json::from_str(&row.get::<String>(first + 4)?).unwrap_or_default(),
        created_at: from_db(row.get(first + 5)?),
    })
}

fn register(conn: &dyn Db, new: &NewOAuthClient, now: Timestamp) -> StoreResult<OAuthClient> {
    let uris = serde_json::to_string(&new.redirect_uris).unwrap_or_default();
    let id = conn.insert(
        "INSERT INTO oauth_clients (client_id, client_name, redirect_uris, metadata, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        params![new.client_id, new.name, uris, new.metadata.to_string(), to_db(now)],
    )?;
    Ok(OAuthClient {
        id,
        client_id: new.client_id.clone(),
        name: new.name.clone(),
        redirect_uris: new.redirect_uris.clone(),
        metadata: new.metadata.clone(),
        created_at: now,
    })
}

fn client(conn: &dyn Db, client_id: &str) -> StoreResult<Option<OAuthClient>> {
    let sql = format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients c WHERE c.client_id = ?1");
    conn.query_row(&sql, params![client_id], |row| client_at(row, 0))
}

fn grant_target(key_id: KeyId) -> String {
    format!("key:{key_id}")
}

/// Mints the grant's key (audited as any key's creation), records the grant and its code, and
/// audits the consent.
fn approve(conn: &dyn Db, approval: &OAuthApproval, ctx: &AuditContext) -> StoreResult<KeyRecord> {
    let key = keys::create(conn, &approval.key, ctx)?;
    conn.execute(
        "INSERT INTO oauth_grants (key_id, client_id, member_id, resource, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![key.id, approval.client.id, approval.member_id, approval.resource, to_db(ctx.now)],
    )?;
    conn.execute(
        "INSERT INTO oauth_codes (hash, key_id, redirect_uri, code_challenge, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            approval.code.0,
            key.id,
            approval.redirect_uri,
            approval.code_challenge,
            to_db(approval.code_expires_at)
        ],
    )?;
    let after = json!({
        "client_id": approval.client.client_id,
        "redirect_uri": approval.redirect_uri,
        "resource": approval.resource,
    });
    audit::record(conn, key.account_id, ctx, "oauth.approved", &grant_target(key.id), json!(null), after)?;
    Ok(key)
}

/// The code's grant, marking the code used; `first_use` says whether it was unused until now
/// (the guarded update decides, so two redemptions racing see one first use).
fn redeem(conn: &dyn Db, code: &SecretHash, now: Timestamp) -> StoreResult<Option<RedeemedCode>> {
    let found = conn.query_row(
        "SELECT c.key_id, k.account_id, g.client_id, c.redirect_uri, c.code_challenge, g.resource, c.expires_at \
         FROM oauth_codes c JOIN keys k ON k.id = c.key_id JOIN oauth_grants g ON g.key_id = c.key_id \
         WHERE c.hash = ?1",
        params![code.0],
        |r| {
            Ok(RedeemedCode {
                key_id: r.get(0)?,
                account_id: r.get(1)?,
                client: r.get(2)?,
                redirect_uri: r.get(3)?,
                code_challenge: r.get(4)?,
                resource: r.get(5)?,
                expires_at: from_db(r.get(6)?),
                first_use: false,
            })
        },
    )?;
    let Some(mut redeemed) = found else { return Ok(None) };
    redeemed.first_use = conn.execute(
        "UPDATE oauth_codes SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL",
        params![code.0, to_db(now)],
    )? == 1;
    Ok(Some(redeemed))
}

/// New tokens for the grant's key: the access token becomes its only live secret (the previous
/// one ends now), and the refresh token is recorded.
fn issue(
    conn: &dyn Db,
    account_id: AccountId,
    key_id: KeyId,
    tokens: &OAuthTokens,
    ctx: &AuditContext,
    action: &str,
) -> StoreResult<KeyRecord> {
    let rotation = Rotation { secret: tokens.access.clone(), old_secrets_end: ctx.now };
    let key = keys::rotate_as(conn, account_id, key_id, &rotation, ctx, action)?;
    conn.execute(
        "INSERT INTO oauth_refresh_tokens (hash, key_id, created_at) VALUES (?1, ?2, ?3)",
        params![tokens.refresh.0, key_id, to_db(ctx.now)],
    )?;
    Ok(key)
}

fn refresh(
    conn: &dyn Db,
    presented: &SecretHash,
    client: i64,
    tokens: &OAuthTokens,
    ctx: &AuditContext,
) -> StoreResult<Refreshed> {
    let found = conn.query_row(
        "SELECT r.key_id, k.account_id, g.client_id, r.used_at IS NOT NULL, k.revoked_at, k.expires_at \
         FROM oauth_refresh_tokens r JOIN keys k ON k.id = r.key_id JOIN oauth_grants g ON g.key_id = r.key_id \
         WHERE r.hash = ?1",
        params![presented.0],
        |r| {
            Ok((
                r.get::<KeyId>(0)?,
                r.get::<AccountId>(1)?,
                r.get::<i64>(2)?,
                r.get::<bool>(3)?,
                r.get::<Option<i64>>(4)?,
                r.get::<Option<i64>>(5)?,
            ))
        },
    )?;
    let Some((key_id, account_id, grant_client, used, revoked_at, expires_at)) = found else {
        return Ok(Refreshed::Unknown);
    };
    if grant_client != client {
        return Ok(Refreshed::Unknown);
    }
    if revoked_at.is_some() || expires_at.is_some_and(|at| at <= to_db(ctx.now)) {
        return Ok(Refreshed::Ended);
    }
    let first = !used
        && conn.execute(
            "UPDATE oauth_refresh_tokens SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL",
            params![presented.0, to_db(ctx.now)],
        )? == 1;
    if !first {
        keys::revoke(conn, account_id, key_id, RevokeCause::OAuthReplay, ctx)?;
        return Ok(Refreshed::Replayed(key_id));
    }
    issue(conn, account_id, key_id, tokens, ctx, "oauth.refreshed").map(|key| Refreshed::Tokens(Box::new(key)))
}

fn grants(conn: &dyn Db, account_id: AccountId) -> StoreResult<Vec<OAuthGrant>> {
    let sql = format!(
        "SELECT g.key_id, g.resource, g.created_at, m.login, {CLIENT_COLUMNS} FROM oauth_grants g \
         JOIN oauth_clients c ON c.id = g.client_id JOIN keys k ON k.id = g.key_id \
         JOIN members m ON m.id = g.member_id WHERE k.account_id = ?1 ORDER BY g.key_id DESC"
    );
    let rows = conn.query_map(&sql, params![account_id], |r| {
        Ok((r.get::<KeyId>(0)?, r.get::<String>(1)?, from_db(r.get(2)?), r.get::<String>(3)?, client_at(r, 4)?))
    })?;
    let granted = "k.id IN (SELECT key_id FROM oauth_grants)";
    let mut keys: HashMap<KeyId, KeyRecord> =
        keys::keys_where(conn, granted, "", params![account_id])?.into_iter().map(|k| (k.id, k)).collect();
    rows.into_iter()
        .map(|(key_id, resource, created_at, approved_by, client)| {
            let key = keys.remove(&key_id).ok_or(crate::StoreError::NotFound)?;
            Ok(OAuthGrant { key, client, approved_by, resource, created_at })
        })
        .collect()
}

/// Codes past their expiry: they can no longer be redeemed, so nothing needs them.
pub(crate) fn sweep(conn: &dyn Db, now: Timestamp, limit: u32) -> StoreResult<usize> {
    conn.execute(
        "DELETE FROM oauth_codes WHERE hash IN (SELECT hash FROM oauth_codes WHERE expires_at <= ?1 LIMIT ?2)",
        params![to_db(now), limit],
    )
}

/// OAuth clients, grants and tokens. Part of the store (`crate::Store`).
#[async_trait]
pub trait OAuthStore: Send + Sync {
    async fn register_oauth_client(&self, new: NewOAuthClient, now: Timestamp) -> StoreResult<OAuthClient>;
    async fn oauth_client(&self, client_id: &str) -> StoreResult<Option<OAuthClient>>;
    /// A member's consent: mints the grant's key and records its code, in one transaction.
    async fn approve_oauth(&self, approval: OAuthApproval, audit: AuditContext) -> StoreResult<KeyRecord>;
    /// Marks a code used and answers what it was issued for.
    async fn redeem_oauth_code(&self, code: SecretHash, now: Timestamp) -> StoreResult<Option<RedeemedCode>>;
    /// The first tokens of a redeemed code's grant.
    async fn issue_oauth_tokens(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        tokens: OAuthTokens,
        audit: AuditContext,
    ) -> StoreResult<KeyRecord>;
    /// Trades a refresh token of `client` for new tokens; a second presentation of one revokes
    /// its grant's key.
    async fn refresh_oauth(
        &self,
        presented: SecretHash,
        client: i64,
        tokens: OAuthTokens,
        audit: AuditContext,
    ) -> StoreResult<Refreshed>;
    /// Revokes the grant a replayed code was issued for.
    async fn revoke_oauth_grant(&self, account_id: AccountId, key_id: KeyId, audit: AuditContext) -> StoreResult<()>;
    /// The account's connected clients, newest first.
    async fn oauth_grants(&self, account_id: AccountId) -> StoreResult<Vec<OAuthGrant>>;
}

#[async_trait]
impl<E: Engine> OAuthStore for SqlStore<E> {
    async fn register_oauth_client(&self, new: NewOAuthClient, now: Timestamp) -> StoreResult<OAuthClient> {
        self.write(move |conn| register(conn, &new, now)).await
    }

    async fn oauth_client(&self, client_id: &str) -> StoreResult<Option<OAuthClient>> {
        let client_id = client_id.to_owned();
        self.read(move |conn| client(conn, &client_id)).await
    }

    async fn approve_oauth(&self, approval: OAuthApproval, ctx: AuditContext) -> StoreResult<KeyRecord> {
        self.write_credentials(move |conn| approve(conn, &approval, &ctx)).await
    }

    async fn redeem_oauth_code(&self, code: SecretHash, now: Timestamp) -> StoreResult<Option<RedeemedCode>> {
        self.write(move |conn| redeem(conn, &code, now)).await
    }

    async fn issue_oauth_tokens(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        tokens: OAuthTokens,
        ctx: AuditContext,
    ) -> StoreResult<KeyRecord> {
        self.write_credentials(move |conn| issue(conn, account_id, key_id, &tokens, &ctx, "oauth.tokens_issued")).await
    }

    async fn refresh_oauth(
        &self,
        presented: SecretHash,
        client: i64,
        tokens: OAuthTokens,
        ctx: AuditContext,
    ) -> StoreResult<Refreshed> {
        self.write_credentials(move |conn| refresh(conn, &presented, client, &tokens, &ctx)).await
    }

    async fn revoke_oauth_grant(&self, account_id: AccountId, key_id: KeyId, ctx: AuditContext) -> StoreResult<()> {
        self.write_credentials(move |conn| {
            keys::revoke(conn, account_id, key_id, RevokeCause::OAuthReplay, &ctx).map(drop)
        })
        .await
    }

    async fn oauth_grants(&self, account_id: AccountId) -> StoreResult<Vec<OAuthGrant>> {
        self.read(move |conn| grants(conn, account_id)).await
    }
}

//! The `Store` trait over SQLite: each method is one read on the pool or one job for the
//! group-committing writer. Rows are turned back into validated domain values here.

use super::audit::{self, account_snapshot, admin_key_snapshot, key_snapshot};
use super::{SqliteStore, map_sqlite_error, members, money, operator_requests, sessions, usage};
use crate::model::*;
use crate::{Durability, Refusal, Store, StoreError, StoreResult};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;
use visa_core::key::Environment;
use visa_core::money::Micros;
use visa_core::pagination::{Page, PageRequest};
use visa_core::policy::{CidrAllowlist, KeyLabel, ToolGrant, ToolScope};
use visa_core::role::Role;
use visa_core::secret::SecretHash;

pub(crate) fn to_db(t: Timestamp) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub(crate) fn from_db(micros: i64) -> Timestamp {
    Timestamp::from_unix_timestamp_nanos(i128::from(micros) * 1_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, what.to_owned(), rusqlite::types::Type::Text)
}

const ACCOUNT_COLUMNS: &str = "id, login, approved, balance_micros, held_micros, created_at";

fn account_from_row(row: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: row.get(0)?,
        login: row.get(1)?,
        approved: row.get(2)?,
        balance: Micros(row.get(3)?),
        held: Micros(row.get(4)?),
        created_at: from_db(row.get(5)?),
    })
}

/// The one row of `select` (a `SELECT ... FROM ...` without a WHERE) matching `clause`.
pub(crate) fn select_one<T>(
    conn: &Connection,
    select: &str,
    clause: &str,
    value: impl rusqlite::ToSql,
    from_row: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Option<T>> {
    conn.query_row(&format!("{select} WHERE {clause}"), [value], from_row).optional().map_err(map_sqlite_error)
}

pub(crate) fn account_where(
    conn: &Connection,
    clause: &str,
    value: impl rusqlite::ToSql,
) -> StoreResult<Option<Account>> {
    select_one(conn, &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts"), clause, value, account_from_row)
}

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

fn admin_key_where(
    conn: &Connection,
    clause: &str,
    value: impl rusqlite::ToSql,
) -> StoreResult<Option<(AdminKeyRecord, SecretHash)>> {
    select_one(conn, &format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys"), clause, value, admin_key_from_row)
}

const KEY_COLUMNS: &str = "k.id, k.account_id, a.login, k.environment, k.label, k.tool_scope, k.allowed_tools, \
    k.allowed_cidrs, k.daily_cap_cents, k.total_cap_cents, k.expires_at, k.read_only, k.created_at, k.revoked_at, \
    k.last_used_at, k.last_used_ip, s.latest_day, COALESCE(d.spent_micros, 0), s.spent_total_micros, k.rate_limit_per_second, \
    COALESCE(d.held_micros, 0), s.held_total_micros";

/// The tables `KEY_COLUMNS` reads from.
const KEY_TABLES: &str = "keys k JOIN key_spend s ON s.key_id = k.id JOIN accounts a ON a.id = k.account_id \
    LEFT JOIN key_days d ON d.key_id = k.id AND d.day_number = s.latest_day";

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let environment = Environment::parse(&row.get::<_, String>(3)?).ok_or_else(|| corrupt("environment"))?;
    let label = KeyLabel::parse(&row.get::<_, String>(4)?).map_err(|_| corrupt("label"))?;
    let scope = ToolScope::parse(&row.get::<_, String>(5)?).map_err(|_| corrupt("tool_scope"))?;
    let tools: Vec<String> = serde_json::from_str(&row.get::<_, String>(6)?).map_err(|_| corrupt("allowed_tools"))?;
    let cidrs: Vec<String> = serde_json::from_str(&row.get::<_, String>(7)?).map_err(|_| corrupt("allowed_cidrs"))?;
    Ok(KeyRecord {
        id: row.get(0)?,
        account_id: row.get(1)?,
        owner: row.get(2)?,
        environment,
        policy: KeyPolicy {
            label,
            grant: ToolGrant::new(Some(scope), Some(tools)).map_err(|_| corrupt("tool grant"))?,
            allowed_cidrs: CidrAllowlist::parse(&cidrs).map_err(|_| corrupt("allowed_cidrs"))?,
            daily_cap_cents: row.get(8)?,
            total_cap_cents: row.get(9)?,
            expires_at: row.get::<_, Option<i64>>(10)?.map(from_db),
            read_only: row.get(11)?,
            rate_limit_per_second: row.get(19)?,
        },
        created_at: from_db(row.get(12)?),
        revoked_at: row.get::<_, Option<i64>>(13)?.map(from_db),
        last_used_at: row.get::<_, Option<i64>>(14)?.map(from_db),
        last_used_ip: row.get::<_, Option<String>>(15)?.and_then(|ip| ip.parse().ok()),
        latest_day: row.get(16)?,
        spent_day: Micros(row.get(17)?),
        held_day: Micros(row.get(20)?),
        spent_total: Micros(row.get(18)?),
        held_total: Micros(row.get(21)?),
        secrets: Vec::new(),
    })
}

fn secret_from_row(row: &Row<'_>) -> rusqlite::Result<SecretRecord> {
    Ok(SecretRecord {
        id: row.get(0)?,
        key_prefix: row.get(1)?,
        created_at: from_db(row.get(2)?),
        expires_at: row.get::<_, Option<i64>>(3)?.map(from_db),
        revoked_at: row.get::<_, Option<i64>>(4)?.map(from_db),
        last_used_at: row.get::<_, Option<i64>>(5)?.map(from_db),
        last_used_ip: row.get::<_, Option<String>>(6)?.and_then(|ip| ip.parse().ok()),
    })
}

fn with_secrets(conn: &Connection, mut key: KeyRecord) -> rusqlite::Result<KeyRecord> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, key_prefix, created_at, expires_at, revoked_at, last_used_at, last_used_ip \
         FROM key_secrets WHERE key_id = ?1 ORDER BY id DESC",
    )?;
    key.secrets = stmt.query_map([key.id], secret_from_row)?.collect::<rusqlite::Result<_>>()?;
    Ok(key)
}

/// One of the account's keys, with its secrets; `None` for another account's key.
fn load_key(conn: &Connection, account_id: i64, key_id: i64) -> StoreResult<Option<KeyRecord>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM {KEY_TABLES} WHERE k.id = ?1 AND k.account_id = ?2");
    let key = conn.query_row(&sql, params![key_id, account_id], key_from_row).optional().map_err(map_sqlite_error)?;
    key.map(|k| with_secrets(conn, k)).transpose().map_err(map_sqlite_error)
}

pub(crate) fn require_key(conn: &Connection, account_id: i64, key_id: i64) -> StoreResult<KeyRecord> {
    load_key(conn, account_id, key_id)?.ok_or(StoreError::NotFound)
}

fn insert_secret(conn: &Connection, key_id: i64, secret: &NewSecret, now: Timestamp) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO key_secrets (key_id, hash, key_prefix, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![key_id, &secret.hash.0[..], secret.key_prefix, to_db(now)],
    )
    .map_err(map_sqlite_error)?;
    Ok(())
}

fn policy_params(policy: &KeyPolicy) -> (String, String, Option<i64>) {
    let tools = serde_json::to_string(policy.grant.tools()).expect("strings serialize");
    let cidrs = serde_json::to_string(&policy.allowed_cidrs.to_strings()).expect("strings serialize");
    (tools, cidrs, policy.expires_at.map(to_db))
}

fn write_policy(conn: &Connection, key_id: i64, policy: &KeyPolicy) -> StoreResult<()> {
    let (tools, cidrs, expires_at) = policy_params(policy);
    conn.execute(
        "UPDATE keys SET label = ?2, tool_scope = ?3, allowed_tools = ?4, allowed_cidrs = ?5, daily_cap_cents = ?6, \
         total_cap_cents = ?7, expires_at = ?8, read_only = ?9, rate_limit_per_second = ?10 WHERE id = ?1",
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
            policy.rate_limit_per_second
        ],
    )
    .map_err(map_sqlite_error)?;
    Ok(())
}

fn apply_patch(policy: &mut KeyPolicy, patch: &KeyPatch) {
    if let Some(label) = patch.label.clone() {
        policy.label = label;
    }
    if let Some(grant) = patch.grant.clone() {
        policy.grant = grant;
    }
    if let Some(cidrs) = patch.allowed_cidrs.clone() {
        policy.allowed_cidrs = cidrs;
    }
    if let Some(cap) = patch.daily_cap_cents {
        policy.daily_cap_cents = cap;
    }
    if let Some(cap) = patch.total_cap_cents {
        policy.total_cap_cents = cap;
    }
    if let Some(at) = patch.expires_at {
        policy.expires_at = at;
    }
    if let Some(read_only) = patch.read_only {
        policy.read_only = read_only;
    }
    if let Some(rate) = patch.rate_limit_per_second {
        policy.rate_limit_per_second = rate;
    }
}

fn add_ledger_entry(conn: &Connection, account_id: i64, kind: &str, amount: Micros, now: Timestamp) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO ledger (account_id, kind, amount_micros, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![account_id, kind, amount.0, to_db(now)],
    )
    .map_err(map_sqlite_error)?;
    Ok(())
}

fn credit(conn: &Connection, account_id: i64, amount: Micros, now: Timestamp) -> StoreResult<()> {
    if amount.0 <= 0 {
        return Ok(());
    }
    add_ledger_entry(conn, account_id, "credit", amount, now)?;
    conn.execute(
        "UPDATE accounts SET balance_micros = balance_micros + ?2 WHERE id = ?1",
        params![account_id, amount.0],
    )
    .map_err(map_sqlite_error)?;
    Ok(())
}

/// Reloads a key after a change and audits the difference from `before`.
fn audited_key_change(
    conn: &Connection,
    ctx: &AuditContext,
    action: &str,
    before: &KeyRecord,
) -> StoreResult<KeyRecord> {
    let after = require_key(conn, before.account_id, before.id)?;
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

fn key_target(id: i64) -> String {
    format!("key:{id}")
}

fn admin_key_target(id: i64) -> String {
    format!("admin_key:{id}")
}

fn account_target(id: i64) -> String {
    format!("account:{id}")
}

fn require_account(conn: &Connection, login: &str) -> StoreResult<Account> {
    account_where(conn, "login = ?1", login)?.ok_or(StoreError::NotFound)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_account(&self, new: NewAccount, ctx: AuditContext) -> StoreResult<(Account, Member)> {
        self.write(move |conn| {
            if account_where(conn, "login = ?1", &new.login)?.is_some() {
                return Err(StoreError::Conflict(format!("an account named '{}' already exists", new.login)));
            }
            conn.execute(
                "INSERT INTO accounts (login, approved, created_at) VALUES (?1, ?2, ?3)",
                params![new.login, new.approved, to_db(ctx.now)],
            )
            .map_err(map_sqlite_error)?;
            let id = conn.last_insert_rowid();
            let owner =
                members::insert(conn, id, &new.login, Role::Owner, new.password_hash.as_deref(), None, ctx.now)?;
            credit(conn, id, new.credit, ctx.now)?;
            let account = account_where(conn, "id = ?1", id)?.ok_or(StoreError::NotFound)?;
            audit::record(
                conn,
                id,
                &ctx,
                "account.created",
                &account_target(id),
                Value::Null,
                account_snapshot(&account),
            )?;
            Ok((account, owner))
        })
        .await
    }

    async fn account_by_login(&self, login: &str) -> StoreResult<Option<Account>> {
        let login = login.to_owned();
        self.read(move |conn| account_where(conn, "login = ?1", login)).await
    }

    async fn set_account_approved(&self, login: &str, approved: bool, ctx: AuditContext) -> StoreResult<Account> {
        let login = login.to_owned();
        self.write(move |conn| {
            let before = require_account(conn, &login)?;
            conn.execute("UPDATE accounts SET approved = ?2 WHERE id = ?1", params![before.id, approved])
                .map_err(map_sqlite_error)?;
            let after = Account { approved, ..before.clone() };
            let (old, new) = (account_snapshot(&before), account_snapshot(&after));
            audit::record(conn, after.id, &ctx, "account.approval_changed", &account_target(after.id), old, new)?;
            Ok(after)
        })
        .await
    }

    async fn credit_account(
        &self,
        login: &str,
        amount: Micros,
        ctx: AuditContext,
        request: Option<OperatorRequest>,
    ) -> StoreResult<Account> {
        let login = login.to_owned();
        self.write(move |conn| {
            if let Some(first) = operator_requests::replay(conn, request.as_ref())? {
                let mut account = require_account(conn, &login)?;
                (account.balance, account.held) = (Micros(first.balance_after), Micros(first.held_after));
                return Ok(account);
            }
            let before = require_account(conn, &login)?;
            credit(conn, before.id, amount, ctx.now)?;
            let after = require_account(conn, &login)?;
            operator_requests::remember(conn, request.as_ref(), &login, Some(&after), ctx.now)?;
            let (old, new) = (account_snapshot(&before), account_snapshot(&after));
            audit::record(conn, after.id, &ctx, "account.credited", &account_target(after.id), old, new)?;
            Ok(after)
        })
        .await
    }

    async fn end_session(&self, token_hash: SecretHash) -> StoreResult<()> {
        self.write(move |conn| {
            conn.execute("DELETE FROM sessions WHERE token_hash = ?1", params![&token_hash.0[..]])
                .map(drop)
                .map_err(map_sqlite_error)
        })
        .await
    }

    async fn create_session(&self, new: NewSession, ctx: AuditContext) -> StoreResult<()> {
        self.write(move |conn| sessions::create(conn, &new, &ctx)).await
    }

    async fn list_sessions(
        &self,
        account_id: i64,
        member_id: i64,
        current: Option<SecretHash>,
        now: Timestamp,
    ) -> StoreResult<Vec<SessionRecord>> {
        self.read(move |conn| sessions::list(conn, account_id, member_id, current.as_ref(), now)).await
    }

    async fn end_sessions(
        &self,
        account_id: i64,
        member_id: i64,
        which: SessionsToEnd,
        caller: Role,
        ctx: AuditContext,
    ) -> StoreResult<u64> {
        self.write(move |conn| sessions::end(conn, account_id, member_id, &which, caller, &ctx)).await
    }

    async fn change_password(
        &self,
        account_id: i64,
        member_id: i64,
        password_hash: String,
        keep: SecretHash,
        ctx: AuditContext,
    ) -> StoreResult<(Member, u64)> {
        self.write(move |conn| members::change_password(conn, account_id, member_id, &password_hash, &keep, &ctx)).await
    }

    async fn session_principal(
        &self,
        token_hash: SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<(Account, Member)>> {
        self.read(move |conn| {
            let Some(member) = members::session_member(conn, &token_hash, now)? else {
                return Ok(None);
            };
            Ok(account_where(conn, "id = ?1", member.account_id)?.map(|account| (account, member)))
        })
        .await
    }

    async fn member_by_login(&self, login: &str) -> StoreResult<Option<Member>> {
        let login = login.to_owned();
        self.read(move |conn| members::active_member(conn, &login)).await
    }

    async fn member_by_invite(&self, invite_hash: SecretHash) -> StoreResult<Option<Member>> {
        self.read(move |conn| members::member_where(conn, "invite_hash = ?1", invite_hash.0.to_vec())).await
    }

    async fn list_members(&self, account_id: i64) -> StoreResult<Vec<Member>> {
        self.read(move |conn| members::list(conn, account_id)).await
    }

    async fn invite_member(&self, account_id: i64, new: NewMember, ctx: AuditContext) -> StoreResult<Member> {
        self.write(move |conn| members::invite(conn, account_id, &new, &ctx)).await
    }

    async fn accept_invite(
        &self,
        invite_hash: SecretHash,
        password_hash: String,
        ctx: AuditContext,
    ) -> StoreResult<Member> {
        self.write(move |conn| members::accept_invite(conn, &invite_hash, &password_hash, &ctx)).await
    }

    async fn change_member_role(
        &self,
        account_id: i64,
        member_id: i64,
        role: Role,
        caller: Role,
        ctx: AuditContext,
    ) -> StoreResult<Member> {
        self.write(move |conn| members::change_role(conn, account_id, member_id, role, caller, &ctx)).await
    }

    async fn remove_member(
        &self,
        account_id: i64,
        member_id: i64,
        caller: Role,
        ctx: AuditContext,
    ) -> StoreResult<Member> {
        self.write(move |conn| members::remove(conn, account_id, member_id, caller, &ctx)).await
    }

    async fn list_audit(
        &self,
        account_id: i64,
        filter: AuditFilter,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEntry>> {
        self.read(move |conn| audit::list(conn, account_id, &filter, page)).await
    }

    async fn create_key(&self, new: NewKey, ctx: AuditContext) -> StoreResult<KeyRecord> {
        self.write(move |conn| {
            let (tools, cidrs, expires_at) = policy_params(&new.policy);
            let p = &new.policy;
            conn.execute(
                "INSERT INTO keys (account_id, environment, label, tool_scope, allowed_tools, allowed_cidrs, daily_cap_cents, \
                 total_cap_cents, expires_at, read_only, created_at, rate_limit_per_second) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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
                    p.rate_limit_per_second
                ],
            )
            .map_err(map_sqlite_error)?;
            let key_id = conn.last_insert_rowid();
            conn.execute("INSERT INTO key_spend (key_id) VALUES (?1)", [key_id]).map_err(map_sqlite_error)?;
            insert_secret(conn, key_id, &new.secret, ctx.now)?;
            let key = require_key(conn, new.account_id, key_id)?;
            audit::record(conn, key.account_id, &ctx, "key.created", &key_target(key_id), Value::Null, key_snapshot(&key))?;
            Ok(key)
        })
        .await
    }

    async fn get_key(&self, account_id: i64, key_id: i64) -> StoreResult<Option<KeyRecord>> {
        self.read(move |conn| load_key(conn, account_id, key_id)).await
    }

    async fn list_keys(&self, account_id: i64, page: PageRequest) -> StoreResult<Page<KeyRecord>> {
        self.read(move |conn| {
            let (op, order, cursor) = page.id_bounds();
            let sql = format!(
                "SELECT {KEY_COLUMNS} FROM {KEY_TABLES} \
                 WHERE k.account_id = ?1 AND k.id {op} ?2 ORDER BY k.id {order} LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(map_sqlite_error)?;
            let rows = stmt
                .query_map(params![account_id, cursor, page.fetch_limit()], key_from_row)
                .and_then(|rows| {
                    rows.map(|k| k.and_then(|k| with_secrets(conn, k))).collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(map_sqlite_error)?;
            Ok(Page::cut(&page, rows, |k| k.id))
        })
        .await
    }

    async fn update_key(
        &self,
        account_id: i64,
        key_id: i64,
        patch: KeyPatch,
        ctx: AuditContext,
    ) -> StoreResult<KeyRecord> {
        self.write(move |conn| {
            let before = require_key(conn, account_id, key_id)?;
            let mut policy = before.policy.clone();
            apply_patch(&mut policy, &patch);
            write_policy(conn, key_id, &policy)?;
            audited_key_change(conn, &ctx, "key.updated", &before)
        })
        .await
    }

    async fn revoke_key(
        &self,
        account_id: i64,
        key_id: i64,
        cause: RevokeCause,
        ctx: AuditContext,
    ) -> StoreResult<KeyRecord> {
        self.write(move |conn| {
            let before = require_key(conn, account_id, key_id)?;
            let at = to_db(ctx.now);
            conn.execute("UPDATE keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1", params![key_id, at])
                .map_err(map_sqlite_error)?;
            conn.execute(
                "UPDATE key_secrets SET revoked_at = COALESCE(revoked_at, ?2) WHERE key_id = ?1",
                params![key_id, at],
            )
            .map_err(map_sqlite_error)?;
            let action = match cause {
                RevokeCause::Requested => "key.revoked",
                RevokeCause::Leaked => "key.revoked_leaked",
            };
            audited_key_change(conn, &ctx, action, &before)
        })
        .await
    }

    async fn revoke_secret(
        &self,
        account_id: i64,
        key_id: i64,
        secret_id: i64,
        ctx: AuditContext,
    ) -> StoreResult<KeyRecord> {
        self.write(move |conn| {
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
            )
            .map_err(map_sqlite_error)?;
            audited_key_change(conn, &ctx, "key.secret_revoked", &key)
        })
        .await
    }

    async fn rotate_key(
        &self,
        account_id: i64,
        key_id: i64,
        rotation: Rotation,
        ctx: AuditContext,
    ) -> StoreResult<KeyRecord> {
        self.write(move |conn| {
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
                    "UPDATE key_secrets SET expires_at = MIN(COALESCE(expires_at, ?2), ?2) WHERE key_id = ?1 AND revoked_at IS NULL",
                    params![key_id, end],
                )
            }
            .map_err(map_sqlite_error)?;
            insert_secret(conn, key_id, &rotation.secret, ctx.now)?;
            audited_key_change(conn, &ctx, "key.rotated", &key)
        })
        .await
    }

    async fn key_by_secret(&self, hash: SecretHash) -> StoreResult<Option<AuthRecord>> {
        self.read(move |conn| {
            let found = conn
                .query_row(
                    "SELECT s.id, s.hash, s.key_id, k.account_id, a.approved FROM key_secrets s \
                     JOIN keys k ON k.id = s.key_id JOIN accounts a ON a.id = k.account_id WHERE s.hash = ?1",
                    [&hash.0[..]],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, Vec<u8>>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, bool>(4)?,
                        ))
                    },
                )
                .optional()
                .map_err(map_sqlite_error)?;
            let Some((secret_id, stored, key_id, account_id, account_approved)) = found else {
                return Ok(None);
            };
            let secret_hash =
                SecretHash(stored.try_into().map_err(|_| StoreError::Internal("bad secret hash".into()))?);
            let key = require_key(conn, account_id, key_id)?;
            Ok(Some(AuthRecord { key, secret_id, secret_hash, account_approved }))
        })
        .await
    }

    async fn record_key_use(&self, uses: Vec<KeyUse>) -> StoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            for u in &uses {
                let (at, ip) = (to_db(u.at), u.ip.to_string());
                conn.execute(
                    "UPDATE keys SET last_used_at = ?2, last_used_ip = ?3 WHERE id = ?1 AND COALESCE(last_used_at, 0) <= ?2",
                    params![u.key_id, at, ip],
                )
                .map_err(map_sqlite_error)?;
                conn.execute(
                    "UPDATE key_secrets SET last_used_at = ?2, last_used_ip = ?3 WHERE id = ?1 AND COALESCE(last_used_at, 0) <= ?2",
                    params![u.secret_id, at, ip],
                )
                .map_err(map_sqlite_error)?;
            }
            Ok(())
        })
        .await
    }

    async fn create_admin_key(
        &self,
        account_id: i64,
        label: KeyLabel,
        environment: Environment,
        secret: NewSecret,
        ctx: AuditContext,
    ) -> StoreResult<AdminKeyRecord> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO admin_keys (account_id, label, environment, hash, key_prefix, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![account_id, label.as_str(), environment.as_str(), &secret.hash.0[..], secret.key_prefix, to_db(ctx.now)],
            )
            .map_err(map_sqlite_error)?;
            let key =
                admin_key_where(conn, "id = ?1", conn.last_insert_rowid())?.map(|(k, _)| k).ok_or(StoreError::NotFound)?;
            let target = admin_key_target(key.id);
            audit::record(conn, account_id, &ctx, "admin_key.created", &target, Value::Null, admin_key_snapshot(&key))?;
            Ok(key)
        })
        .await
    }

    async fn list_admin_keys(&self, account_id: i64) -> StoreResult<Vec<AdminKeyRecord>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys WHERE account_id = ?1 ORDER BY id DESC"))
                .map_err(map_sqlite_error)?;
            let rows: Vec<(AdminKeyRecord, SecretHash)> =
                stmt.query_map([account_id], admin_key_from_row).and_then(|r| r.collect()).map_err(map_sqlite_error)?;
            Ok(rows.into_iter().map(|(k, _)| k).collect())
        })
        .await
    }

    async fn revoke_admin_key(&self, account_id: i64, id: i64, ctx: AuditContext) -> StoreResult<AdminKeyRecord> {
        self.write(move |conn| {
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
            audit::record(conn, account_id, &ctx, "admin_key.revoked", &admin_key_target(id), old, new)?;
            Ok(after)
        })
        .await
    }

    async fn admin_key_by_secret(&self, hash: SecretHash) -> StoreResult<Option<(AdminKeyRecord, SecretHash)>> {
        self.read(move |conn| admin_key_where(conn, "hash = ?1", hash.0.to_vec())).await
    }

    async fn record_usage(&self, counts: Vec<UsageCount>) -> StoreResult<()> {
        if counts.is_empty() {
            return Ok(());
        }
        self.write(move |conn| usage::record(conn, &counts)).await
    }

    async fn key_usage(&self, key_id: i64, since_minute: i64, until_minute: i64) -> StoreResult<Vec<UsageCount>> {
        self.read(move |conn| usage::of_key(conn, key_id, since_minute, until_minute)).await
    }

    async fn account_by_id(&self, account_id: i64) -> StoreResult<Option<Account>> {
        self.read(move |conn| account_where(conn, "id = ?1", account_id)).await
    }

    async fn begin_execution(&self, start: ExecutionStart) -> StoreResult<(BeginOutcome, Durability)> {
        self.writer.write_committed(move |conn| money::begin(conn, &start)).await
    }

    async fn finish_execution(
        &self,
        execution: &ExecutionRecord,
        finish: Finish,
        now: Timestamp,
    ) -> StoreResult<ExecutionRecord> {
        let execution = execution.clone();
        self.write(move |conn| money::finish(conn, &execution, &finish, now)).await
    }

    async fn get_execution(&self, filter: ExecutionFilter, public_id: &str) -> StoreResult<Option<ExecutionRecord>> {
        let public_id = public_id.to_owned();
        self.read(move |conn| money::get(conn, &filter, &public_id)).await
    }

    async fn list_executions(&self, filter: ExecutionFilter, page: PageRequest) -> StoreResult<Page<ExecutionRecord>> {
        self.read(move |conn| money::list(conn, &filter, page)).await
    }

    async fn register_node(&self, name: &str, now: Timestamp, lease: time::Duration) -> StoreResult<NodeId> {
        let name = name.to_owned();
        self.write(move |conn| money::register_node(conn, &name, now, lease)).await
    }

    async fn renew_node(&self, node: NodeId, now: Timestamp, lease: time::Duration) -> StoreResult<bool> {
        self.write(move |conn| money::renew_node(conn, node, now, lease)).await
    }

    async fn reclaim_expired_nodes(&self, now: Timestamp) -> StoreResult<u64> {
        self.write(move |conn| money::reclaim_expired_nodes(conn, now)).await
    }

    async fn reconcile_execution(
        &self,
        public_id: &str,
        decision: Reconcile,
        ctx: AuditContext,
        request: Option<OperatorRequest>,
    ) -> StoreResult<ExecutionRecord> {
        let public_id = public_id.to_owned();
        self.write(move |conn| {
            if operator_requests::replay(conn, request.as_ref())?.is_some() {
                return money::execution_by_public_id(conn, &public_id);
            }
            let done = money::reconcile(conn, &public_id, &decision, &ctx)?;
            operator_requests::remember(conn, request.as_ref(), &public_id, None, ctx.now)?;
            Ok(done)
        })
        .await
    }

    async fn start_provider_request(&self, execution_id: i64) -> StoreResult<()> {
        self.write(move |conn| {
            // Kept as long as the Idempotency-Key that made it. An expired one of the same key
            // may be replaced; a live one never is (`begin` refuses other input for its key).
            // An empty `provider_ref` marks a submission under way.
            let changed = conn
                .execute(
                    "INSERT INTO provider_requests (key_id, idempotency_key, request_hash, provider_ref, expires_at) \
                     SELECT e.key_id, e.idempotency_key, e.request_hash, '', r.expires_at \
                     FROM executions e JOIN idempotency_records r ON r.execution_id = e.id WHERE e.id = ?1 \
                     ON CONFLICT (key_id, idempotency_key) DO UPDATE SET request_hash = excluded.request_hash, \
                       provider_ref = excluded.provider_ref, expires_at = excluded.expires_at \
                     WHERE provider_requests.expires_at <= (SELECT created_at FROM executions WHERE id = ?1)",
                    [execution_id],
                )
                .map_err(map_sqlite_error)?;
            match changed {
                1 => Ok(()),
                _ => Err(StoreError::Conflict("the Idempotency-Key already names another provider request".into())),
            }
        })
        .await
    }

    async fn remember_provider_request(&self, execution_id: i64, provider_ref: &str) -> StoreResult<()> {
        let provider_ref = provider_ref.to_owned();
        self.write(move |conn| {
            conn.execute(
                "UPDATE provider_requests SET provider_ref = ?2 WHERE provider_ref = '' AND (key_id, idempotency_key) = \
                 (SELECT key_id, idempotency_key FROM executions WHERE id = ?1)",
                params![execution_id, provider_ref],
            )
            .map_err(map_sqlite_error)
            .map(drop)
        })
        .await
    }

    async fn provider_request_to_resume(&self, execution_id: i64) -> StoreResult<Option<ProviderRequest>> {
        self.read(move |conn| {
            let found: Option<String> = conn
                .query_row(
                    "SELECT p.provider_ref FROM executions e JOIN provider_requests p \
                     ON p.key_id = e.key_id AND p.idempotency_key = e.idempotency_key AND p.request_hash = e.request_hash \
                     WHERE e.id = ?1 AND p.expires_at > e.created_at",
                    [execution_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(map_sqlite_error)?;
            Ok(found.map(|r| if r.is_empty() { ProviderRequest::Submitting } else { ProviderRequest::Submitted(r) }))
        })
        .await
    }

    async fn forget_provider_request(&self, execution_id: i64) -> StoreResult<()> {
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM provider_requests WHERE (key_id, idempotency_key) = \
                 (SELECT key_id, idempotency_key FROM executions WHERE id = ?1)",
                [execution_id],
            )
            .map_err(map_sqlite_error)
            .map(drop)
        })
        .await
    }

    fn metrics(&self) -> &crate::metrics::StoreMetrics {
        self.writer.metrics()
    }

    async fn sweep_expired(&self, now: Timestamp, retention: Retention, limit: u32) -> StoreResult<u64> {
        let minute = move |age: time::Duration| (now - age).unix_timestamp().div_euclid(60);
        self.write(move |conn| {
            let expired = money::sweep_expired(conn, now, now - retention.operator_requests, limit)?;
            let logins = sessions::sweep(conn, now, limit)?.max(members::sweep_invitations(conn, now, limit)?) as u64;
            let hours = usage::roll_up(conn, minute(retention.usage_minutes), usage::Bucket::Hour, limit)?;
            let days = usage::roll_up(conn, minute(retention.usage_hours), usage::Bucket::Day, limit)?;
            Ok(expired.max(logins).max(hours).max(days))
        })
        .await
    }

    async fn verify_ledger(&self) -> StoreResult<Vec<String>> {
        self.read(|conn| super::in_snapshot(conn, money::verify)).await
    }
}

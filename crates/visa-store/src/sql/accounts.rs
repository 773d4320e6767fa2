//! Accounts: creation (with the owner member and the first credit), approval, credits (once
//! per operator Idempotency-Key), and the ledger's credit entries.

use super::audit;
use super::db::{Db, Row, params};
use super::{Engine, SqlStore};
use super::{from_db, to_db};
use super::{members, operator_requests};
use crate::audit::account_snapshot;
use crate::model::*;
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use serde_json::Value;
use visa_core::money::Micros;
use visa_core::role::Role;

const ACCOUNT_COLUMNS: &str =
    "id, login, approved, balance_micros, held_micros, created_at, low_balance_thresholds, low_balance_fired";

fn account_from_row(row: &Row) -> StoreResult<Account> {
    Ok(Account {
        id: row.get(0)?,
        login: row.get(1)?,
        approved: row.get(2)?,
        balance: Micros(row.get(3)?),
        held: Micros(row.get(4)?),
        created_at: from_db(row.get(5)?),
        low_balance_thresholds_cents: cents_list(&row.get::<String>(6)?)?,
    })
}

/// A stored list of cents (`low_balance_thresholds`, `low_balance_fired`).
pub(crate) fn cents_list(text: &str) -> StoreResult<Vec<i64>> {
    serde_json::from_str(text).map_err(|_| super::db::corrupt("list of low-balance thresholds"))
}

/// The thresholds that stay fired once the available balance is what it now is: a credit that
/// lifts it to a threshold or above re-arms it (`rules::low_balance_fired_after`).
fn rearm_low_balance(conn: &dyn Db, account_id: AccountId) -> StoreResult<()> {
    let Some((fired, available)) = conn.query_row(
        "SELECT low_balance_fired, balance_micros - held_micros FROM accounts WHERE id = ?1",
        params![account_id],
        |row| Ok((cents_list(&row.get::<String>(0)?)?, Micros(row.get(1)?))),
    )?
    else {
        return Ok(());
    };
    let still = crate::rules::low_balance_fired_after(&fired, available);
    if still != fired {
        write_low_balance_fired(conn, account_id, &still)?;
    }
    Ok(())
}

/// Stores which low-balance alerts (thresholds in cents, `rules::DEPLETED`) have fired.
pub(crate) fn write_low_balance_fired(conn: &dyn Db, account_id: AccountId, fired: &[i64]) -> StoreResult<()> {
    let fired = serde_json::to_string(fired).expect("integers serialize");
    conn.execute("UPDATE accounts SET low_balance_fired = ?2 WHERE id = ?1", params![account_id, fired]).map(drop)
}

pub(crate) fn account_where(conn: &dyn Db, clause: &str, value: impl super::ToValue) -> StoreResult<Option<Account>> {
    conn.query_row(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {clause}"), params![value], account_from_row)
}

fn require_account(conn: &dyn Db, login: &str) -> StoreResult<Account> {
    account_where(conn, "login = ?1", login)?.ok_or(StoreError::NotFound)
}

fn add_ledger_entry(
    conn: &dyn Db,
    account_id: AccountId,
    kind: LedgerKind,
    amount: Micros,
    now: Timestamp,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO ledger (account_id, kind, amount_micros, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![account_id, kind.as_str(), amount.0, to_db(now)],
    )?;
    Ok(())
}

fn credit(conn: &dyn Db, account_id: AccountId, amount: Micros, now: Timestamp) -> StoreResult<()> {
    if amount.0 <= 0 {
        return Ok(());
    }
    add_ledger_entry(conn, account_id, LedgerKind::Credit, amount, now)?;
    conn.execute(
        "UPDATE accounts SET balance_micros = balance_micros + ?2 WHERE id = ?1",
        params![account_id, amount.0],
    )?;
    rearm_low_balance(conn, account_id)
}

fn account_target(id: AccountId) -> String {
    format!("account:{id}")
}

pub(crate) fn create(conn: &dyn Db, new: &NewAccount, ctx: &AuditContext) -> StoreResult<(Account, Member)> {
    if account_where(conn, "login = ?1", &new.login)?.is_some() {
        return Err(StoreError::Conflict(format!("an account named '{}' already exists", new.login)));
    }
    let id = AccountId::new(conn.insert(
        "INSERT INTO accounts (login, approved, created_at) VALUES (?1, ?2, ?3) RETURNING id",
        params![new.login, new.approved, to_db(ctx.now)],
    )?);
    let owner = members::insert(conn, id, &new.login, Role::Owner, new.password_hash.as_deref(), None, ctx.now)?;
    credit(conn, id, new.credit, ctx.now)?;
    let account = account_where(conn, "id = ?1", id)?.ok_or(StoreError::NotFound)?;
    audit::record(conn, id, ctx, "account.created", &account_target(id), Value::Null, account_snapshot(&account))?;
    Ok((account, owner))
}

pub(crate) fn set_approved(conn: &dyn Db, login: &str, approved: bool, ctx: &AuditContext) -> StoreResult<Account> {
    let before = require_account(conn, login)?;
    conn.execute("UPDATE accounts SET approved = ?2 WHERE id = ?1", params![before.id, approved])?;
    super::auth_version::bump(conn)?;
    let after = Account { approved, ..before.clone() };
    let (old, new) = (account_snapshot(&before), account_snapshot(&after));
    audit::record(conn, after.id, ctx, "account.approval_changed", &account_target(after.id), old, new)?;
    Ok(after)
}

pub(crate) fn credit_account(
    conn: &dyn Db,
    login: &str,
    amount: Micros,
    ctx: &AuditContext,
    request: Option<&OperatorRequest>,
) -> StoreResult<Account> {
    if !conn.dialect().single_writer() {
        // First, so that a retry sent while the first request runs waits for it and then finds
        // its record (and replays it) instead of colliding with it; and the balance read for the
        // audit entry is the one the credit adds to.
        conn.query("SELECT id FROM accounts WHERE login = ?1 FOR UPDATE", params![login])?;
    }
    if let Some(first) = operator_requests::replay(conn, request)? {
        let mut account = require_account(conn, login)?;
        (account.balance, account.held) = (Micros(first.balance_after), Micros(first.held_after));
        return Ok(account);
    }
    let before = require_account(conn, login)?;
    credit(conn, before.id, amount, ctx.now)?;
    let after = require_account(conn, login)?;
    operator_requests::remember(conn, request, login, Some(&after), ctx.now)?;
    let (old, new) = (account_snapshot(&before), account_snapshot(&after));
    audit::record(conn, after.id, ctx, "account.credited", &account_target(after.id), old, new)?;
    Ok(after)
}

/// Accounts: created by the operator, approved, credited, read. Part of the store (`crate::Store`).
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates the account and its first member, the owner, with the account's login.
    async fn create_account(&self, new: NewAccount, audit: AuditContext) -> StoreResult<(Account, Member)>;
    async fn account_by_login(&self, login: &str) -> StoreResult<Option<Account>>;
    async fn set_account_approved(&self, login: &str, approved: bool, audit: AuditContext) -> StoreResult<Account>;
    /// Adds `amount` to the balance. Under an `OperatorRequest` a retry is answered with the
    /// first credit's account, and credits nothing more.
    async fn credit_account(
        &self,
        login: &str,
        amount: visa_core::money::Micros,
        audit: AuditContext,
        request: Option<OperatorRequest>,
    ) -> StoreResult<Account>;
    async fn account_by_id(&self, account_id: AccountId) -> StoreResult<Option<Account>>;
    /// Sets the account's low-balance thresholds (cents); those the available balance is already
    /// under count as fired (they fire after the next credit lifts it above them and it falls again).
    async fn set_low_balance_thresholds(
        &self,
        account_id: AccountId,
        thresholds_cents: Vec<i64>,
        audit: AuditContext,
    ) -> StoreResult<Account>;
}

#[async_trait]
impl<E: Engine> AccountStore for SqlStore<E> {
    async fn set_low_balance_thresholds(
        &self,
        account_id: AccountId,
        thresholds_cents: Vec<i64>,
        ctx: AuditContext,
    ) -> StoreResult<Account> {
        self.write_locking(move |conn| {
            if !conn.dialect().single_writer() {
                conn.query("SELECT id FROM accounts WHERE id = ?1 FOR UPDATE", params![account_id])?;
            }
            let before = account_where(conn, "id = ?1", account_id)?.ok_or(StoreError::NotFound)?;
            let available = Micros(before.balance.0 - before.held.0);
            let fired = crate::rules::low_balance_fired_after(&thresholds_cents, available);
            let json = |cents: &[i64]| serde_json::to_string(cents).expect("integers serialize");
            conn.execute(
                "UPDATE accounts SET low_balance_thresholds = ?2, low_balance_fired = ?3 WHERE id = ?1",
                params![account_id, json(&thresholds_cents), json(&fired)],
            )?;
            let after = account_where(conn, "id = ?1", account_id)?.ok_or(StoreError::NotFound)?;
            let (old, new) = (account_snapshot(&before), account_snapshot(&after));
            audit::record(conn, account_id, &ctx, "account.updated", &account_target(account_id), old, new)?;
            Ok(after)
        })
        .await
    }

    async fn create_account(&self, new: NewAccount, ctx: AuditContext) -> StoreResult<(Account, Member)> {
        self.write(move |conn| create(conn, &new, &ctx)).await
    }

    async fn account_by_login(&self, login: &str) -> StoreResult<Option<Account>> {
        let login = login.to_owned();
        self.read(move |conn| account_where(conn, "login = ?1", login)).await
    }

    async fn set_account_approved(&self, login: &str, approved: bool, ctx: AuditContext) -> StoreResult<Account> {
        let login = login.to_owned();
        self.write_credentials(move |conn| set_approved(conn, &login, approved, &ctx)).await
    }

    async fn credit_account(
        &self,
        login: &str,
        amount: Micros,
        ctx: AuditContext,
        request: Option<OperatorRequest>,
    ) -> StoreResult<Account> {
        let login = login.to_owned();
        self.write_locking(move |conn| credit_account(conn, &login, amount, &ctx, request.as_ref())).await
    }

    async fn account_by_id(&self, account_id: AccountId) -> StoreResult<Option<Account>> {
        self.read(move |conn| account_where(conn, "id = ?1", account_id)).await
    }
}

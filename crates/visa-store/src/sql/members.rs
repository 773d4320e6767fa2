//! Members of an account and their invitations. The owner rules live here, inside the
//! writer's transaction, so two concurrent changes cannot both pass them: the last owner
//! stays, and only an owner grants the owner role or touches an owner (checked against the
//! member as it is when the write runs, not as a handler read it before).
//!
//! Logins: an active member's login is unique server-wide (it is what signs in). A pending
//! invitation reserves nothing: the login is claimed when the invitation is accepted, and an
//! expired invitation is pruned by the sweeper.

use super::audit;
use super::db::{Db, Row, params};
use super::{Engine, SqlStore};
use super::{from_db, to_db};
use crate::audit::member_snapshot;
use crate::model::*;
use crate::{Refusal, StoreError, StoreResult};
use async_trait::async_trait;
use serde_json::{Value, json};
use visa_core::role::{Permission, Role};
use visa_core::secret::SecretHash;

pub(crate) const MEMBER_COLUMNS: &str = "id, account_id, login, role, created_at, password_hash, invite_expires_at";

pub(crate) fn member_from_row(row: &Row) -> StoreResult<Member> {
    let role: String = row.get(3)?;
    Ok(Member {
        id: row.get(0)?,
        account_id: row.get(1)?,
        login: row.get(2)?,
        role: Role::parse(&role).map_err(|_| super::db::corrupt("role"))?,
        created_at: from_db(row.get(4)?),
        password_hash: row.get(5)?,
        invite_expires_at: row.get::<Option<i64>>(6)?.map(from_db),
    })
}

pub(crate) fn member_where(conn: &dyn Db, clause: &str, value: impl super::ToValue) -> StoreResult<Option<Member>> {
    conn.query_row(&format!("SELECT {MEMBER_COLUMNS} FROM members WHERE {clause}"), params![value], member_from_row)
}

pub(crate) fn require_member(conn: &dyn Db, account_id: AccountId, member_id: MemberId) -> StoreResult<Member> {
    member_where(conn, "id = ?1", member_id)?.filter(|m| m.account_id == account_id).ok_or(StoreError::NotFound)
}

fn login_taken(login: &str) -> StoreError {
    StoreError::Conflict(format!("the login '{login}' is already taken"))
}

/// The member who signs in with `login`, if any.
pub(crate) fn active_member(conn: &dyn Db, login: &str) -> StoreResult<Option<Member>> {
    member_where(conn, "login = ?1 AND invite_hash IS NULL", login)
}

/// Inserts a member (an account's first owner, or an invited one) and returns it.
pub(crate) fn insert(
    conn: &dyn Db,
    account_id: AccountId,
    login: &str,
    role: Role,
    password_hash: Option<&str>,
    invite: Option<(&SecretHash, Timestamp)>,
    now: Timestamp,
) -> StoreResult<Member> {
    match invite {
        None if active_member(conn, login)?.is_some() => return Err(login_taken(login)),
        Some(_) => {
            // An expired invitation under this login no longer counts.
            conn.execute(
                "DELETE FROM members WHERE account_id = ?1 AND login = ?2 AND invite_hash IS NOT NULL \
                 AND invite_expires_at <= ?3",
                params![account_id, login, to_db(now)],
            )?;
            let exists = conn
                .query_row(
                    "SELECT 1 FROM members WHERE account_id = ?1 AND login = ?2",
                    params![account_id, login],
                    |_| Ok(()),
                )?
                .is_some();
            if exists {
                return Err(StoreError::Conflict(format!(
                    "'{login}' is already a member of this account or invited to it"
                )));
            }
        }
        None => {}
    }
    let id = conn.insert(
        "INSERT INTO members (account_id, login, role, password_hash, invite_hash, invite_expires_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        params![
            account_id,
            login,
            role.as_str(),
            password_hash,
            invite.map(|(hash, _)| hash.0),
            invite.map(|(_, at)| to_db(at)),
            to_db(now)
        ],
    )?;
    member_where(conn, "id = ?1", id)?.ok_or(StoreError::NotFound)
}

pub(crate) fn list(conn: &dyn Db, account_id: AccountId) -> StoreResult<Vec<Member>> {
    conn.query_map(
        &format!("SELECT {MEMBER_COLUMNS} FROM members WHERE account_id = ?1 ORDER BY id"),
        params![account_id],
        member_from_row,
    )
}

pub(crate) fn invite(conn: &dyn Db, account_id: AccountId, new: &NewMember, ctx: &AuditContext) -> StoreResult<Member> {
    let member =
        insert(conn, account_id, &new.login, new.role, None, Some((&new.invite_hash, new.invite_expires_at)), ctx.now)?;
    audit::record(conn, account_id, ctx, "member.invited", &target(&member), Value::Null, member_snapshot(&member))?;
    Ok(member)
}

/// Sets the password of an invited member whose invitation is still valid.
pub(crate) fn accept_invite(
    conn: &dyn Db,
    invite_hash: &SecretHash,
    password_hash: &str,
    ctx: &AuditContext,
) -> StoreResult<Member> {
    let before = member_where(conn, "invite_hash = ?1", invite_hash.0)?
        .filter(|m| m.invite_expires_at.is_some_and(|at| at > ctx.now))
        .ok_or(StoreError::NotFound)?;
    if active_member(conn, &before.login)?.is_some() {
        return Err(StoreError::Conflict(format!(
            "the login '{}' was taken since the invitation was sent; ask for one under another login",
            before.login
        )));
    }
    conn.execute(
        "UPDATE members SET password_hash = ?2, invite_hash = NULL, invite_expires_at = NULL WHERE id = ?1",
        params![before.id, password_hash],
    )?;
    let after = require_member(conn, before.account_id, before.id)?;
    audit::record(
        conn,
        after.account_id,
        ctx,
        "member.joined",
        &target(&after),
        member_snapshot(&before),
        member_snapshot(&after),
    )?;
    Ok(after)
}

/// Only an owner grants the owner role or changes or removes an owner.
/// Ends every session of the member but `keep`; how many ended.
pub(crate) fn end_all_but(conn: &dyn Db, member_id: MemberId, keep: Option<&SecretHash>) -> StoreResult<u64> {
    let keep = keep.map(|k| k.0.to_vec()).unwrap_or_default();
    conn.execute("DELETE FROM sessions WHERE member_id = ?1 AND token_hash != ?2", params![member_id, keep])
        .map(|n| n as u64)
}

/// The audit target of a member.
pub(crate) fn member_target(member_id: MemberId) -> String {
    format!("member:{member_id}")
}

pub(crate) fn ensure_may_touch(caller: Role, roles: &[Role]) -> StoreResult<()> {
    if roles.contains(&Role::Owner) && !caller.allows(Permission::Own) {
        return Err(StoreError::Forbidden(
            "only an owner may grant the owner role or change or remove an owner".into(),
        ));
    }
    Ok(())
}

/// Refuses to leave the account without an owner (one who has joined: an invitation to the
/// owner role, which may never be accepted, does not count).
fn ensure_other_owner(conn: &dyn Db, member: &Member) -> StoreResult<()> {
    let owners: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM members WHERE account_id = ?1 AND role = 'owner' AND id != ?2 AND invite_hash IS NULL",
            params![member.account_id, member.id],
            |r| r.get(0),
        )?
        .unwrap_or(0);
    if member.role == Role::Owner && owners == 0 {
        return Err(StoreError::Refused(Refusal::LastOwner));
    }
    Ok(())
}

pub(crate) fn change_role(
    conn: &dyn Db,
    account_id: AccountId,
    member_id: MemberId,
    role: Role,
    caller: Role,
    ctx: &AuditContext,
) -> StoreResult<Member> {
    let before = require_member(conn, account_id, member_id)?;
    ensure_may_touch(caller, &[before.role, role])?;
    if role != Role::Owner {
        ensure_other_owner(conn, &before)?;
    }
    conn.execute("UPDATE members SET role = ?2 WHERE id = ?1", params![member_id, role.as_str()])?;
    let after = require_member(conn, account_id, member_id)?;
    audit::record(
        conn,
        account_id,
        ctx,
        "member.role_changed",
        &target(&after),
        member_snapshot(&before),
        member_snapshot(&after),
    )?;
    Ok(after)
}

/// Removes a member and ends its sessions in the same transaction.
pub(crate) fn remove(
    conn: &dyn Db,
    account_id: AccountId,
    member_id: MemberId,
    caller: Role,
    ctx: &AuditContext,
) -> StoreResult<Member> {
    let member = require_member(conn, account_id, member_id)?;
    ensure_may_touch(caller, &[member.role])?;
    ensure_other_owner(conn, &member)?;
    end_all_but(conn, member_id, None)?;
    conn.execute("DELETE FROM members WHERE id = ?1", params![member_id])?;
    audit::record(conn, account_id, ctx, "member.removed", &target(&member), member_snapshot(&member), Value::Null)?;
    Ok(member)
}

/// The account and member behind a live session token.
pub(crate) fn session_member(conn: &dyn Db, token_hash: &SecretHash, now: Timestamp) -> StoreResult<Option<Member>> {
    let columns = MEMBER_COLUMNS.split(", ").map(|c| format!("m.{c}")).collect::<Vec<_>>().join(", ");
    conn.query_row(
        &format!(
            "SELECT {columns} FROM sessions s JOIN members m ON m.id = s.member_id \
             WHERE s.token_hash = ?1 AND s.expires_at > ?2"
        ),
        params![token_hash.0, to_db(now)],
        member_from_row,
    )
}

/// Sets the password and ends the member's other sessions.
pub(crate) fn change_password(
    conn: &dyn Db,
    account_id: AccountId,
    member_id: MemberId,
    password_hash: &str,
    keep: &SecretHash,
    ctx: &AuditContext,
) -> StoreResult<(Member, u64)> {
    let member = require_member(conn, account_id, member_id)?;
    conn.execute("UPDATE members SET password_hash = ?2 WHERE id = ?1", params![member_id, password_hash])?;
    let ended = end_all_but(conn, member_id, Some(keep))?;
    let (before, after) =
        (json!({ "password": "previous" }), json!({ "password": "new", "other_sessions_ended": ended }));
    audit::record(conn, account_id, ctx, "member.password_changed", &target(&member), before, after)?;
    Ok((member, ended))
}

/// Prunes up to `limit` expired invitations (their logins are free again); how many went.
pub(crate) fn sweep_invitations(conn: &dyn Db, now: Timestamp, limit: u32) -> StoreResult<usize> {
    conn.execute(
        "DELETE FROM members WHERE id IN (SELECT id FROM members WHERE invite_hash IS NOT NULL \
         AND invite_expires_at <= ?1 LIMIT ?2)",
        params![to_db(now), limit],
    )
}

fn target(member: &Member) -> String {
    member_target(member.id)
}

/// Members of an account: invited, accepted, re-roled, removed, signed in. Part of the store (`crate::Store`).
#[async_trait]
pub trait MemberStore: Send + Sync {
    /// Sets a member's password and ends every other session of theirs (all but `keep`), in
    /// one transaction, audited as `member.password_changed`; says how many sessions ended.
    async fn change_password(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        password_hash: String,
        keep: SecretHash,
        audit: AuditContext,
    ) -> StoreResult<(Member, u64)>;
    /// The member who signs in with this login (invitations pending under it do not count).
    async fn member_by_login(&self, login: &str) -> StoreResult<Option<Member>>;
    /// The member with this pending invitation, if any (expired or not).
    async fn member_by_invite(&self, invite_hash: SecretHash) -> StoreResult<Option<Member>>;
    async fn list_members(&self, account_id: AccountId) -> StoreResult<Vec<Member>>;
    /// Adds a member with a pending invitation; `Conflict` when the login is already a member
    /// of, or invited to, this account. A pending invitation reserves nothing server-wide: the
    /// login is claimed when the invitation is accepted (`Conflict` then if it was taken).
    async fn invite_member(&self, account_id: AccountId, new: NewMember, audit: AuditContext) -> StoreResult<Member>;
    /// Sets the invited member's password and ends the invitation; `NotFound` when the
    /// invitation is unknown or expired.
    async fn accept_invite(
        &self,
        invite_hash: SecretHash,
        password_hash: String,
        audit: AuditContext,
    ) -> StoreResult<Member>;
    /// `Refused` when it would leave the account without an owner; `Forbidden` when it grants
    /// the owner role or changes an owner and `caller` (the role asking) is not an owner. Both
    /// rules are checked inside the write, against the member as it is then.
    async fn change_member_role(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        role: visa_core::role::Role,
        caller: visa_core::role::Role,
        audit: AuditContext,
    ) -> StoreResult<Member>;
    /// Removes the member and ends its sessions; `Refused` for the last owner, `Forbidden`
    /// for an owner unless `caller` is one.
    async fn remove_member(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        caller: visa_core::role::Role,
        audit: AuditContext,
    ) -> StoreResult<Member>;
}

#[async_trait]
impl<E: Engine> MemberStore for SqlStore<E> {
    async fn change_password(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        password_hash: String,
        keep: SecretHash,
        ctx: AuditContext,
    ) -> StoreResult<(Member, u64)> {
        self.write(move |conn| change_password(conn, account_id, member_id, &password_hash, &keep, &ctx)).await
    }

    async fn member_by_login(&self, login: &str) -> StoreResult<Option<Member>> {
        let login = login.to_owned();
        self.read(move |conn| active_member(conn, &login)).await
    }

    async fn member_by_invite(&self, invite_hash: SecretHash) -> StoreResult<Option<Member>> {
        self.read(move |conn| member_where(conn, "invite_hash = ?1", invite_hash.0)).await
    }

    async fn list_members(&self, account_id: AccountId) -> StoreResult<Vec<Member>> {
        self.read(move |conn| list(conn, account_id)).await
    }

    async fn invite_member(&self, account_id: AccountId, new: NewMember, ctx: AuditContext) -> StoreResult<Member> {
        self.write(move |conn| invite(conn, account_id, &new, &ctx)).await
    }

    async fn accept_invite(
        &self,
        invite_hash: SecretHash,
        password_hash: String,
        ctx: AuditContext,
    ) -> StoreResult<Member> {
        self.write(move |conn| accept_invite(conn, &invite_hash, &password_hash, &ctx)).await
    }

    async fn change_member_role(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        role: Role,
        caller: Role,
        ctx: AuditContext,
    ) -> StoreResult<Member> {
        self.write(move |conn| change_role(conn, account_id, member_id, role, caller, &ctx)).await
    }

    async fn remove_member(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        caller: Role,
        ctx: AuditContext,
    ) -> StoreResult<Member> {
        self.write(move |conn| remove(conn, account_id, member_id, caller, &ctx)).await
    }
}

//! Members of an account and their sessions. The last-owner rule lives here, inside the
//! writer's transaction, so two concurrent demotions cannot both pass it.

use super::audit::{self, member_snapshot};
use super::map_sqlite_error;
use super::queries::{from_db, select_one, to_db};
use crate::model::*;
use crate::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;
use visa_core::role::Role;
use visa_core::secret::SecretHash;

pub(crate) const MEMBER_COLUMNS: &str = "id, account_id, login, role, created_at, password_hash, invite_expires_at";

pub(crate) fn member_from_row(row: &Row<'_>) -> rusqlite::Result<Member> {
    let role: String = row.get(3)?;
    Ok(Member {
        id: row.get(0)?,
        account_id: row.get(1)?,
        login: row.get(2)?,
        role: Role::parse(&role)
            .map_err(|_| rusqlite::Error::InvalidColumnType(3, "role".into(), rusqlite::types::Type::Text))?,
        created_at: from_db(row.get(4)?),
        password_hash: row.get(5)?,
        invite_expires_at: row.get::<_, Option<i64>>(6)?.map(from_db),
    })
}

pub(crate) fn member_where(
    conn: &Connection,
    clause: &str,
    value: impl rusqlite::ToSql,
) -> StoreResult<Option<Member>> {
    select_one(conn, &format!("SELECT {MEMBER_COLUMNS} FROM members"), clause, value, member_from_row)
}

fn require_member(conn: &Connection, account_id: i64, member_id: i64) -> StoreResult<Member> {
    member_where(conn, "id = ?1", member_id)?.filter(|m| m.account_id == account_id).ok_or(StoreError::NotFound)
}

fn login_taken(login: &str) -> StoreError {
    StoreError::Conflict(format!("the login '{login}' is already taken"))
}

/// Inserts a member (an account's first owner, or an invited one) and returns it.
pub(crate) fn insert(
    conn: &Connection,
    account_id: i64,
    login: &str,
    role: Role,
    password_hash: Option<&str>,
    invite: Option<(&SecretHash, Timestamp)>,
    now: Timestamp,
) -> StoreResult<Member> {
    if member_where(conn, "login = ?1", login)?.is_some() {
        return Err(login_taken(login));
    }
    conn.execute(
        "INSERT INTO members (account_id, login, role, password_hash, invite_hash, invite_expires_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            account_id,
            login,
            role.as_str(),
            password_hash,
            invite.map(|(hash, _)| hash.0.to_vec()),
            invite.map(|(_, at)| to_db(at)),
            to_db(now)
        ],
    )
    .map_err(map_sqlite_error)?;
    member_where(conn, "id = ?1", conn.last_insert_rowid())?.ok_or(StoreError::NotFound)
}

pub(crate) fn list(conn: &Connection, account_id: i64) -> StoreResult<Vec<Member>> {
    let mut stmt = conn
        .prepare(&format!("SELECT {MEMBER_COLUMNS} FROM members WHERE account_id = ?1 ORDER BY id"))
        .map_err(map_sqlite_error)?;
    stmt.query_map([account_id], member_from_row).and_then(|rows| rows.collect()).map_err(map_sqlite_error)
}

pub(crate) fn invite(conn: &Connection, account_id: i64, new: &NewMember, ctx: &AuditContext) -> StoreResult<Member> {
    let member =
        insert(conn, account_id, &new.login, new.role, None, Some((&new.invite_hash, new.invite_expires_at)), ctx.now)?;
    audit::record(conn, account_id, ctx, "member.invited", &target(&member), Value::Null, member_snapshot(&member))?;
    Ok(member)
}

/// Sets the password of an invited member whose invitation is still valid.
pub(crate) fn accept_invite(
    conn: &Connection,
    invite_hash: &SecretHash,
    password_hash: &str,
    ctx: &AuditContext,
) -> StoreResult<Member> {
    let before = member_where(conn, "invite_hash = ?1", invite_hash.0.to_vec())?
        .filter(|m| m.invite_expires_at.is_some_and(|at| at > ctx.now))
        .ok_or(StoreError::NotFound)?;
    conn.execute(
        "UPDATE members SET password_hash = ?2, invite_hash = NULL, invite_expires_at = NULL WHERE id = ?1",
        params![before.id, password_hash],
    )
    .map_err(map_sqlite_error)?;
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

/// Refuses to leave the account without an owner.
fn ensure_other_owner(conn: &Connection, member: &Member) -> StoreResult<()> {
    let owners: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM members WHERE account_id = ?1 AND role = 'owner' AND id != ?2",
            params![member.account_id, member.id],
            |r| r.get(0),
        )
        .map_err(map_sqlite_error)?;
    if member.role == Role::Owner && owners == 0 {
        return Err(StoreError::Refused("the account's last owner cannot be removed or demoted".into()));
    }
    Ok(())
}

pub(crate) fn change_role(
    conn: &Connection,
    account_id: i64,
    member_id: i64,
    role: Role,
    ctx: &AuditContext,
) -> StoreResult<Member> {
    let before = require_member(conn, account_id, member_id)?;
    if role != Role::Owner {
        ensure_other_owner(conn, &before)?;
    }
    conn.execute("UPDATE members SET role = ?2 WHERE id = ?1", params![member_id, role.as_str()])
        .map_err(map_sqlite_error)?;
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
pub(crate) fn remove(conn: &Connection, account_id: i64, member_id: i64, ctx: &AuditContext) -> StoreResult<Member> {
    let member = require_member(conn, account_id, member_id)?;
    ensure_other_owner(conn, &member)?;
    conn.execute("DELETE FROM sessions WHERE member_id = ?1", [member_id]).map_err(map_sqlite_error)?;
    conn.execute("DELETE FROM members WHERE id = ?1", [member_id]).map_err(map_sqlite_error)?;
    audit::record(conn, account_id, ctx, "member.removed", &target(&member), member_snapshot(&member), Value::Null)?;
    Ok(member)
}

/// The account and member behind a live session token.
pub(crate) fn session_member(
    conn: &Connection,
    token_hash: &SecretHash,
    now: Timestamp,
) -> StoreResult<Option<Member>> {
    let columns = MEMBER_COLUMNS.split(", ").map(|c| format!("m.{c}")).collect::<Vec<_>>().join(", ");
    conn.query_row(
        &format!(
            "SELECT {columns} FROM sessions s JOIN members m ON m.id = s.member_id \
             WHERE s.token_hash = ?1 AND s.expires_at > ?2"
        ),
        params![&token_hash.0[..], to_db(now)],
        member_from_row,
    )
    .optional()
    .map_err(map_sqlite_error)
}

fn target(member: &Member) -> String {
    format!("member:{}", member.id)
}

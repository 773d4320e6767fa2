//! Sessions of members: opened by a sign-in, an accepted invitation or the operator creating
//! an account; listed and ended by their member (or an owner or admin); all but the current
//! one ended by a password change. A session row records where it was opened, never its token.

use super::audit;
use super::db::{Db, Row, params};
use super::members::{end_all_but, ensure_may_touch, member_target, require_member};
use super::{Engine, SqlStore};
use super::{from_db, to_db};
use crate::model::*;
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use serde_json::{Value, json};
use visa_core::role::Role;
use visa_core::secret::SecretHash;

pub(crate) fn create(conn: &dyn Db, new: &NewSession, ctx: &AuditContext) -> StoreResult<()> {
    let id = conn.insert(
        "INSERT INTO sessions (account_id, member_id, token_hash, created_at, expires_at, ip, user_agent) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        params![
            new.account_id,
            new.member_id,
            new.token_hash.0,
            to_db(new.created_at),
            to_db(new.expires_at),
            ctx.ip.map(|ip| ip.to_string()),
            ctx.user_agent
        ],
    )?;
    let session = json!({ "session": id, "expires_at": crate::audit::time(Some(new.expires_at)) });
    audit::record(conn, new.account_id, ctx, "session.created", &member_target(new.member_id), Value::Null, session)
}

fn record_from_row(row: &Row, current: Option<&SecretHash>) -> StoreResult<SessionRecord> {
    let hash: Vec<u8> = row.get(5)?;
    Ok(SessionRecord {
        id: row.get(0)?,
        member_id: row.get(1)?,
        created_at: from_db(row.get(2)?),
        expires_at: from_db(row.get(3)?),
        ip: row.get::<Option<String>>(4)?.and_then(|ip| ip.parse().ok()),
        user_agent: row.get(6)?,
        current: current.is_some_and(|c| c.0[..] == hash[..]),
    })
}

pub(crate) fn list(
    conn: &dyn Db,
    account_id: AccountId,
    member_id: MemberId,
    current: Option<&SecretHash>,
    now: Timestamp,
) -> StoreResult<Vec<SessionRecord>> {
    require_member(conn, account_id, member_id)?;
    conn.query_map(
        "SELECT id, member_id, created_at, expires_at, ip, token_hash, user_agent FROM sessions \
         WHERE member_id = ?1 AND expires_at > ?2 ORDER BY id",
        params![member_id, to_db(now)],
        |row| record_from_row(row, current),
    )
}

pub(crate) fn end(
    conn: &dyn Db,
    account_id: AccountId,
    member_id: MemberId,
    which: &SessionsToEnd,
    caller: Role,
    ctx: &AuditContext,
) -> StoreResult<u64> {
    let member = require_member(conn, account_id, member_id)?;
    ensure_may_touch(caller, &[member.role])?;
    let (count, ended) = match which {
        SessionsToEnd::One(id) => {
            let n = conn.execute(
                "DELETE FROM sessions WHERE id = ?1 AND member_id = ?2 AND expires_at > ?3",
                params![id, member_id, to_db(ctx.now)],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            (1, json!({ "session": id }))
        }
        SessionsToEnd::AllExcept(keep) => {
            let count = end_all_but(conn, member_id, keep.as_ref())?;
            (count, json!({ "sessions": count }))
        }
    };
    if count > 0 {
        audit::record(conn, account_id, ctx, "session.ended", &member_target(member_id), ended, Value::Null)?;
    }
    Ok(count)
}

/// Ends the session with this token (sign-out); one that is gone already is not an error.
/// Signing out: ends the session of `token_hash`, audited as `session.ended` by its member.
pub(crate) fn end_by_token(conn: &dyn Db, token_hash: &SecretHash, ctx: &AuditContext) -> StoreResult<()> {
    let found = conn.query_row(
        "SELECT s.id, s.member_id, m.account_id FROM sessions s JOIN members m ON m.id = s.member_id \
         WHERE s.token_hash = ?1",
        params![token_hash.0],
        |r| Ok((r.get::<i64>(0)?, r.get::<MemberId>(1)?, r.get::<AccountId>(2)?)),
    )?;
    let Some((id, member_id, account_id)) = found else { return Ok(()) };
    conn.execute("DELETE FROM sessions WHERE id = ?1", params![id])?;
    let ended = json!({ "session": id, "signed_out": true });
    audit::record(conn, account_id, ctx, "session.ended", &member_target(member_id), ended, Value::Null)
}

/// Prunes up to `limit` expired sessions; how many went.
pub(crate) fn sweep(conn: &dyn Db, now: Timestamp, limit: u32) -> StoreResult<usize> {
    conn.execute(
        "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at <= ?1 LIMIT ?2)",
        params![to_db(now), limit],
    )
}

/// Members' sessions: opened, listed, ended. Part of the store (`crate::Store`).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// The account and member behind a live session token.
    async fn session_principal(&self, token_hash: SecretHash, now: Timestamp)
    -> StoreResult<Option<(Account, Member)>>;
    /// Ends one session (sign-out), audited as `session.ended` with `audit`'s actor, IP and
    /// user agent; ending one that is gone already is not an error (and audits nothing).
    async fn end_session(&self, token_hash: SecretHash, audit: AuditContext) -> StoreResult<()>;
    /// Opens a session where `audit` says (IP, user agent), audited as `session.created` by
    /// its actor (the member signing in, or the operator who created the account).
    async fn create_session(&self, new: NewSession, audit: AuditContext) -> StoreResult<()>;
    /// The member's live sessions, oldest first; `current` marks the one with that token.
    async fn list_sessions(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        current: Option<SecretHash>,
        now: Timestamp,
    ) -> StoreResult<Vec<SessionRecord>>;
    /// Ends some of a member's sessions (audited as `session.ended`) and says how many;
    /// `Forbidden` for an owner's unless `caller` is an owner.
    async fn end_sessions(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        which: SessionsToEnd,
        caller: visa_core::role::Role,
        audit: AuditContext,
    ) -> StoreResult<u64>;
}

#[async_trait]
impl<E: Engine> SessionStore for SqlStore<E> {
    async fn session_principal(
        &self,
        token_hash: SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<(Account, Member)>> {
        self.read(move |conn| {
            let Some(member) = super::members::session_member(conn, &token_hash, now)? else {
                return Ok(None);
            };
            Ok(super::accounts::account_where(conn, "id = ?1", member.account_id)?.map(|account| (account, member)))
        })
        .await
    }

    async fn end_session(&self, token_hash: SecretHash, ctx: AuditContext) -> StoreResult<()> {
        self.write(move |conn| end_by_token(conn, &token_hash, &ctx)).await
    }

    async fn create_session(&self, new: NewSession, ctx: AuditContext) -> StoreResult<()> {
        self.write(move |conn| create(conn, &new, &ctx)).await
    }

    async fn list_sessions(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        current: Option<SecretHash>,
        now: Timestamp,
    ) -> StoreResult<Vec<SessionRecord>> {
        self.read(move |conn| list(conn, account_id, member_id, current.as_ref(), now)).await
    }

    async fn end_sessions(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        which: SessionsToEnd,
        caller: Role,
        ctx: AuditContext,
    ) -> StoreResult<u64> {
        self.write(move |conn| end(conn, account_id, member_id, &which, caller, &ctx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::members;
    use crate::sqlite::engine::{SqliteDb, tests::memory};

    #[test]
    fn expired_sessions_are_pruned_and_live_ones_kept() {
        let memory = memory();
        let conn: &dyn Db = &SqliteDb::Reader(&memory);
        let t0 = Timestamp::from_unix_timestamp(1_800_000_000).unwrap();
        conn.execute("INSERT INTO accounts (login, approved, created_at) VALUES ('acme', 1, 0)", &[]).unwrap();
        let member = members::insert(conn, AccountId::new(1), "acme", Role::Owner, None, None, t0).unwrap();
        let ctx = AuditContext { actor: Actor::Operator, ip: None, user_agent: None, now: t0 };
        for (n, ttl) in [(1u8, 60), (2, 3600)] {
            let new = NewSession {
                account_id: AccountId::new(1),
                member_id: member.id,
                token_hash: SecretHash([n; 32]),
                created_at: t0,
                expires_at: t0 + time::Duration::seconds(ttl),
            };
            create(conn, &new, &ctx).unwrap();
        }
        let count = || conn.query_row("SELECT COUNT(*) FROM sessions", &[], |r| r.get::<i64>(0)).unwrap();
        assert_eq!(sweep(conn, t0 + time::Duration::seconds(59), 10).unwrap(), 0);
        assert_eq!(sweep(conn, t0 + time::Duration::seconds(60), 10).unwrap(), 1);
        assert_eq!(count(), Some(1));
        let live =
            list(conn, AccountId::new(1), member.id, Some(&SecretHash([2; 32])), t0 + time::Duration::seconds(60))
                .unwrap();
        assert_eq!(live.len(), 1);
        assert!(live[0].current);
    }
}

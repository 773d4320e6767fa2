//! Sessions: `POST /v1/api/sessions` trades a member's login and password for a session
//! token, which acts with that member's role, read afresh on every request;
//! `GET /v1/api/sessions/current` says who a credential is (`visa-cli whoami`) and
//! `DELETE /v1/api/sessions/current` ends the session at once (`visa-cli logout`).
//! A member lists their live sessions (`GET /v1/api/sessions`: where and when each was
//! opened) and ends any of them (`DELETE /v1/api/sessions/{id}`); owners and admins do the
//! same for another member (`/v1/api/members/{id}/sessions`). Changing the password
//! (`POST /v1/api/sessions/current/password`) ends every other session of the member.

//! Accepting an invitation is a sign-in too: the invitee sets a password and gets a session.

use super::members::member_error;
use crate::auth::{Origin, SESSION_TOKEN_PREFIX, Session, password};
use crate::error::{ApiError, ApiResult, not_found_as};
use crate::state::AppState;
use crate::wire::members::AcceptInviteRequest;
use crate::wire::sessions::{
    ChangePasswordRequest, CurrentSession, PasswordChanged, SESSION_NOT_FOUND, SessionList, SessionResponse,
    SessionView, SessionsEnded, SignInRequest, SignedOut,
};
use visa_core::ErrorCode;
use visa_core::id::{MemberId, SessionId};
use visa_core::key::random_token;
use visa_core::role::Permission;
use visa_core::secret::SecretHash;
use visa_store::{Actor, AuditContext, Member, NewSession, SessionsToEnd, StoreError};

/// Mints and stores a session for `member`: the answer of a sign-in (or an accepted
/// invitation, or an account's creation). `audit` says who opened it, from where.
pub async fn open_session(state: &AppState, member: &Member, audit: AuditContext) -> ApiResult<SessionResponse> {
    let token = random_token(SESSION_TOKEN_PREFIX);
    let now = audit.now;
    let expires_at = now + state.session_ttl;
    let new = NewSession {
        account_id: member.account_id,
        member_id: member.id,
        token_hash: state.hasher.hash(&token),
        created_at: now,
        expires_at,
    };
    state.store.create_session(new, audit).await?;
    Ok(SessionResponse {
        success: true,
        session_token: token,
        expires_at: crate::wire::rfc3339(expires_at),
        login: member.login.clone(),
    })
}

pub async fn sign_in(state: &AppState, origin: &Origin, req: SignInRequest) -> ApiResult<SessionResponse> {
    let member = authenticate(state, origin, &req.login, req.password).await?;
    let audit = origin.audit(Actor::Member { id: member.id, login: member.login.clone() }, state.now());
    open_session(state, &member, audit).await
}

/// The member a login and password name (throttled per IP and login), for a sign-in through
/// the API or the dashboard.
pub async fn authenticate(state: &AppState, origin: &Origin, login: &str, password: String) -> ApiResult<Member> {
    let wrong = || ApiError::new(ErrorCode::AuthInvalid, "wrong login or password");
    state.sign_in.attempt(origin.ip, Some(login))?;
    let member = state.store.member_by_login(login).await?;
    // Verified even for an unknown login (against a dummy hash), so timing does not tell
    // which logins exist.
    let stored = member.as_ref().and_then(|m| m.password_hash.clone());
    if !password::verify(password, stored).await? {
        return Err(wrong());
    }
    let member = member.ok_or_else(wrong)?;
    tracing::info!(member = %member.login, "session opened");
    Ok(member)
}

pub fn current(caller: &Session) -> CurrentSession {
    let (credential, actor) = match &caller.actor {
        Actor::AdminKey { label, .. } => ("admin_key", label.clone()),
        Actor::Member { login, .. } => ("session", login.clone()),
        Actor::Operator => ("operator", String::new()),
        Actor::OAuthClient { name, .. } => ("oauth_client", name.clone()),
        Actor::System => ("system", String::new()),
    };
    CurrentSession {
        success: true,
        credential: credential.into(),
        account_id: caller.account.id.get(),
        account: caller.account.login.clone(),
        actor,
        role: caller.role.to_string(),
    }
}

pub async fn sign_out(state: &AppState, caller: &Session) -> ApiResult<SignedOut> {
    let (_, _, hash) = signed_in(caller)?;
    state.store.end_session(hash, caller.audit(state)).await?;
    tracing::info!(actor = ?caller.actor, "session ended");
    Ok(SignedOut { success: true })
}

/// The member behind a session token and its hash; an admin key is refused (it has no
/// sessions or password of its own).
fn signed_in(session: &Session) -> ApiResult<(MemberId, &str, SecretHash)> {
    match (&session.actor, session.session_hash) {
        (Actor::Member { id, login }, Some(hash)) => Ok((*id, login, hash)),
        _ => Err(ApiError::invalid("an admin key is not a session: revoke it with `visa-cli admin-keys revoke ID`")),
    }
}

async fn sessions_of(state: &AppState, caller: &Session, member_id: MemberId) -> ApiResult<SessionList> {
    let current = caller.session_hash;
    let sessions =
        state.store.list_sessions(caller.account.id, member_id, current, state.now()).await.map_err(member_error)?;
    Ok(SessionList {
        success: true,
        object: "list".into(),
        sessions: sessions.into_iter().map(SessionView::from).collect(),
    })
}

/// The caller's own live sessions.
pub async fn list(state: &AppState, caller: &Session) -> ApiResult<SessionList> {
    let (member, _, _) = signed_in(caller)?;
    sessions_of(state, caller, member).await
}

/// Ends one of the caller's own sessions.
pub async fn end(state: &AppState, caller: &Session, id: SessionId) -> ApiResult<SessionsEnded> {
    let (member, _, _) = signed_in(caller)?;
    let ended = state
        .store
        .end_sessions(caller.account.id, member, SessionsToEnd::One(id), caller.role, caller.audit(state))
        .await
        .map_err(not_found_as(ErrorCode::NotFound, SESSION_NOT_FOUND))?;
    tracing::info!(session = %id, "session ended by its member");
    Ok(SessionsEnded { success: true, ended })
}

/// Another member's live sessions (owners and admins).
pub async fn member_sessions(state: &AppState, caller: &Session, member_id: MemberId) -> ApiResult<SessionList> {
    caller.require(Permission::ManageMembers)?;
    sessions_of(state, caller, member_id).await
}

/// Ends every session of a member (owners and admins).
pub async fn end_member_sessions(state: &AppState, caller: &Session, id: MemberId) -> ApiResult<SessionsEnded> {
    caller.require(Permission::ManageMembers)?;
    // A member ending their own sessions this way keeps the one asking.
    let keep = caller.session_hash.filter(|_| matches!(caller.actor, Actor::Member { id: me, .. } if me == id));
    let ended = state
        .store
        .end_sessions(caller.account.id, id, SessionsToEnd::AllExcept(keep), caller.role, caller.audit(state))
        .await
        .map_err(member_error)?;
    tracing::info!(member_id = %id, ended, "member's sessions ended");
    Ok(SessionsEnded { success: true, ended })
}

pub async fn change_password(
    state: &AppState,
    caller: &Session,
    req: ChangePasswordRequest,
) -> ApiResult<PasswordChanged> {
    let (member_id, login, hash) = signed_in(caller)?;
    // Guessing the current password through a stolen session is throttled like a sign-in.
    state.sign_in.attempt(caller.origin.ip, Some(login))?;
    password::validate(&req.new_password)?;
    let stored = state.store.member_by_login(login).await?.filter(|m| m.id == member_id).and_then(|m| m.password_hash);
    if !password::verify(req.current_password, stored).await? {
        return Err(ApiError::new(ErrorCode::AuthInvalid, "the current password is wrong"));
    }
    let new_hash = password::hash(req.new_password).await?;
    let (member, ended) = state
        .store
        .change_password(caller.account.id, member_id, new_hash, hash, caller.audit(state))
        .await
        .map_err(member_error)?;
    tracing::info!(member_id = %member_id, "password changed; other sessions ended");
    Ok(PasswordChanged { success: true, login: member.login, other_sessions_ended: ended })
}

/// An invitee sets a password with their invitation token and is signed in.
pub async fn accept_invite(state: &AppState, origin: &Origin, req: AcceptInviteRequest) -> ApiResult<SessionResponse> {
    let unknown = || ApiError::new(ErrorCode::AuthInvalid, "the invitation is unknown, used or expired");
    state.sign_in.attempt(origin.ip, None)?;
    password::validate(&req.password)?;
    let invite_hash = state.hasher.hash(req.invite_token.trim());
    let invited = state.store.member_by_invite(invite_hash).await?.ok_or_else(unknown)?;
    let password_hash = password::hash(req.password).await?;
    let audit = origin.audit(Actor::Member { id: invited.id, login: invited.login.clone() }, state.now());
    let member = state.store.accept_invite(invite_hash, password_hash, audit).await.map_err(|e| match e {
        StoreError::NotFound => unknown(),
        other => member_error(other),
    })?;
    tracing::info!(member_id = %member.id, "invitation accepted");
    let audit = origin.audit(Actor::Member { id: member.id, login: member.login.clone() }, state.now());
    open_session(state, &member, audit).await
}

//! Members of an account (`/v1/api/members`): list, invite by login with a role, change a
//! role, remove. Viewers and developers may list; admins manage members; only an owner may
//! grant the owner role or change or remove an owner; the last owner cannot be demoted or
//! removed (enforced by the store in the change's transaction).
//!
//! An invitation creates the member at once and returns a one-time invitation token; the
//! invitee sets a password with it (`super::sessions::accept_invite`) and is signed in.

use crate::auth::Session;
use crate::error::{ApiError, ApiResult, not_found_as};
use crate::state::AppState;
use crate::wire::members::{
    ChangeRoleRequest, InviteRequest, InviteResponse, MEMBER_NOT_FOUND, MemberList, MemberResponse, MemberView,
    RemovedResponse,
};
use visa_core::ErrorCode;
use visa_core::id::MemberId;
use visa_core::key::random_token;
use visa_core::policy::Login;
use visa_core::role::{Permission, Role};
use visa_store::{NewMember, StoreError};

/// Prefix of invitation tokens, so scanners and logs can tell them apart.
pub const INVITE_TOKEN_PREFIX: &str = "visa_invite";
/// How long an invitation can be accepted.
const INVITE_TTL: time::Duration = time::Duration::days(7);

/// Store refusals of member changes: unknown member, taken login, last owner, owner-only.
pub(crate) fn member_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(message) => ApiError::new(ErrorCode::MemberExists, message),
        StoreError::Forbidden(message) => ApiError::new(ErrorCode::Forbidden, message),
        other => not_found_as(ErrorCode::MemberNotFound, MEMBER_NOT_FOUND)(other),
    }
}

/// Adding a member or changing a role mints a person's credential (an invitation token, a
/// session, and through an admin role new admin keys) that would outlive the admin key that
/// asked for it: a leaked admin key could multiply past its own revocation. Only a signed-in
/// member may.
fn refuse_admin_key(caller: &Session) -> ApiResult<()> {
    if caller.is_admin_key() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "admin keys cannot invite members or change roles; a signed-in owner or admin must",
        ));
    }
    Ok(())
}

pub async fn list(state: &AppState, caller: &Session) -> ApiResult<MemberList> {
    caller.require(Permission::Read)?;
    let members = state.store.list_members(caller.account.id).await?;
    Ok(MemberList { success: true, object: "list".into(), members: members.iter().map(MemberView::from).collect() })
}

pub async fn invite(state: &AppState, caller: &Session, req: InviteRequest) -> ApiResult<InviteResponse> {
    caller.require(Permission::ManageMembers)?;
    refuse_admin_key(caller)?;
    let login = Login::parse(&req.login)?;
    let role = Role::parse(&req.role)?;
    if role == Role::Owner {
        caller.require(Permission::Own)?;
    }
    let token = random_token(INVITE_TOKEN_PREFIX);
    let audit = caller.audit(state);
    let new = NewMember {
        login: login.into_string(),
        role,
        invite_hash: state.hasher.hash(&token),
        invite_expires_at: audit.now + INVITE_TTL,
    };
    let member = state.store.invite_member(caller.account.id, new, audit).await.map_err(member_error)?;
    tracing::info!(member_id = %member.id, role = %member.role, "member invited");
    Ok(InviteResponse { success: true, member: MemberView::from(&member), invite_token: token })
}

pub async fn change_role(
    state: &AppState,
    caller: &Session,
    id: MemberId,
    req: ChangeRoleRequest,
) -> ApiResult<MemberResponse> {
    caller.require(Permission::ManageMembers)?;
    refuse_admin_key(caller)?;
    let role = Role::parse(&req.role)?;
    // Who may touch an owner is checked by the store, against the member as it is then.
    let member = state
        .store
        .change_member_role(caller.account.id, id, role, caller.role, caller.audit(state))
        .await
        .map_err(member_error)?;
    tracing::info!(member_id = %id, role = %member.role, "member role changed");
    Ok(MemberResponse { success: true, member: MemberView::from(&member) })
}

pub async fn remove(state: &AppState, caller: &Session, id: MemberId) -> ApiResult<RemovedResponse> {
    caller.require(Permission::ManageMembers)?;
    state.store.remove_member(caller.account.id, id, caller.role, caller.audit(state)).await.map_err(member_error)?;
    tracing::info!(member_id = %id, "member removed");
    Ok(RemovedResponse { success: true, removed: id.get() })
}

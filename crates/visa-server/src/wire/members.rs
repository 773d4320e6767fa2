//! Members on the wire: a member as the API shows it, the bodies that invite one, change a role
//! and accept an invitation, the answers, and a member id in a path.

use super::rfc3339;
use crate::error::ApiResult;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use visa_core::ErrorCode;
use visa_core::id::MemberId;
use visa_store::Member;

pub const MEMBER_NOT_FOUND: &str = "no such member";

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    pub id: i64,
    pub login: String,
    /// `owner`, `admin`, `developer` or `viewer`.
    pub role: String,
    /// `active`, or `invited` until the invitation is accepted.
    pub status: String,
    pub created_at: String,
    pub invite_expires_at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberList {
    pub success: bool,
    pub object: String,
    pub members: Vec<MemberView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberResponse {
    pub success: bool,
    pub member: MemberView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InviteResponse {
    pub success: bool,
    pub member: MemberView,
    /// Give this to the invitee; it is shown once and works until `invite_expires_at`.
    pub invite_token: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RemovedResponse {
    pub success: bool,
    pub removed: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    #[schema(schema_with = super::schema::login)]
    pub login: String,
    #[schema(schema_with = super::schema::role)]
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRoleRequest {
    #[schema(schema_with = super::schema::role)]
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInviteRequest {
    pub invite_token: String,
    #[schema(schema_with = super::schema::password)]
    pub password: String,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> Self {
        Self {
            id: m.id.get(),
            login: m.login.clone(),
            role: m.role.as_str().to_owned(),
            status: if m.invite_expires_at.is_some() { "invited" } else { "active" }.to_owned(),
            created_at: rfc3339(m.created_at),
            invite_expires_at: m.invite_expires_at.map(rfc3339),
        }
    }
}

/// A path id that is not a positive integer cannot name a member of ours.
pub fn member_id(text: &str) -> ApiResult<MemberId> {
    super::path_id(text, ErrorCode::MemberNotFound, MEMBER_NOT_FOUND).map(MemberId::new)
}

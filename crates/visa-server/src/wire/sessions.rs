//! Sessions on the wire: signing in, who a credential is, a live session as listed (never its
//! token), and the answers of ending sessions and changing a password.

use super::rfc3339;
use crate::error::ApiResult;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use visa_core::ErrorCode;
use visa_core::id::SessionId;
use visa_store::SessionRecord;

pub const SESSION_NOT_FOUND: &str = "no live session with this id";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    pub login: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionResponse {
    pub success: bool,
    /// Send as `Authorization: Bearer <session_token>`. Shown once.
    pub session_token: String,
    pub expires_at: String,
    /// The member signed in.
    pub login: String,
}

/// Who a session (or an admin key) is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CurrentSession {
    pub success: bool,
    /// `session` or `admin_key`.
    pub credential: String,
    pub account_id: i64,
    pub account: String,
    /// The member's login, or the admin key's label.
    pub actor: String,
    pub role: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SignedOut {
    pub success: bool,
}

/// A live session, without its token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    pub id: i64,
    pub member_id: i64,
    pub created_at: String,
    pub expires_at: String,
    /// The client IP that opened it (for the operator's, the operator's).
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Whether this is the session asking.
    pub current: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    pub success: bool,
    pub object: String,
    pub sessions: Vec<SessionView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionsEnded {
    pub success: bool,
    /// How many sessions ended.
    pub ended: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    #[schema(schema_with = super::schema::password)]
    pub new_password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PasswordChanged {
    pub success: bool,
    pub login: String,
    /// How many other sessions of the member ended with the change.
    pub other_sessions_ended: u64,
}

impl From<SessionRecord> for SessionView {
    fn from(s: SessionRecord) -> Self {
        Self {
            id: s.id.get(),
            member_id: s.member_id.get(),
            created_at: rfc3339(s.created_at),
            expires_at: rfc3339(s.expires_at),
            ip: s.ip.map(|ip| ip.to_string()),
            user_agent: s.user_agent,
            current: s.current,
        }
    }
}

/// A path id that is not a positive integer cannot name a live session of ours.
pub fn session_id(text: &str) -> ApiResult<SessionId> {
    super::path_id(text, ErrorCode::NotFound, SESSION_NOT_FOUND).map(SessionId::new)
}

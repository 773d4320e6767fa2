//! Admin keys on the wire: an admin key as the API shows it, the body that creates one, the
//! answers, and an admin key id in a path.

use super::rfc3339;
use crate::error::ApiResult;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use visa_core::ErrorCode;
use visa_core::id::AdminKeyId;
use visa_store::AdminKeyRecord;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminKeyView {
    pub id: i64,
    pub label: String,
    pub key_prefix: String,
    pub environment: String,
    /// `active` or `revoked`.
    pub status: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<&AdminKeyRecord> for AdminKeyView {
    fn from(k: &AdminKeyRecord) -> Self {
        Self {
            id: k.id.get(),
            label: k.label.as_str().to_owned(),
            key_prefix: k.key_prefix.clone(),
            environment: k.environment.as_str().to_owned(),
            status: if k.revoked_at.is_some() { "revoked" } else { "active" }.to_owned(),
            created_at: rfc3339(k.created_at),
            revoked_at: k.revoked_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAdminKeyRequest {
    #[schema(schema_with = super::schema::label)]
    pub label: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminKeyCreated {
    pub success: bool,
    /// The raw admin key, shown this once.
    pub key: String,
    #[serde(flatten)]
    pub admin_key: AdminKeyView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminKeyList {
    pub success: bool,
    pub object: String,
    pub admin_keys: Vec<AdminKeyView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminKeyRevoked {
    pub success: bool,
    pub revoked: i64,
}

pub const ADMIN_KEY_NOT_FOUND: &str = "no such admin key";

/// A path id that is not a positive integer cannot name an admin key of ours.
pub fn admin_key_id(text: &str) -> ApiResult<AdminKeyId> {
    super::path_id(text, ErrorCode::KeyNotFound, ADMIN_KEY_NOT_FOUND).map(AdminKeyId::new)
}

//! Admin keys (`/v1/api/admin-keys`): account credentials for automation, e.g. a CI pipeline
//! that rotates its own tool keys. An admin key is accepted wherever a session is, never
//! executes tools, and cannot mint further admin keys (only a person's session can), so a
//! leaked one cannot multiply itself. Minting and revoking them takes the admin role or above;
//! an admin key itself acts as an admin. The raw key is shown once.

use crate::auth::Session;
use crate::error::{ApiError, ApiResult, not_found_as};
use crate::state::AppState;
use crate::wire::admin_keys::{
    ADMIN_KEY_NOT_FOUND, AdminKeyCreated, AdminKeyList, AdminKeyRevoked, AdminKeyView, CreateAdminKeyRequest,
};
use visa_core::ErrorCode;
use visa_core::id::AdminKeyId;
use visa_core::key::{KeyKind, KeyMode, RawKey};
use visa_core::policy::KeyLabel;
use visa_core::role::Permission;
use visa_store::NewSecret;

pub async fn create(state: &AppState, caller: &Session, req: CreateAdminKeyRequest) -> ApiResult<AdminKeyCreated> {
    caller.require(Permission::ManageMembers)?;
    if caller.is_admin_key() {
        return Err(ApiError::new(ErrorCode::Forbidden, "admin keys cannot mint admin keys; sign in to create one"));
    }
    let label = KeyLabel::parse(&req.label)?;
    let raw = RawKey::generate(&state.brand, KeyMode { kind: KeyKind::Admin, environment: state.environment });
    let secret = NewSecret { hash: state.hasher.hash(raw.expose()), key_prefix: raw.prefix(), expires_at: None };
    let audit = caller.audit(state);
    let key = state.store.create_admin_key(caller.account.id, label, state.environment, secret, audit).await?;
    tracing::info!(admin_key_id = %key.id, account = %caller.account.login, "admin key created");
    Ok(AdminKeyCreated { success: true, key: raw.expose().to_owned(), admin_key: AdminKeyView::from(&key) })
}

pub async fn list(state: &AppState, caller: &Session) -> ApiResult<AdminKeyList> {
    caller.require(Permission::Read)?;
    let keys = state.store.list_admin_keys(caller.account.id).await?;
    Ok(AdminKeyList { success: true, object: "list".into(), admin_keys: keys.iter().map(AdminKeyView::from).collect() })
}

pub async fn revoke(state: &AppState, caller: &Session, id: AdminKeyId) -> ApiResult<AdminKeyRevoked> {
    caller.require(Permission::ManageMembers)?;
    state
        .store
        .revoke_admin_key(caller.account.id, id, caller.audit(state))
        .await
        .map_err(not_found_as(ErrorCode::KeyNotFound, ADMIN_KEY_NOT_FOUND))?;
    tracing::info!(admin_key_id = %id, "admin key revoked");
    Ok(AdminKeyRevoked { success: true, revoked: id.get() })
}

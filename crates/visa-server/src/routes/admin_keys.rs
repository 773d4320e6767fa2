//! Admin keys (`/v1/api/admin-keys`): account credentials for automation, e.g. a CI pipeline
//! that rotates its own tool keys. An admin key is accepted wherever a session is, never
//! executes tools, and cannot mint further admin keys (only a person's session can), so a
//! leaked one cannot multiply itself. Minting and revoking them takes the admin role or above;
//! an admin key itself acts as an admin. The raw key is shown once.

use crate::auth::Session;
use crate::error::{ApiError, ApiResult, not_found_as};
use crate::extract::JsonBody;
use crate::routes::rfc3339;
use crate::state::SharedState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use visa_core::ErrorCode;
use visa_core::key::{KeyKind, KeyMode, RawKey};
use visa_core::policy::KeyLabel;
use visa_core::role::Permission;
use visa_store::{AdminKeyRecord, NewSecret};

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(create, list)).routes(routes!(revoke))
}

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
            id: k.id,
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
    #[schema(schema_with = crate::routes::schema::label)]
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

#[utoipa::path(post, path = "/v1/api/admin-keys", tag = "admin-keys", request_body = CreateAdminKeyRequest,
    responses((status = 201, body = AdminKeyCreated), (status = 403, body = crate::routes::ErrorBody)), security(("session" = [])))]
pub async fn create(
    State(state): State<SharedState>,
    session: Session,
    JsonBody(req): JsonBody<CreateAdminKeyRequest>,
) -> ApiResult<(StatusCode, Json<AdminKeyCreated>)> {
    session.require(Permission::ManageMembers)?;
    if session.is_admin_key() {
        return Err(ApiError::new(ErrorCode::Forbidden, "admin keys cannot mint admin keys; sign in to create one"));
    }
    let label = KeyLabel::parse(&req.label)?;
    let raw = RawKey::generate(&state.brand, KeyMode { kind: KeyKind::Admin, environment: state.environment });
    let secret = NewSecret { hash: state.hasher.hash(raw.expose()), key_prefix: raw.prefix() };
    let audit = session.audit(&state);
    let key = state.store.create_admin_key(session.account.id, label, state.environment, secret, audit).await?;
    tracing::info!(admin_key_id = key.id, account = %session.account.login, "admin key created");
    let body = AdminKeyCreated { success: true, key: raw.expose().to_owned(), admin_key: AdminKeyView::from(&key) };
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(get, path = "/v1/api/admin-keys", tag = "admin-keys", responses((status = 200, body = AdminKeyList)),
    security(("session" = [])))]
pub async fn list(State(state): State<SharedState>, session: Session) -> ApiResult<Json<AdminKeyList>> {
    session.require(Permission::Read)?;
    let keys = state.store.list_admin_keys(session.account.id).await?;
    Ok(Json(AdminKeyList {
        success: true,
        object: "list".into(),
        admin_keys: keys.iter().map(AdminKeyView::from).collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/api/admin-keys/{id}", tag = "admin-keys", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = AdminKeyRevoked), (status = 404, body = crate::routes::ErrorBody)), security(("session" = [])))]
pub async fn revoke(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<AdminKeyRevoked>> {
    session.require(Permission::ManageMembers)?;
    const NOT_FOUND: &str = "no such admin key";
    let id = crate::routes::path_id(&id, ErrorCode::KeyNotFound, NOT_FOUND)?;
    state
        .store
        .revoke_admin_key(session.account.id, id, session.audit(&state))
        .await
        .map_err(not_found_as(ErrorCode::KeyNotFound, NOT_FOUND))?;
    tracing::info!(admin_key_id = id, "admin key revoked");
    Ok(Json(AdminKeyRevoked { success: true, revoked: id }))
}

//! `POST /v1/api/keys/revoke-leaked`: a secret-scanning service (or a person) posts raw keys
//! found in public, and every key they belong to is revoked at once. With the operator token
//! any account's keys are revoked; with an owner's session, only that account's. Every kind of
//! credential the scanner pattern matches is revoked: tool keys (`VisaKey_live_…`, audited as
//! `key.revoked_leaked`) and admin keys (`VisaKey_admin_live_…`, audited as
//! `admin_key.revoked`). Invitation tokens and session tokens do not match the pattern (see
//! docs/security.md for killing those). The answer counts what was revoked and never echoes a
//! key, nor says whether an unrevoked key exists elsewhere.

use crate::auth::OperatorOrSession;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::state::SharedState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use visa_core::key::{KeyKind, RawKey};
use visa_core::role::Permission;
use visa_store::AccountId;
use visa_store::RevokeCause;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(revoke_leaked))
}

const MAX_KEYS: usize = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeLeakedRequest {
    /// Raw keys as found (1 to 100).
    #[schema(min_items = 1, max_items = 100)]
    pub keys: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RevokeLeakedResponse {
    pub success: bool,
    /// Ids of the tool keys revoked by this call (already revoked keys are not listed again).
    pub revoked: Vec<i64>,
    /// Ids of the admin keys revoked by this call.
    pub revoked_admin_keys: Vec<i64>,
    /// How many of the posted strings matched no key this caller may revoke.
    pub unmatched: usize,
}

#[utoipa::path(post, path = "/v1/api/keys/revoke-leaked", tag = "keys", request_body = RevokeLeakedRequest,
    responses((status = 200, body = RevokeLeakedResponse), (status = 400, body = crate::wire::ErrorBody)),
    security(("operator" = []), ("session" = [])))]
pub async fn revoke_leaked(
    State(state): State<SharedState>,
    caller: OperatorOrSession,
    JsonBody(req): JsonBody<RevokeLeakedRequest>,
) -> ApiResult<Json<RevokeLeakedResponse>> {
    let audit = match &caller {
        OperatorOrSession::Operator(operator) => operator.audit(&state),
        OperatorOrSession::Session(session) => {
            session.require(Permission::Own)?;
            session.audit(&state)
        }
    };
    if req.keys.is_empty() || req.keys.len() > MAX_KEYS {
        return Err(ApiError::invalid(format!("keys must hold 1 to {MAX_KEYS} raw keys")));
    }
    let mut revoked = vec![];
    let mut revoked_admin_keys = vec![];
    let mut unmatched = 0;
    let may_revoke = |account_id: AccountId| match &caller {
        OperatorOrSession::Operator(_) => true,
        OperatorOrSession::Session(session) => account_id == session.account.id,
    };
    for text in &req.keys {
        let Ok(raw) = RawKey::parse(&state.brand, text.trim()) else {
            unmatched += 1;
            continue;
        };
        if raw.mode().kind == KeyKind::Admin {
            let hash = state.hasher.hash(raw.expose());
            let found = state.store.admin_key_by_secret(hash).await?;
            let Some((key, _)) = found.filter(|(key, stored)| stored.matches(&hash) && may_revoke(key.account_id))
            else {
                unmatched += 1;
                continue;
            };
            if key.revoked_at.is_none() {
                state.store.revoke_admin_key(key.account_id, key.id, audit.clone()).await?;
                revoked_admin_keys.push(key.id.get());
            }
            tracing::warn!(admin_key_id = %key.id, prefix = %raw.prefix(), "leaked admin key revoked");
            continue;
        }
        let found = state.store.key_by_secret(state.hasher.hash(raw.expose())).await?;
        let allowed = found.filter(|r| may_revoke(r.key.account_id));
        let Some(record) = allowed else {
            unmatched += 1;
            continue;
        };
        if record.key.revoked_at.is_none() {
            let (account_id, key_id) = (record.key.account_id, record.key.id);
            state.store.revoke_key(account_id, key_id, RevokeCause::Leaked, audit.clone()).await?;
            revoked.push(record.key.id.get());
        }
        state.keys.invalidate_key(record.key.id);
        tracing::warn!(key_id = %record.key.id, prefix = %raw.prefix(), "leaked key revoked");
    }
    Ok(Json(RevokeLeakedResponse { success: true, revoked, revoked_admin_keys, unmatched }))
}

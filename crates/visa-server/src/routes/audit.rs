//! `GET /v1/api/audit`: the account's audit log, newest first, cursor-paginated like keys,
//! narrowed by `action` (e.g. `key.updated`), `target` (e.g. `key:12`) and `since` (RFC 3339).
//! Read-only by construction: no route changes or deletes an entry, and the table's
//! triggers refuse it.

use crate::auth::Session;
use crate::error::{ApiError, ApiResult};
use crate::routes::{ListQuery, parse_rfc3339, rfc3339};
use crate::state::SharedState;
use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use visa_core::role::Permission;
use visa_store::{Actor, AuditEntry, AuditFilter};

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActorView {
    /// `member`, `admin_key` or `operator`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<i64>,
    /// The member's login or the admin key's label.
    pub name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryView {
    pub id: i64,
    pub object: String,
    pub action: String,
    pub target: String,
    pub actor: ActorView,
    /// Each changed field: `{"before": .., "after": ..}`.
    #[schema(value_type = Object)]
    pub changes: serde_json::Value,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: String,
}

impl From<&AuditEntry> for AuditEntryView {
    fn from(e: &AuditEntry) -> Self {
        let actor = match &e.actor {
            Actor::Operator => ActorView { kind: "operator".into(), id: None, name: None },
            Actor::Member { id, login } => {
                ActorView { kind: "member".into(), id: Some(*id), name: Some(login.clone()) }
            }
            Actor::AdminKey { id, label } => {
                ActorView { kind: "admin_key".into(), id: Some(*id), name: Some(label.clone()) }
            }
        };
        Self {
            id: e.id,
            object: "audit_entry".into(),
            action: e.action.clone(),
            target: e.target.clone(),
            actor,
            changes: e.changes.clone(),
            ip: e.ip.map(|ip| ip.to_string()),
            user_agent: e.user_agent.clone(),
            created_at: rfc3339(e.created_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    #[serde(flatten)]
    pub page: crate::routes::ListPage,
    pub entries: Vec<AuditEntryView>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Exact action, e.g. `key.revoked`.
    action: Option<String>,
    /// Exact target, e.g. `key:12` or `member:3`.
    target: Option<String>,
    /// RFC 3339: entries at or after this time.
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
}

impl AuditQuery {
    pub fn new(action: Option<String>, target: Option<String>, since: Option<String>) -> Self {
        AuditQuery { action, target, since }
    }
}

#[utoipa::path(get, path = "/v1/api/audit", tag = "audit", params(ListQuery, AuditQuery),
    responses((status = 200, body = AuditList), (status = 400, body = crate::routes::ErrorBody)),
    security(("session" = [])))]
pub async fn list(
    State(state): State<SharedState>,
    session: Session,
    page: ListQuery,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<AuditList>> {
    session.require(Permission::Read)?;
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("invalid query string: {}", e.body_text())))?;
    let filter = AuditFilter {
        action: query.action,
        target: query.target,
        since: parse_rfc3339("since", query.since.as_deref())?,
    };
    let page = state.store.list_audit(session.account.id, filter, page.page()?).await?;
    Ok(Json(AuditList {
        page: crate::routes::ListPage::of(&page),
        entries: page.items.iter().map(AuditEntryView::from).collect(),
    }))
}

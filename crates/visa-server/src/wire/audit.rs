//! The audit log on the wire: an entry with its actor, the list, and its filters.

use super::{parse_rfc3339, rfc3339};
use crate::error::ApiResult;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use visa_store::{Actor, AuditEntry, AuditFilter};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActorView {
    /// `member`, `admin_key`, `oauth_client` (an application acting on a grant), `operator`, or
    /// `system` (the server acting on a rule, e.g. disabling a failing webhook endpoint).
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<i64>,
    /// The member's login, the admin key's label or the application's name.
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
                ActorView { kind: "member".into(), id: Some(id.get()), name: Some(login.clone()) }
            }
            Actor::AdminKey { id, label } => {
                ActorView { kind: "admin_key".into(), id: Some(id.get()), name: Some(label.clone()) }
            }
            Actor::OAuthClient { id, name } => {
                ActorView { kind: "oauth_client".into(), id: Some(*id), name: Some(name.clone()) }
            }
            Actor::System => ActorView { kind: "system".into(), id: None, name: None },
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
    pub page: super::ListPage,
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

    /// The store's filter: a bad `since` is a 400.
    pub fn filter(self) -> ApiResult<AuditFilter> {
        Ok(AuditFilter {
            action: self.action,
            target: self.target,
            since: parse_rfc3339("since", self.since.as_deref())?,
        })
    }
}

//! Executions on the wire: an execution as listed (with its receipt), the list's `state` and
//! `key_id` filters, the operator's reconcile body, and the not-found refusal.

use super::rfc3339;
use crate::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use visa_core::ErrorCode;
use visa_core::id::KeyId;
use visa_store::{ExecutionRecord, ExecutionState};

pub const EXECUTION_NOT_FOUND: &str = "no such execution";

pub fn execution_not_found() -> ApiError {
    ApiError::new(ErrorCode::ExecutionNotFound, EXECUTION_NOT_FOUND)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecutionView {
    /// The `execution_id` of the execute answer.
    pub id: String,
    /// Increasing number: the cursor for `starting_after` / `ending_before`.
    pub seq: i64,
    pub object: String,
    pub tool: String,
    pub key_id: i64,
    /// `running`, `succeeded`, `failed`, `reconcile_required` or `voided`.
    pub state: String,
    /// True in the preview environment: caps counted, nothing charged.
    pub sandbox: bool,
    pub held_micros: String,
    pub charged_micros: String,
    pub charged_cents: i64,
    pub receipt: Option<super::execute::Receipt>,
    /// The end user the call was made for, as its caller named it (docs/end-users.md).
    pub end_user: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl From<&ExecutionRecord> for ExecutionView {
    fn from(e: &ExecutionRecord) -> Self {
        let receipt = e
            .receipt_id
            .as_ref()
            .map(|id| super::execute::Receipt::of(e, id.clone(), e.charged, e.finished_at.unwrap_or(e.created_at)));
        Self {
            id: e.public_id.clone(),
            seq: e.id,
            object: "execution".into(),
            tool: e.tool.clone(),
            key_id: e.key_id.get(),
            state: e.state.as_str().into(),
            sandbox: e.sandbox,
            held_micros: e.hold.to_string(),
            charged_micros: e.charged.to_string(),
            charged_cents: e.charged.cents_ceil(),
            receipt,
            end_user: e.end_user.as_ref().map(|u| u.as_str().to_owned()),
            created_at: rfc3339(e.created_at),
            finished_at: e.finished_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecutionListResponse {
    #[serde(flatten)]
    pub page: super::ListPage,
    pub executions: Vec<ExecutionView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecutionResponse {
    pub success: bool,
    #[serde(flatten)]
    pub execution: ExecutionView,
}

/// `?state=` and `?key_id=` filters of execution lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StateQuery {
    /// Only executions in this state.
    #[param(schema_with = super::schema::execution_state)]
    state: Option<String>,
    /// Only executions of this key.
    #[param(value_type = Option<i64>, minimum = 1)]
    key_id: Option<String>,
}

impl StateQuery {
    pub fn of(state: Option<&str>, key_id: Option<&str>) -> Self {
        StateQuery { state: state.map(str::to_owned), key_id: key_id.map(str::to_owned) }
    }

    pub fn key_id(&self) -> ApiResult<Option<KeyId>> {
        self.key_id
            .as_deref()
            .map(|text| KeyId::parse(text).ok_or_else(|| ApiError::invalid("key_id must be a positive whole number")))
            .transpose()
    }

    /// The state asked for.
    pub fn state(&self) -> ApiResult<Option<ExecutionState>> {
        self.state
            .as_deref()
            .map(|s| {
                ExecutionState::parse(s).ok_or_else(|| {
                    ApiError::invalid("state must be running, succeeded, failed, reconcile_required or voided")
                })
            })
            .transpose()
    }
}

/// Exactly one of `capture_micros` or `capture_cents` (at most the hold), or `void: true`; its
/// schema says so (`schema::reconcile_request`, a `oneOf`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    /// Charge this many micros (exact, so a sub-cent hold can be captured as it was).
    pub capture_micros: Option<i64>,
    pub capture_cents: Option<i64>,
    pub void: Option<bool>,
}

impl utoipa::PartialSchema for ReconcileRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::Schema::OneOf(super::schema::reconcile_request()).into()
    }
}

impl ToSchema for ReconcileRequest {}

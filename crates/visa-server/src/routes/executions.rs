//! Executions: `GET /v1/api/executions[/:id]` for an account (a key sees only its own),
//! and the operator's `GET /v1/operator/executions` and
//! `POST /v1/operator/executions/:id/reconcile` for calls whose outcome a crash lost.

use crate::auth::{Operator, Reader};
use crate::error::{ApiError, ApiResult, not_found_as};
use crate::extract::JsonBody;
use crate::routes::operator::{operator_request, operator_request_error};
use crate::routes::{ListQuery, rfc3339};
use crate::state::SharedState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use visa_core::ErrorCode;
use visa_core::money::Micros;
use visa_store::{ExecutionFilter, ExecutionRecord, ExecutionState, Reconcile};

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(operator_list))
        .routes(routes!(reconcile))
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
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl From<&ExecutionRecord> for ExecutionView {
    fn from(e: &ExecutionRecord) -> Self {
        let receipt = e.receipt_id.as_ref().map(|id| super::execute::Receipt {
            id: id.clone(),
            execution_id: e.public_id.clone(),
            charged_micros: e.charged.to_string(),
            created_at: rfc3339(e.finished_at.unwrap_or(e.created_at)),
        });
        Self {
            id: e.public_id.clone(),
            seq: e.id,
            object: "execution".into(),
            tool: e.tool.clone(),
            key_id: e.key_id,
            state: e.state.as_str().into(),
            sandbox: e.sandbox,
            held_micros: e.hold.to_string(),
            charged_micros: e.charged.to_string(),
            charged_cents: e.charged.cents_ceil(),
            receipt,
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
    #[param(schema_with = crate::routes::schema::execution_state)]
    state: Option<String>,
    /// Only executions of this key.
    #[param(value_type = Option<i64>, minimum = 1)]
    key_id: Option<String>,
}

impl StateQuery {
    pub fn of(state: Option<&str>, key_id: Option<&str>) -> Self {
        StateQuery { state: state.map(str::to_owned), key_id: key_id.map(str::to_owned) }
    }

    fn key_id(&self) -> ApiResult<Option<i64>> {
        self.key_id
            .as_deref()
            .map(|text| {
                visa_core::number::positive_id(text)
                    .ok_or_else(|| ApiError::invalid("key_id must be a positive whole number"))
            })
            .transpose()
    }

    fn parse(&self) -> ApiResult<Option<ExecutionState>> {
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

const EXECUTION_NOT_FOUND: &str = "no such execution";

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::ExecutionNotFound, EXECUTION_NOT_FOUND)
}

async fn list_page(
    state: &SharedState,
    filter: ExecutionFilter,
    query: ListQuery,
) -> ApiResult<Json<ExecutionListResponse>> {
    let page = state.store.list_executions(filter, query.page()?).await?;
    Ok(Json(ExecutionListResponse {
        page: super::ListPage::of(&page),
        executions: page.items.iter().map(ExecutionView::from).collect(),
    }))
}

fn state_query(query: Result<Query<StateQuery>, axum::extract::rejection::QueryRejection>) -> ApiResult<StateQuery> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("invalid query string: {}", e.body_text())))?;
    Ok(query)
}

#[utoipa::path(get, path = "/v1/api/executions", tag = "executions", params(ListQuery, StateQuery),
    responses((status = 200, body = ExecutionListResponse), (status = 400, body = crate::routes::ErrorBody)),
    security(("session" = []), ("api_key" = [])))]
pub async fn list(
    State(state): State<SharedState>,
    reader: Reader,
    page: ListQuery,
    filter: Result<Query<StateQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ExecutionListResponse>> {
    let query = state_query(filter)?;
    let (asked, own) = (query.key_id()?, reader.key_id());
    // A key reads only its own executions: asking for another key's matches nothing.
    let key_id = match (asked, own) {
        (Some(asked), Some(own)) if asked != own => Some(0),
        (asked, own) => own.or(asked),
    };
    let filter = ExecutionFilter { account_id: Some(reader.account_id()), key_id, state: query.parse()? };
    list_page(&state, filter, page).await
}

#[utoipa::path(get, path = "/v1/api/executions/{id}", tag = "executions", params(("id" = String, Path)),
    responses((status = 200, body = ExecutionResponse), (status = 404, body = crate::routes::ErrorBody)),
    security(("session" = []), ("api_key" = [])))]
pub async fn get(
    State(state): State<SharedState>,
    reader: Reader,
    Path(id): Path<String>,
) -> ApiResult<Json<ExecutionResponse>> {
    let filter = ExecutionFilter { account_id: Some(reader.account_id()), key_id: reader.key_id(), state: None };
    let execution = state.store.get_execution(filter, &id).await?.ok_or_else(not_found)?;
    Ok(Json(ExecutionResponse { success: true, execution: ExecutionView::from(&execution) }))
}

#[utoipa::path(get, path = "/v1/operator/executions", tag = "operator", params(ListQuery, StateQuery),
    responses((status = 200, body = ExecutionListResponse)), security(("operator" = [])))]
pub async fn operator_list(
    State(state): State<SharedState>,
    _: Operator,
    page: ListQuery,
    filter: Result<Query<StateQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ExecutionListResponse>> {
    let query = state_query(filter)?;
    let filter = ExecutionFilter { state: query.parse()?, key_id: query.key_id()?, ..Default::default() };
    list_page(&state, filter, page).await
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
        utoipa::openapi::schema::Schema::OneOf(crate::routes::schema::reconcile_request()).into()
    }
}

impl ToSchema for ReconcileRequest {}

#[utoipa::path(post, path = "/v1/operator/executions/{id}/reconcile", tag = "operator",
    params(("id" = String, Path), crate::routes::operator::OperatorIdempotency),
    request_body = ReconcileRequest,
    responses((status = 200, body = ExecutionResponse), (status = 400, body = crate::routes::ErrorBody), (status = 404, body = crate::routes::ErrorBody)),
    security(("operator" = [])))]
pub async fn reconcile(
    State(state): State<SharedState>,
    operator: Operator,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ReconcileRequest>,
) -> ApiResult<Json<ExecutionResponse>> {
    let now = state.now();
    let fields = json!({ "capture_micros": req.capture_micros, "capture_cents": req.capture_cents, "void": req.void });
    let request = operator_request(&headers, &format!("reconcile:{id}"), &fields)?;
    let retain_until = now + state.idempotency_ttl;
    let decision = match (req.capture_micros, req.capture_cents, req.void) {
        (Some(micros), None, None | Some(false)) if micros >= 0 => {
            reconciled_capture(&id, Micros(micros), now, retain_until)
        }
        (None, Some(cents), None | Some(false)) if cents >= 0 => {
            let cost = Micros::from_cents(cents).ok_or_else(|| ApiError::invalid("capture_cents is too large"))?;
            reconciled_capture(&id, cost, now, retain_until)
        }
        (None, None, Some(true)) => Reconcile::Void,
        _ => {
            return Err(ApiError::invalid(
                "send exactly one of capture_micros or capture_cents (0 or more), or void: true",
            ));
        }
    };
    let execution = state
        .store
        .reconcile_execution(&id, decision, operator.audit(&state), request)
        .await
        .map_err(operator_request_error(not_found_as(ErrorCode::ExecutionNotFound, EXECUTION_NOT_FOUND)))?;
    tracing::info!(execution = %execution.public_id, state = execution.state.as_str(), charged = %execution.charged, "execution reconciled");
    Ok(Json(ExecutionResponse { success: true, execution: ExecutionView::from(&execution) }))
}

/// A capture decided by the operator. The tool's result was lost, so retries of the
/// original request get this answer: what was charged, and that the result is gone.
fn reconciled_capture(
    public_id: &str,
    cost: Micros,
    now: time::OffsetDateTime,
    retain_until: time::OffsetDateTime,
) -> Reconcile {
    let receipt_id = format!("rcpt_{}", Uuid::new_v4().simple());
    let receipt = (cost > Micros::ZERO).then(|| {
        json!({ "id": receipt_id, "execution_id": public_id, "charged_micros": cost.to_string(), "created_at": rfc3339(now) })
    });
    let body = json!({
        "success": false,
        "error": format!("this call was reconciled by the operator and charged {cost} micros; its result was lost"),
        "error_code": ErrorCode::IdempotencyUnavailable.as_str(),
        "retryable": false,
        "support_id": public_id,
        "receipt": receipt,
    });
    let body = serde_json::to_vec(&body).unwrap_or_default();
    Reconcile::Capture { cost, receipt_id, status: 503, body, retain_until }
}

//! Executions: an account's list and one execution (a key sees only its own), the operator's
//! list across accounts, and the operator's reconcile of a call whose outcome a crash lost.

use super::operator::operator_request_error;
use crate::auth::{Operator, Reader};
use crate::error::{ApiError, ApiResult, not_found_as};
use crate::state::AppState;
use crate::wire::executions::{
    EXECUTION_NOT_FOUND, ExecutionListResponse, ExecutionResponse, ExecutionView, ReconcileRequest, StateQuery,
    execution_not_found,
};
use crate::wire::{ListPage, rfc3339};
use serde_json::json;
use uuid::Uuid;
use visa_core::ErrorCode;
use visa_core::money::Micros;
use visa_core::pagination::PageRequest;
use visa_store::{ExecutionFilter, KeyId, OperatorRequest, Reconcile};

async fn list_page(state: &AppState, filter: ExecutionFilter, page: PageRequest) -> ApiResult<ExecutionListResponse> {
    let page = state.store.list_executions(filter, page).await?;
    Ok(ExecutionListResponse {
        page: ListPage::of(&page),
        executions: page.items.iter().map(ExecutionView::from).collect(),
    })
}

pub async fn list(
    state: &AppState,
    reader: &Reader,
    page: PageRequest,
    query: &StateQuery,
) -> ApiResult<ExecutionListResponse> {
    let (asked, own) = (query.key_id()?, reader.key_id());
    // A key reads only its own executions: asking for another key's matches nothing.
    let key_id = match (asked, own) {
        (Some(asked), Some(own)) if asked != own => Some(KeyId::new(0)),
        (asked, own) => own.or(asked),
    };
    let filter =
        ExecutionFilter { account_id: Some(reader.account_id()), key_id, state: query.state()?, ..Default::default() };
    list_page(state, filter, page).await
}

/// One execution by its public id.
pub async fn get(state: &AppState, reader: &Reader, id: &str) -> ApiResult<ExecutionResponse> {
    let filter =
        ExecutionFilter { account_id: Some(reader.account_id()), key_id: reader.key_id(), ..Default::default() };
    let execution = state.store.get_execution(filter, id).await?.ok_or_else(execution_not_found)?;
    Ok(ExecutionResponse { success: true, execution: ExecutionView::from(&execution) })
}

/// Every account's executions, for the operator.
pub async fn operator_list(
    state: &AppState,
    _: &Operator,
    page: PageRequest,
    query: &StateQuery,
) -> ApiResult<ExecutionListResponse> {
    let filter = ExecutionFilter { state: query.state()?, key_id: query.key_id()?, ..Default::default() };
    list_page(state, filter, page).await
}

/// The operator settles a call whose outcome was lost: a capture (of at most its hold) or a
/// void, once, under the operator's optional Idempotency-Key (`request`).
pub async fn reconcile(
    state: &AppState,
    operator: &Operator,
    id: &str,
    req: ReconcileRequest,
    request: Option<OperatorRequest>,
) -> ApiResult<ExecutionResponse> {
    let now = state.now();
    let retain_until = now + state.idempotency_ttl;
    let decision = match (req.capture_micros, req.capture_cents, req.void) {
        (Some(micros), None, None | Some(false)) if micros >= 0 => {
            reconciled_capture(id, Micros(micros), now, retain_until)
        }
        (None, Some(cents), None | Some(false)) if cents >= 0 => {
            let cost = Micros::from_cents(cents).ok_or_else(|| ApiError::invalid("capture_cents is too large"))?;
            reconciled_capture(id, cost, now, retain_until)
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
        .reconcile_execution(id, decision, operator.audit(state), request)
        .await
        .map_err(operator_request_error(not_found_as(ErrorCode::ExecutionNotFound, EXECUTION_NOT_FOUND)))?;
    tracing::info!(execution = %execution.public_id, state = execution.state.as_str(), charged = %execution.charged, "execution reconciled");
    Ok(ExecutionResponse { success: true, execution: ExecutionView::from(&execution) })
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

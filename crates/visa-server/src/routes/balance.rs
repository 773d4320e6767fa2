//! `GET /v1/api/balance`: the account's prepaid balance, for a session or any of its keys.

use crate::auth::Reader;
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use visa_core::ErrorCode;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(balance))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BalanceResponse {
    pub success: bool,
    /// Money on the account, holds included (decimal string of micros).
    pub balance_micros: String,
    /// What new calls can hold: balance minus holds.
    pub available_micros: String,
    /// Reserved by running executions.
    pub held_micros: String,
    /// The balance in whole cents, rounded down.
    pub balance_cents: i64,
}

#[utoipa::path(get, path = "/v1/api/balance", tag = "billing",
    responses((status = 200, body = BalanceResponse), (status = 401, body = crate::routes::ErrorBody)),
    security(("session" = []), ("api_key" = [])))]
pub async fn balance(State(state): State<SharedState>, reader: Reader) -> ApiResult<Json<BalanceResponse>> {
    let account = state
        .store
        .account_by_id(reader.account_id())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::AccountNotFound, "no such account"))?;
    let available = account.balance.checked_sub(account.held).unwrap_or_default();
    Ok(Json(BalanceResponse {
        success: true,
        balance_micros: account.balance.to_string(),
        available_micros: available.to_string(),
        held_micros: account.held.to_string(),
        balance_cents: account.balance.cents_floor(),
    }))
}

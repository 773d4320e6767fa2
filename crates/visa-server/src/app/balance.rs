//! The account's prepaid balance, for a session or any of its keys.

use crate::auth::Reader;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::wire::balance::BalanceResponse;
use visa_core::ErrorCode;

pub async fn balance(state: &AppState, reader: &Reader) -> ApiResult<BalanceResponse> {
    let account = state
        .store
        .account_by_id(reader.account_id())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::AccountNotFound, "no such account"))?;
    let available = account.balance.checked_sub(account.held).unwrap_or_default();
    Ok(BalanceResponse {
        success: true,
        balance_micros: account.balance.to_string(),
        available_micros: available.to_string(),
        held_micros: account.held.to_string(),
        balance_cents: account.balance.cents_floor(),
    })
}

//! The account itself (`/v1/api/account`): every member reads it; owners set the low-balance
//! thresholds under which `balance.low` is sent (docs/webhooks.md).

use crate::auth::Session;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::wire::account::{AccountSettings, UpdateAccountSettings};
use visa_core::role::Permission;

/// The most thresholds an account keeps, and the largest one ($1M).
const MAX_THRESHOLDS: usize = 10;
const MAX_THRESHOLD_CENTS: i64 = 100_000_000;

pub async fn get(state: &AppState, caller: &Session) -> ApiResult<AccountSettings> {
    caller.require(Permission::Read)?;
    let account = state.store.account_by_id(caller.account.id).await?.ok_or_else(|| ApiError::invalid("no account"))?;
    Ok(AccountSettings::from(&account))
}

pub async fn update(state: &AppState, caller: &Session, req: UpdateAccountSettings) -> ApiResult<AccountSettings> {
    caller.require(Permission::Own)?;
    let Some(mut thresholds) = req.low_balance_thresholds_cents else {
        return get(state, caller).await;
    };
    if thresholds.len() > MAX_THRESHOLDS || thresholds.iter().any(|t| !(1..=MAX_THRESHOLD_CENTS).contains(t)) {
        return Err(ApiError::invalid(format!(
            "low_balance_thresholds_cents takes at most {MAX_THRESHOLDS} amounts, each from 1 to {MAX_THRESHOLD_CENTS} cents"
        )));
    }
    thresholds.sort_unstable_by(|a, b| b.cmp(a));
    thresholds.dedup();
    let account = state.store.set_low_balance_thresholds(caller.account.id, thresholds, caller.audit(state)).await?;
    Ok(AccountSettings::from(&account))
}

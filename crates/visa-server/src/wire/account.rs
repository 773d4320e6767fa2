//! The account on the wire: what `GET /v1/api/account` shows and `PATCH` changes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use visa_store::Account;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountSettings {
    pub success: bool,
    pub login: String,
    pub approved: bool,
    /// Available balances (cents) under which `balance.low` is sent, once per crossing.
    pub low_balance_thresholds_cents: Vec<i64>,
}

impl From<&Account> for AccountSettings {
    fn from(a: &Account) -> Self {
        Self {
            success: true,
            login: a.login.clone(),
            approved: a.approved,
            low_balance_thresholds_cents: a.low_balance_thresholds_cents.clone(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccountSettings {
    /// At most 10 amounts in cents, each from 1 to 100,000,000; `[]` turns the alerts off.
    pub low_balance_thresholds_cents: Option<Vec<i64>>,
}

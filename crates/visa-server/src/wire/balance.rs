//! The balance on the wire: money on the account, what is held, what new calls can hold.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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

//! A paid call on the wire (`POST /v1/api/tools/{tool}/execute`): the body, and the success
//! envelope with its usage and receipt, which the executions list shows too.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The body: exactly `{ "input": {...} }`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// Tool-specific parameters; `{}` for tools without any.
    #[schema(value_type = Object)]
    pub input: Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    /// Micros rounded up to whole cents.
    pub charged_cents: i64,
    /// Exact charge in micros, as a decimal string.
    pub charged_micros: String,
}

impl Usage {
    /// How a charge is shown wherever an answer carries one: exact micros and whole cents up.
    pub fn of(charged: visa_core::money::Micros) -> Self {
        Self { charged_cents: charged.cents_ceil(), charged_micros: charged.to_string() }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = ToolReceipt)]
pub struct Receipt {
    pub id: String,
    pub execution_id: String,
    pub charged_micros: String,
    pub created_at: String,
    /// The end user the call was made for, when its caller named one (docs/end-users.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_user: Option<String>,
}

impl Receipt {
    /// The receipt of `execution`, charged `charged` under receipt `id` at `at`: the one shape
    /// of a receipt, in a fresh answer and in the executions list.
    pub fn of(
        execution: &visa_store::ExecutionRecord,
        id: String,
        charged: visa_core::money::Micros,
        at: time::OffsetDateTime,
    ) -> Self {
        Self {
            id,
            execution_id: execution.public_id.clone(),
            charged_micros: charged.to_string(),
            created_at: super::rfc3339(at),
            end_user: execution.end_user.as_ref().map(|u| u.as_str().to_owned()),
        }
    }
}

/// The success envelope of a paid call, plus `execution_id`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = ToolExecution)]
pub struct ExecutionResponse {
    pub success: bool,
    /// Always `tool_execution`.
    pub object: String,
    /// The canonical tool id.
    pub tool: String,
    #[schema(value_type = Object)]
    pub result: Value,
    pub usage: Usage,
    /// Null when nothing was charged.
    pub receipt: Option<Receipt>,
    pub execution_id: String,
}

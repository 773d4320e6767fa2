//! How a paid call over MCP is worded (`app::paid_call::Answer`): a `tools/call` result whose
//! `structuredContent` is the tool's output and whose text block is the same JSON, with the
//! charge under `_meta`; a refusal or a final failure is a result with `isError: true` and the
//! error envelope's fields in `structuredContent`. The bytes are what the store keeps for
//! replays, so a request delivered twice is answered with the same result.

use crate::app::paid_call::Answer;
use crate::error::ApiError;
use crate::tools::catalog::Tool;
use crate::wire::execute::{Receipt, Usage};
use rmcp::model::{CallToolResult, ContentBlock, MetaObject, ResultType};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use visa_core::money::Micros;
use visa_store::ExecutionRecord;

/// The namespace of Visa Keys' `_meta` members.
pub const META: &str = "dev.visakeys";

/// A `_meta` member's name: `dev.visakeys/<name>`.
pub fn meta_key(name: &str) -> String {
    format!("{META}/{name}")
}

/// The words of `tools/call`.
pub struct ToolResult;

impl Answer for ToolResult {
    fn route(&self) -> &'static str {
        "POST mcp"
    }

    fn success(
        &self,
        _: &Tool,
        execution: &ExecutionRecord,
        result: Value,
        charged: Micros,
        receipt: Option<Receipt>,
    ) -> Vec<u8> {
        let text = serde_json::to_string(&result).unwrap_or_default();
        // `structuredContent` is an object: any other output is wrapped.
        let structured = if result.is_object() { result } else { json!({ "result": result }) };
        let Usage { charged_cents, charged_micros } = Usage::of(charged);
        let body = json!({
            "content": [{ "type": "text", "text": text }],
            "structuredContent": structured,
            "isError": false,
            "_meta": {
                meta_key("execution_id"): execution.public_id,
                meta_key("charged_micros"): charged_micros,
                meta_key("charged_cents"): charged_cents,
                meta_key("receipt"): receipt,
            },
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }

    fn failure(&self, error: &ApiError) -> Value {
        refusal(error)
    }
}

/// A refusal as a tool result: the error envelope's fields, readable by an agent that retries.
pub fn refusal(error: &ApiError) -> Value {
    let mut structured = error.body();
    if let Some(fields) = structured.as_object_mut() {
        fields.remove("success");
    }
    json!({
        "content": [{ "type": "text", "text": error.0.message }],
        "structuredContent": structured,
        "isError": true,
    })
}

/// A result as `ToolResult` words it (its bytes, kept for replays, or a refusal's value).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Worded {
    content: Vec<Text>,
    structured_content: Value,
    is_error: bool,
    #[serde(rename = "_meta", default)]
    meta: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct Text {
    text: String,
}

impl Worded {
    /// rmcp's result, complete (rmcp leaves the result type out for clients of revisions that
    /// have none). Built from our own few fields: reading the bytes through rmcp's general
    /// `CallToolResult` decoder cost a tenth of a call's CPU.
    fn result(self) -> CallToolResult {
        let mut result =
            CallToolResult::success(self.content.into_iter().map(|c| ContentBlock::text(c.text)).collect());
        result.structured_content = Some(self.structured_content);
        result.is_error = Some(self.is_error);
        result.meta = self.meta.map(MetaObject);
        result.result_type = Some(ResultType::COMPLETE);
        result
    }
}

/// The tool result of an answer's bytes (a fresh answer, or one replayed from its record).
pub fn from_bytes(bytes: &[u8]) -> Result<CallToolResult, serde_json::Error> {
    serde_json::from_slice::<Worded>(bytes).map(Worded::result)
}

/// The tool result of a refusal.
pub fn refused(error: &ApiError) -> Result<CallToolResult, serde_json::Error> {
    Worded::deserialize(refusal(error)).map(Worded::result)
}

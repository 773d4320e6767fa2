//! `POST /v1/openai/embeddings`: OpenAI's embeddings request as is, `model` naming an
//! `openai_embeddings` tool the key may use; one paid call on the same money path as a chat
//! completion (`call`), held by counting the input (`tools::provider::embeddings_plan`) and
//! metered from the provider's `usage.prompt_tokens`. The answer is the provider's, under the
//! model name the caller used, with the charge in `visa`.

use super::call;
use crate::app::paid_call::{self as execution, Answer};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, RawJsonBody};
use crate::state::SharedState;
use crate::tools::catalog::{AdapterSpec, Tool};
use crate::wire::execute::Receipt;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;
use visa_core::money::Micros;
use visa_store::{AuthRecord, ExecutionRecord};

pub async fn create(
    State(state): State<SharedState>,
    client_ip: Result<ClientIp, ApiError>,
    headers: HeaderMap,
    body: Result<RawJsonBody, ApiError>,
) -> Response {
    call::serve(state, client_ip, headers, body, embed).await
}

async fn embed(
    state: SharedState,
    key: &AuthRecord,
    headers: &HeaderMap,
    body: RawJsonBody,
    client_ip: IpAddr,
) -> ApiResult<Response> {
    let mut request: Value = body.parse()?;
    let end_user = call::end_user(&mut request)?;
    let (model, tool) = call::model_tool(&state, key, &request, client_ip, ("embeddings", AdapterSpec::is_embeddings))?;
    let idempotency_key = call::idempotency_key(headers, key)?;
    let surface: Arc<dyn Answer> = Arc::new(Embeddings { model });
    let paid = execution::prepare(&state, key, tool, request, (surface, idempotency_key, end_user), client_ip)?;
    call::run(state, paid, None).await
}

/// This surface's words for an embedding: the provider's answer under the caller's model name,
/// with the charge; refusals in OpenAI's error shape.
struct Embeddings {
    model: String,
}

impl Answer for Embeddings {
    fn route(&self) -> &'static str {
        "POST openai/embeddings"
    }

    fn success(
        &self,
        _: &Tool,
        execution: &ExecutionRecord,
        result: Value,
        charged: Micros,
        receipt: Option<Receipt>,
    ) -> Vec<u8> {
        super::completion_body(result, &self.model, execution, charged, receipt)
    }

    fn failure(&self, error: &ApiError) -> Value {
        super::error_body(error)
    }
}

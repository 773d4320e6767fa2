//! `GET /v1/openai/models` and `GET /v1/openai/models/{id}`: the chat tools (`openai_chat`,
//! `echo_chat`) and embeddings tools (`openai_embeddings`)
//! this key may use, in OpenAI's list shape, so `client.models.list()` shows what a key can
//! call. A tool the key may not use is not found, as on execute.

use super::OpenAiError;
use crate::auth::tool_key;
use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::state::SharedState;
use crate::tools::catalog::Tool;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use visa_core::ErrorCode;
use visa_store::AuthRecord;

fn model(tool: &Tool) -> Value {
    json!({ "id": tool.id, "object": "model", "created": 0, "owned_by": "visa-keys", "description": tool.description })
}

/// The chat and embeddings tools `key` may use.
fn usable<'a>(state: &'a SharedState, key: &AuthRecord) -> impl Iterator<Item = &'a std::sync::Arc<Tool>> {
    let gate = key.gate(state.now());
    let tools = state.catalog.tools().iter();
    tools.filter(move |t| (t.adapter.is_chat() || t.adapter.is_embeddings()) && gate.check_tool(&t.id).is_ok())
}

async fn key_of(
    state: &SharedState,
    headers: &HeaderMap,
    client_ip: Result<ClientIp, ApiError>,
) -> Result<std::sync::Arc<AuthRecord>, ApiError> {
    let ClientIp(ip) = client_ip?;
    tool_key::authenticate(state, headers, ip, tool_key::Audience::Api).await
}

pub async fn list(
    State(state): State<SharedState>,
    client_ip: Result<ClientIp, ApiError>,
    headers: HeaderMap,
) -> Response {
    match key_of(&state, &headers, client_ip).await {
        Ok(key) => {
            Json(json!({ "object": "list", "data": usable(&state, &key).map(|t| model(t)).collect::<Vec<_>>() }))
                .into_response()
        }
        Err(e) => OpenAiError(e).into_response(),
    }
}

pub async fn get(
    State(state): State<SharedState>,
    client_ip: Result<ClientIp, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let key = match key_of(&state, &headers, client_ip).await {
        Ok(key) => key,
        Err(e) => return OpenAiError(e).into_response(),
    };
    let canonical = state.catalog.resolve(&id).map(|t| t.id.clone());
    match usable(&state, &key).find(|t| Some(&t.id) == canonical.as_ref()) {
        Some(tool) => Json(model(tool)).into_response(),
        None => OpenAiError(ApiError::new(ErrorCode::ToolNotFound, "no such model for this key")).into_response(),
    }
}

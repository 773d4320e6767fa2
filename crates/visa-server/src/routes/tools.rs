//! The tool catalog: `GET /v1/api/tools` lists every tool with its price and whether it is
//! ready (its provider secret is set). The catalog holds no secrets, so it is public.

use crate::state::SharedState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ToolView {
    pub id: String,
    pub aliases: Vec<String>,
    pub description: String,
    /// `builtin`, `openai_chat`, `fal_queue`, ...
    pub adapter: String,
    /// Price of one call, in micros (decimal string).
    pub price_micros: String,
    /// Price of one call in cents, rounded up.
    pub price_cents: i64,
    /// The most one call can cost (the hold), in micros.
    pub max_price_micros: String,
    /// For token-metered tools: micros per million input and output tokens (then
    /// `price_micros` is the minimum charge).
    pub input_micros_per_mtok: Option<i64>,
    pub output_micros_per_mtok: Option<i64>,
    pub timeout_ms: u64,
    /// Whether a call answers here: false while the provider secret the adapter needs is not
    /// set on the server (a preview server answers every tool from its sandbox).
    pub ready: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ToolListResponse {
    pub success: bool,
    pub object: String,
    pub tools: Vec<ToolView>,
}

#[utoipa::path(get, path = "/v1/api/tools", tag = "tools", responses((status = 200, body = ToolListResponse)))]
pub async fn list(State(state): State<SharedState>) -> Json<ToolListResponse> {
    let tools = state
        .catalog
        .tools()
        .iter()
        .map(|t| ToolView {
            id: t.id.clone(),
            aliases: t.aliases.clone(),
            description: t.description.clone(),
            adapter: t.adapter.kind().to_owned(),
            price_micros: t.price.to_string(),
            price_cents: t.price.cents_ceil(),
            max_price_micros: t.max_price.to_string(),
            input_micros_per_mtok: t.tokens.map(|p| p.input_micros_per_mtok),
            output_micros_per_mtok: t.tokens.map(|p| p.output_micros_per_mtok),
            timeout_ms: t.timeout.as_millis() as u64,
            ready: t.answers(state.environment == visa_core::key::Environment::Preview),
        })
        .collect();
    Json(ToolListResponse { success: true, object: "list".into(), tools })
}

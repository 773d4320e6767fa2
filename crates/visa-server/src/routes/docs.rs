//! Documentation for agents and people, served by the binary itself: `GET /llms.txt`, a short
//! markdown index (what Visa Keys is, how to authenticate, the mandatory Idempotency-Key and how
//! to retry, the routes, links), and `GET /docs/{name}.md`, each document of the repository's
//! `docs/` as markdown (compiled in, so what a server serves matches its version).

use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;
use axum::extract::Path;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use visa_core::ErrorCode;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(llms_txt)).routes(routes!(document))
}

/// (name, title, text) of each served document.
const DOCS: [(&str, &str, &str); 16] = [
    ("openai", "OpenAI-compatible surface: SDKs, streaming, retries", include_str!("../../../../docs/openai.md")),
    ("mcp", "MCP server: paid tools for agents, charged once", include_str!("../../../../docs/mcp.md")),
    ("webhooks", "Signed webhooks: events, retries, verifying", include_str!("../../../../docs/webhooks.md")),
    ("end-users", "End users: attributing a call to one of your users", include_str!("../../../../docs/end-users.md")),
    ("money", "The money path: holds, captures, idempotency, retention", include_str!("../../../../docs/money.md")),
    ("errors", "Error envelope and every error code", include_str!("../../../../docs/errors.md")),
    ("tools", "Tool catalog, prices and adapters", include_str!("../../../../docs/tools.md")),
    ("key-format", "Key format and checksum", include_str!("../../../../docs/key-format.md")),
    ("roles", "Members, roles, audit log", include_str!("../../../../docs/roles.md")),
    ("security", "Credentials, leaks, HTTPS", include_str!("../../../../docs/security.md")),
    ("dashboard", "The web dashboard", include_str!("../../../../docs/dashboard.md")),
    ("operations", "Operating one server", include_str!("../../../../docs/operations.md")),
    ("deploy", "Many nodes on PostgreSQL", include_str!("../../../../docs/deploy.md")),
    ("postgres", "The PostgreSQL backend", include_str!("../../../../docs/postgres.md")),
    ("decisions", "Design decisions", include_str!("../../../../docs/decisions.md")),
    ("architecture", "How the code is laid out", include_str!("../../../../docs/architecture.md")),
];

const MARKDOWN: &str = "text/markdown; charset=utf-8";

#[utoipa::path(get, path = "/llms.txt", tag = "docs",
    responses((status = 200, content_type = "text/markdown", body = String, description = "A markdown index for AI agents")))]
pub async fn llms_txt() -> impl IntoResponse {
    let mut text = String::from(
        "# Visa Keys\n\n\
         > Scoped API keys that let backends, cron jobs and headless agents run paid tools (LLM calls, image \
         generation, priced HTTP APIs) from an account's prepaid balance, with per-key tool allowlists, source \
         networks, expiry, daily and total caps, a rate limit, and exactly-once charging.\n\n\
         ## Use a key\n\n\
         - Send the key as `X-Api-Key: VisaKey_live_...` (or `Authorization: Bearer ...`). `VisaKey_test_...` keys \
         work only on a preview server (sandboxed tools, nothing charged).\n\
         - Every paid call needs an `Idempotency-Key` header: a fresh UUID v4 per logical call, the same one on every \
         retry of it. A retry with the same key and body gets the stored answer (`Idempotent-Replayed: true`) and is \
         never charged twice; 409 `IDEMPOTENCY_IN_FLIGHT` means the first attempt is still running (retry after \
         `Retry-After`); 409 `IDEMPOTENT_REPLAY` means the key was used with another body.\n\
         - Retry when the error envelope says `\"retryable\": true`, after `retry_after` seconds (also the \
         `Retry-After` header), with the same Idempotency-Key. Do not retry `\"retryable\": false`.\n\
         - Errors are always `{\"success\": false, \"error\", \"error_code\", \"retryable\", \"retry_after\"?}` \
         (OpenAI's `{\"error\": {...}}` shape on `/v1/openai`). A 429 names the limit that refused (`limit`: \
         `key_daily_cap`, `key_total_cap`, `account_balance`, `key_rate`) and, where it resets, `resets_at`.\n\n\
         ## Routes\n\n\
         - `GET /v1/api/tools`: the catalog with prices.\n\
         - `POST /v1/api/tools/{tool}/execute` with body `{\"input\": {...}}`: run a paid tool; the answer has \
         `result`, `usage.charged_cents`, a `receipt` and `execution_id`. `X-Visa-End-User: <id>` names the end \
         user the call is made for (OpenAI's `user`, MCP's `_meta` `dev.visakeys/end_user`): kept on the execution \
         and its receipt, never sent to the provider.\n\
         - `GET /v1/api/key`: what this key may still spend now (`spendable_micros`) and which limit bounds it \
         (`limited_by`: `key_daily_cap`, `key_total_cap`, `account_balance`; `resets_at` for the daily cap).\n\
         - `GET /v1/api/balance`, `GET /v1/api/spend`, `GET /v1/api/executions[/{id}]`: what the key spent; \
         `GET /v1/api/spend/export.csv?from=&to=`: every execution of a time range as CSV.\n\
         - `POST /v1/openai/chat/completions`, `GET /v1/openai/models`: the OpenAI-compatible surface (set the SDK's \
         `base_url` to `<server>/v1/openai`; streaming supported).\n\
         - `<server>/v1/mcp`: an MCP server (Streamable HTTP) with the key as a bearer token: `tools/list` shows \
         what the key may run and its price, `tools/call` is a paid call charged once; a client without a key signs \
         in over OAuth (`/.well-known/oauth-protected-resource/v1/mcp`) and a member approves its caps.\n\
         - Control plane (keys, members, audit, admin keys): session tokens and admin keys; see the OpenAPI document.\n\n\
         ## Docs\n\n\
         - [OpenAPI document](/openapi.json): every route, field and status.\n",
    );
    for (name, title, _) in DOCS {
        text.push_str(&format!("- [{title}](/docs/{name}.md)\n"));
    }
    ([(header::CONTENT_TYPE, MARKDOWN)], text)
}

#[utoipa::path(get, path = "/docs/{file}", tag = "docs", params(("file" = String, Path, description = "e.g. openai.md (listed by /llms.txt)")),
    responses((status = 200, content_type = "text/markdown", body = String, description = "The document as markdown"),
              (status = 404, body = crate::wire::ErrorBody)))]
pub async fn document(Path(file): Path<String>) -> ApiResult<impl IntoResponse> {
    let name = file.strip_suffix(".md").unwrap_or(&file);
    let (_, _, text) = DOCS
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such document; /llms.txt lists them"))?;
    Ok(([(header::CONTENT_TYPE, MARKDOWN)], text))
}

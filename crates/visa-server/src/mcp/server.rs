//! The MCP server of one request (`rmcp::ServerHandler`): `tools/list` answers the tools the
//! calling key may run, with their price in `_meta`; `tools/call` is one paid call on the money
//! path (`app::paid_call`), worded by `answer::ToolResult`. The caller was authenticated before
//! the request reached rmcp (`super::authenticate`), and is read from the HTTP request's parts.

use super::answer::{self, ToolResult, meta_key};
use crate::app::paid_call::{self, Answer};
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;
use crate::tools::catalog::Tool;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::Arc;
use visa_core::policy::EndUser;
use visa_store::AuthRecord;

/// Who is calling: the tool key `super::authenticate` accepted, and from where.
#[derive(Clone)]
pub struct Caller {
    pub key: Arc<AuthRecord>,
    pub ip: IpAddr,
}

/// One MCP server over the shared state (rmcp makes one per session, or per request).
#[derive(Clone)]
pub struct Server {
    pub state: SharedState,
}

fn caller(context: &RequestContext<RoleServer>) -> Result<Caller, McpError> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>())
        .cloned()
        .ok_or_else(|| McpError::internal_error("the caller was not authenticated", None))
}

/// The tool as MCP lists it: its id, what it does, its input's JSON Schema, and its price.
fn listed(tool: &Tool) -> rmcp::model::Tool {
    let schema = match tool.adapter.input_schema() {
        Value::Object(schema) => schema,
        _ => serde_json::Map::new(),
    };
    let mut price = json!({ "max_micros": tool.max_price.to_string() });
    if tool.tokens.is_none() {
        price["per_call_micros"] = json!(tool.price.to_string());
    }
    let mut listed = rmcp::model::Tool::new(tool.id.clone(), tool.description.clone(), Arc::new(schema));
    listed.meta = Some(rmcp::model::MetaObject(serde_json::Map::from_iter([(meta_key("price"), price)])));
    listed
}

/// The call's Idempotency-Key, 16 bytes: the client's (`_meta` `dev.visakeys/idempotency_key`,
/// else the HTTP `Idempotency-Key` header), else one derived from the MCP session and the
/// JSON-RPC request id, so that a request delivered twice in a session is answered from its
/// record; with neither (a stateless request), the call is its own.
/// A member of the request's `_meta` (rmcp hands it to the context, and may leave a copy in the
/// params).
fn meta<'a>(
    request: &'a CallToolRequestParams,
    context: &'a RequestContext<RoleServer>,
    name: &str,
) -> Option<&'a Value> {
    [Some(&context.meta), request.meta.as_ref()].into_iter().flatten().find_map(|meta| meta.0.0.get(&meta_key(name)))
}

/// The end user the call is made for: `_meta` `dev.visakeys/end_user`, if sent.
fn end_user(request: &CallToolRequestParams, context: &RequestContext<RoleServer>) -> ApiResult<Option<EndUser>> {
    match meta(request, context, "end_user") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(user)) => Ok(Some(EndUser::parse(user)?)),
        Some(_) => Err(ApiError::invalid(format!("_meta {} must be a string", meta_key("end_user")))),
    }
}

fn idempotency_key(request: &CallToolRequestParams, context: &RequestContext<RoleServer>) -> [u8; 16] {
    let parts = context.extensions.get::<axum::http::request::Parts>();
    let header = |name: &str| parts.and_then(|p| p.headers.get(name)).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let given = meta(request, context, "idempotency_key")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| header("idempotency-key"));
    let source = match (given, header("mcp-session-id")) {
        (Some(given), _) => format!("key\0{given}"),
        (None, Some(session)) => format!("session\0{session}\0{}", context.id),
        (None, None) => return *uuid::Uuid::new_v4().as_bytes(),
    };
    paid_call::derived_idempotency_key(b"visa-mcp-idempotency\0", &source)
}

/// An answer as the tool result it is, or an internal error if it is not one.
fn result_of(answer: Result<CallToolResult, serde_json::Error>) -> Result<CallToolResult, McpError> {
    answer.map_err(|e| McpError::internal_error(format!("an answer is not a tool result: {e}"), None))
}

/// How often a long call tells a client that asked (a `progressToken`) that it is still running.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Awaits `running`; if the client sent a `progressToken`, a progress notification every
/// second meanwhile (the seconds it has run, and what runs), so that a client waiting on a
/// long call (a fal queue) knows it is alive. A notification the client cannot receive (it
/// went away) changes nothing: the call runs to its end.
async fn with_progress<T>(running: impl Future<Output = T>, tool: &str, context: &RequestContext<RoleServer>) -> T {
    let Some(token) = context.meta.get_progress_token() else { return running.await };
    let mut running = std::pin::pin!(running);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let mut seconds = 0u32;
    loop {
        tokio::select! {
            done = &mut running => return done,
            _ = ticks.tick() => {
                seconds += 1;
                let note = ProgressNotificationParam::new(token.clone(), f64::from(seconds))
                    .with_message(format!("{tool}: running for {seconds} s"));
                let _ = context.peer.notify_progress(note).await;
            }
        }
    }
}

impl Server {
    async fn call(
        &self,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let Caller { key, ip } = caller(context)?;
        let answer = async {
            let state = self.state.clone();
            let tool = paid_call::authorize(&state, &key, &request.name, ip)?.clone();
            let input = Value::Object(request.arguments.clone().unwrap_or_default());
            let surface: Arc<dyn Answer> = Arc::new(ToolResult);
            let request_of = (surface, idempotency_key(&request, context), end_user(&request, context)?);
            let call = paid_call::prepare(&state, &key, tool, input, request_of, ip)?;
            // Detached: once the hold may be placed, the outcome is recorded whatever the client
            // does (hangs up, or cancels: rmcp drops this future, the call runs on and settles).
            let running = crate::detached::detached(async move { paid_call::execute(&state, call).await });
            with_progress(running, &request.name, context).await
        };
        let answer = answer.await;
        paid_call::record_answer(&self.state, &key, &answer);
        match answer {
            Ok(response) => {
                let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .map_err(|e| McpError::internal_error(format!("an answer could not be read: {e}"), None))?;
                result_of(answer::from_bytes(&body))
            }
            Err(error) => result_of(answer::refused(&error)),
        }
    }
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("visa-keys", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "Paid tools, charged to this key's account: each call holds at most the tool's max price, \
             captures what it cost, and is charged once per Idempotency-Key."
                .into(),
        );
        info
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        // (The key's identity — revoked, expired, source address — was checked as it came in.)
        let Caller { key, .. } = caller(&context)?;
        let gate = key.gate(self.state.now());
        let tools = self
            .state
            .catalog
            .tools()
            .iter()
            .filter(|tool| gate.check_tool(&tool.id).is_ok())
            .map(|tool| listed(tool))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.call(request, &context).await.map(CallToolResponse::from)
    }
}

//! The references of the chat benchmark: what the server's HTTP stack costs, alone and with
//! the least durable work a paid call could do. It takes the same paid-execution request as
//! `visa-cli serve` (`{"input": <chat request>}`), forwards the input to the mock provider
//! with the server's own provider client (`visa_server::tools::upstream`) and wraps the
//! answer — with no authentication, no caps, no idempotency, no ledger. The `echo` tool
//! answers its input without a provider call, as the server's builtin does (`bench/soak.sh`).
//!
//! With a third argument (a database path) it also does the floor of any money path: two
//! durable steps per call in SQLite through one group-committing writer — a guarded balance
//! hold (with the call's Idempotency-Key) committed before the provider call, a capture with
//! the stored answer committed and fsynced before the reply (`durable_floor`). `bench/chat.sh` measures both in the same run
//! as Visa Keys, so the gaps show what the hops, the durable steps and the rest of our money
//! path each cost.

mod durable_floor;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::post;
use durable_floor::{Ledger, Step};
use serde_json::{Value, json};
use std::sync::Arc;
use visa_server::tools::upstream::Upstream;

struct Provider {
    upstream: Upstream,
    endpoint: Uri,
    headers: [(HeaderName, HeaderValue); 1],
    ledger: Option<Ledger>,
}

impl Provider {
    async fn step(&self, step: Step) -> Result<(), StatusCode> {
        match &self.ledger {
            Some(ledger) => ledger.run(step).await.map_err(|_| StatusCode::SERVICE_UNAVAILABLE),
            None => Ok(()),
        }
    }
}

/// Answers with the reply's bytes, encoded once: the floor stores the same bytes it sends,
/// as `visa-cli serve` does for replays.
async fn execute(
    State(provider): State<Arc<Provider>>,
    Path(tool): Path<String>,
    headers: HeaderMap,
    Json(mut body): Json<Value>,
) -> Result<impl IntoResponse, StatusCode> {
    let idempotency_key = headers.get("idempotency-key").ok_or(StatusCode::BAD_REQUEST)?.as_bytes().to_vec();
    let mut input = body["input"].take();
    provider.step(Step::Hold(idempotency_key)).await?;
    let result = if tool == "echo" {
        input
    } else {
        input["model"] = json!("bench-model");
        input["stream"] = json!(false);
        let answer = provider.upstream.send(Method::POST, &provider.endpoint, &provider.headers, Some(&input)).await;
        let answer = answer.ok().filter(|a| a.status == 200).ok_or(StatusCode::BAD_GATEWAY)?;
        serde_json::from_slice(&answer.body).map_err(|_| StatusCode::BAD_GATEWAY)?
    };
    let reply = json!({ "success": true, "object": "tool_execution", "tool": tool, "result": result });
    let bytes = serde_json::to_vec(&reply).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    // Copied only when the floor stores it, so the plain reference does no extra work.
    if provider.ledger.is_some() {
        provider.step(Step::Capture(bytes.clone())).await?;
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18094".into());
    let base = args.next().unwrap_or_else(|| "http://127.0.0.1:18092/v1".into());
    let provider = Provider {
        upstream: Upstream::new().expect("HTTP client"),
        endpoint: format!("{base}/chat/completions").parse().expect("provider URL"),
        headers: [(header::AUTHORIZATION, HeaderValue::from_static("Bearer bench-provider-key"))],
        ledger: args.next().map(|path| Ledger::open(path.as_ref()).expect("open the floor's SQLite database")),
    };
    let app = axum::Router::new().route("/v1/api/tools/{tool}/execute", post(execute)).with_state(Arc::new(provider));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("reference proxy listening on {addr}");
    axum::serve(listener, app).await.expect("serve");
}

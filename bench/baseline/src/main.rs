//! The benchmark baseline: the same HTTP stack as Visa Keys (axum on tokio) answering a JSON
//! echo with no authentication, no database and no ledger. `bench/run.sh` measures it next to
//! `visa-cli serve` in the same run, so the targets are ratios on the same machine.

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

async fn echo(Json(body): Json<Value>) -> Json<Value> {
    Json(json!({ "success": true, "object": "tool_execution", "tool": "echo", "result": body["input"].clone() }))
}

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18090".into());
    let app = axum::Router::new().route("/v1/api/tools/{tool}/execute", post(echo));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("baseline listening on {addr}");
    axum::serve(listener, app).await.expect("serve");
}

//! The provider side of the `openai_chat` benchmark: answers `POST /v1/chat/completions` at once
//! with a fixed completion and a `usage` block, so the benchmark measures Visa Keys' own cost
//! (authentication, hold, the upstream hop, capture) next to this server called directly.

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

async fn chat(Json(body): Json<Value>) -> Json<Value> {
    Json(json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "model": body["model"],
        "choices": [{ "index": 0, "finish_reason": "stop", "message": { "role": "assistant", "content": "Hello!" } }],
        "usage": { "prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15 }
    }))
}

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18092".into());
    let app = axum::Router::new().route("/v1/chat/completions", post(chat));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("mock provider listening on {addr}");
    axum::serve(listener, app).await.expect("serve");
}

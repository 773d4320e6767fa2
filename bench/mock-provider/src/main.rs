//! The provider side of the `openai_chat` benchmark: answers `POST /v1/chat/completions` at once
//! with a fixed completion and a `usage` block (or, with `stream: true`, the same completion as
//! server-sent events ending with the usage chunk), so the benchmark measures Visa Keys' own
//! cost (authentication, hold, the upstream hop, capture) next to this server called directly.

use axum::Json;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

async fn chat(Json(body): Json<Value>) -> Response {
    let usage = json!({ "prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15 });
    if body["stream"] != json!(true) {
        return Json(json!({
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{ "index": 0, "finish_reason": "stop", "message": { "role": "assistant", "content": "Hello!" } }],
            "usage": usage
        }))
        .into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        json!({ "id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": body["model"],
                "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
    };
    let mut events = vec![
        chunk(json!({ "role": "assistant", "content": "Hello" }), Value::Null),
        chunk(json!({ "content": "!" }), json!("stop")),
    ];
    if body["stream_options"]["include_usage"] == json!(true) {
        events.push(json!({ "id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": body["model"], "choices": [], "usage": usage }));
    }
    let mut text: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    text.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], text).into_response()
}

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18092".into());
    let app = axum::Router::new().route("/v1/chat/completions", post(chat));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("mock provider listening on {addr}");
    axum::serve(listener, app).await.expect("serve");
}

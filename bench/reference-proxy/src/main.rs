//! The reference of the chat benchmark: what the server's HTTP stack alone costs. It takes the
//! same paid-execution request as `visa-cli serve` (`{"input": <chat request>}`), forwards the
//! input to the mock provider with the same client (reqwest, pooled, no redirects) and
//! wraps the answer — with no authentication, no hold, no ledger, no database.
//! `bench/chat.sh` measures it in the same run, so the gap between it and Visa Keys is the
//! price of the money path, and the gap between it and the mock is the price of the two hops.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    endpoint: reqwest::Url,
}

async fn execute(State(up): State<Upstream>, Json(mut body): Json<Value>) -> Result<Json<Value>, StatusCode> {
    let mut input = body["input"].take();
    input["model"] = json!("bench-model");
    input["stream"] = json!(false);
    let request = up.client.post(up.endpoint.clone()).bearer_auth("bench-provider-key").json(&input);
    let response = request.send().await.map_err(|_| StatusCode::BAD_GATEWAY)?;
    let result: Value = response.json().await.map_err(|_| StatusCode::BAD_GATEWAY)?;
    Ok(Json(json!({ "success": true, "object": "tool_execution", "tool": "bench-chat", "result": result })))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18094".into());
    let provider = args.next().unwrap_or_else(|| "http://127.0.0.1:18092/v1".into());
    let upstream = Upstream {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client"),
        endpoint: format!("{provider}/chat/completions").parse().expect("provider URL"),
    };
    let app = axum::Router::new().route("/v1/api/tools/{tool}/execute", post(execute)).with_state(upstream);
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("reference proxy listening on {addr}");
    axum::serve(listener, app).await.expect("serve");
}

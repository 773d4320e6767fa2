//! The MCP surface with the official `mcp` Python SDK as the client (`tests/python/mcp_client.py`,
//! pinned in `tests/python/requirements.txt`), against the real server: `tools/list` filtered by
//! the key, `tools/call` charged once to the micro, the same request delivered twice charged once,
//! a forbidden tool and a cap reached refused as tool errors; and the credentials MCP refuses,
//! over plain HTTP.

use serde_json::{Value, json};
use visa_e2e::TestApp;
use visa_e2e::catalog::{TestTool, catalog};

/// A cent a call.
const CALL_MICROS: i64 = 10_000;

async fn app() -> TestApp {
    let tools = [TestTool::builtin("echo", "echo"), TestTool::builtin("slow", "sleep")];
    let catalog = catalog(&tools, "", None);
    TestApp::spawn_with(|c| c.catalog = catalog).await
}

/// Runs `tests/python/<script>` with `args` and returns the JSON it printed.
async fn python(script: &str, args: &[&str]) -> Value {
    let python = visa_e2e::python_venv().join("bin/python");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join(script);
    let out =
        tokio::process::Command::new(python).arg(&script).args(args).output().await.expect("the venv's python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}: {}\n{stdout}", script.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{} printed {stdout}", script.display()))
}

/// Runs the SDK script in `mode` and returns what it printed.
async fn sdk(app: &TestApp, key: &str, mode: &str) -> Value {
    python("mcp_client.py", &[&app.url("/v1/mcp"), key, mode, "slow"]).await
}

fn charge(result: &Value) -> (&str, &str) {
    let meta = &result["meta"];
    (
        meta["dev.visakeys/execution_id"].as_str().unwrap_or_default(),
        meta["dev.visakeys/charged_micros"].as_str().unwrap_or_default(),
    )
}

async fn calls_are_charged_once(mode: &str) {
    let app = app().await;
    let session = app.account("octocat", true, 1_000).await;
    // A 4-cent daily cap: the first, the other and two more calls, then a refusal.
    let (id, key) =
        app.key(&session, json!({ "label": "agent", "allowed_tools": ["echo"], "daily_cap_cents": 4 })).await;
    let before = app.balance_micros(&session).await;
    let out = sdk(&app, &key, mode).await;

    let tools = out["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1, "only the tools the key may run: {tools:?}");
    assert_eq!(tools[0]["name"], "echo");
    assert_eq!(tools[0]["input_schema"]["type"], "object");
    assert_eq!(tools[0]["meta"]["dev.visakeys/price"], json!({ "max_micros": "10000", "per_call_micros": "10000" }));

    let (first, again, other) = (&out["first"], &out["again"], &out["other"]);
    assert_eq!(first["is_error"], false, "{first}");
    assert_eq!(first["structured"], json!({ "n": 1 }), "the tool's output");
    assert_eq!(charge(first).1, CALL_MICROS.to_string());
    assert!(!charge(first).0.is_empty(), "{first}");
    assert_eq!(first["meta"]["dev.visakeys/receipt"]["execution_id"], charge(first).0);
    assert_eq!(charge(again), charge(first), "delivered twice: answered from its record");
    assert_eq!(other["structured"], json!({ "n": 2 }));
    assert_ne!(charge(other).0, charge(first).0);

    let forbidden = &out["forbidden"];
    assert_eq!(forbidden["is_error"], true, "{forbidden}");
    assert_eq!(forbidden["structured"]["error_code"], "TOOL_NOT_PERMITTED");
    assert_eq!(forbidden["structured"]["retryable"], false);

    let capped = &out["capped"];
    assert_eq!(capped["is_error"], true, "{capped}");
    assert_eq!(capped["structured"]["error_code"], "RATE_LIMITED");
    assert_eq!(capped["structured"]["limit"], "key_daily_cap", "{capped}");
    assert!(capped["structured"]["resets_at"].as_str().is_some_and(|at| at.ends_with("T00:00:00Z")), "{capped}");
    assert!(capped["text"][0].as_str().unwrap().contains("daily cap"), "{capped}");
    assert!(capped["structured"]["retry_after"].as_u64().is_some_and(|s| s > 0), "until midnight: {capped}");

    assert_eq!(app.balance_micros(&session).await, before - 4 * CALL_MICROS, "four calls charged, once each");
    let executions = app.get("/v1/api/executions", &session).await.assert_ok(200)["executions"].clone();
    assert_eq!(executions.as_array().unwrap().len(), 4);
    // Every call is in the key's usage, refusals by their code, as on execute.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await; // the per-second usage flush
    let usage =
        app.get(&format!("/v1/api/keys/{id}/usage"), &session).await.assert_ok(200)["secrets"][0]["totals"].clone();
    assert_eq!(usage["requests"], 7, "{usage}");
    assert_eq!(usage["errors"], json!({ "TOOL_NOT_PERMITTED": 1, "RATE_LIMITED": 1 }), "{usage}");
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sdk_session_lists_the_keys_tools_and_is_charged_once_per_call() {
    calls_are_charged_once("legacy").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_newest_revision_without_sessions_is_charged_once_per_call() {
    calls_are_charged_once("auto").await;
}

/// Before rmcp sees a request: no key is 401 with `WWW-Authenticate`; a session or an admin key
/// is 403 naming why; a revoked key is 401.
#[tokio::test]
async fn mcp_takes_a_live_tool_key_and_nothing_else() {
    let app = app().await;
    let (session, id, key) = app.funded_key("octocat").await;
    let initialize = visa_e2e::mcp_initialize("test");
    let client = reqwest::Client::new();
    let post = |credential: Option<String>| {
        let mut request =
            client.post(app.url("/v1/mcp")).header("accept", "application/json, text/event-stream").json(&initialize);
        if let Some(credential) = credential {
            request = request.bearer_auth(credential);
        }
        request.send()
    };
    let none = post(None).await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(post(Some(session.clone())).await.unwrap().status(), 403, "a session is not a tool key");
    let admin = app.post("/v1/api/admin-keys", &session, json!({ "label": "ci" })).await.assert_ok(201)["key"].clone();
    assert_eq!(post(Some(admin.as_str().unwrap().to_owned())).await.unwrap().status(), 403, "nor is an admin key");
    assert_eq!(post(Some(key.clone())).await.unwrap().status(), 200);
    app.delete(&format!("/v1/api/keys/{id}"), &session).await.assert_ok(200);
    assert_eq!(post(Some(key)).await.unwrap().status(), 401, "a revoked key");
}

/// The body of an MCP answer: JSON, or the last `data:` of its server-sent events (the first
/// may be an empty priming event).
fn rpc_body(text: &str) -> Value {
    let mut data = text.lines().filter_map(|line| line.strip_prefix("data:")).map(str::trim).filter(|d| !d.is_empty());
    let json = data.next_back().unwrap_or(text).trim();
    serde_json::from_str(json).unwrap_or_else(|_| panic!("not a JSON-RPC answer: {text}"))
}

/// A raw JSON-RPC message to `/v1/mcp` with `key`, in `session` if given.
async fn mcp_post(app: &TestApp, key: &str, session: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(app.url("/v1/mcp"))
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body);
    if let Some(id) = session {
        request = request.header("mcp-session-id", id);
    }
    request.send().await.unwrap()
}

/// A session opened with `key` (initialize, then initialized): its id.
async fn mcp_session(app: &TestApp, key: &str) -> String {
    let answer = mcp_post(app, key, None, visa_e2e::mcp_initialize("raw")).await;
    assert_eq!(answer.status(), 200);
    let id = answer.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    assert!(mcp_post(app, key, Some(&id), initialized).await.status().is_success());
    id
}

/// A `tools/call` in `session`, its JSON-RPC answer.
async fn mcp_call(app: &TestApp, key: &str, session: &str, call: &Value) -> Value {
    rpc_body(&mcp_post(app, key, Some(session), call.clone()).await.text().await.unwrap())
}

/// A `tools/call` delivered twice in one session (the same JSON-RPC id, no Idempotency-Key) is
/// answered from its record: one execution, one charge. The same id in another session is
/// another call.
#[tokio::test]
async fn a_request_delivered_twice_in_a_session_is_charged_once() {
    let app = app().await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let call = json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": "echo", "arguments": { "n": 7 } } });
    let execution = |answer: Value| answer["result"]["_meta"]["dev.visakeys/execution_id"].as_str().unwrap().to_owned();
    let first_session = mcp_session(&app, &key).await;
    let first = mcp_call(&app, &key, &first_session, &call).await;
    let again = mcp_call(&app, &key, &first_session, &call).await;
    assert_eq!(first["result"]["structuredContent"], json!({ "n": 7 }), "{first}");
    assert_eq!(execution(again), execution(first.clone()), "redelivered: answered from its record");
    let other = mcp_call(&app, &key, &mcp_session(&app, &key).await, &call).await;
    assert_ne!(execution(other), execution(first), "the same id in another session is another call");
    assert_eq!(app.balance_micros(&session).await, before - 2 * CALL_MICROS);
}

/// A call names its end user in `_meta` (`dev.visakeys/end_user`): kept on the execution and in
/// the receipt; one of 129 characters is refused as a tool error, nothing charged; the key's
/// caps on each end user apply as on execute.
#[tokio::test]
async fn a_call_names_its_end_user_in_meta() {
    let app = app().await;
    let (session, _, key) = app.funded_key("octocat").await;
    let mcp = mcp_session(&app, &key).await;
    let call = |id: i64, user: Value| {
        json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": { "name": "echo", "arguments": {}, "_meta": { "dev.visakeys/end_user": user } } })
    };
    let done = mcp_call(&app, &key, &mcp, &call(1, json!("agent-user-9"))).await;
    let meta = &done["result"]["_meta"];
    assert_eq!(meta["dev.visakeys/receipt"]["end_user"], "agent-user-9", "{done}");
    let id = meta["dev.visakeys/execution_id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/v1/api/executions/{id}"), &session).await.assert_ok(200)["end_user"], "agent-user-9");
    let before = app.balance_micros(&session).await;
    let refused = mcp_call(&app, &key, &mcp, &call(2, json!("x".repeat(129)))).await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert_eq!(refused["result"]["structuredContent"]["error_code"], "INVALID_REQUEST");
    assert_eq!(app.balance_micros(&session).await, before);

    // A key's cap on each end user holds over MCP too: the tool error names the limit.
    let (_, capped) = app.key(&session, json!({ "label": "per-user", "end_user_daily_cap_cents": 1 })).await;
    let mcp = mcp_session(&app, &capped).await;
    let first = mcp_call(&app, &capped, &mcp, &call(3, json!("agent-user-9"))).await;
    assert!(first["result"]["isError"] != json!(true), "{first}");
    let over = mcp_call(&app, &capped, &mcp, &call(4, json!("agent-user-9"))).await;
    let body = &over["result"]["structuredContent"];
    assert_eq!(
        (&over["result"]["isError"], &body["error_code"], &body["limit"]),
        (&json!(true), &json!("RATE_LIMITED"), &json!("end_user_daily_cap")),
        "{over}"
    );
    let other = mcp_call(&app, &capped, &mcp, &call(5, json!("agent-user-10"))).await;
    assert!(other["result"]["isError"] != json!(true), "another end user still spends: {other}");
}

/// A long call with the SDK: progress notifications while it runs (the client asked for them);
/// a call the client abandons runs to its end and is charged once, and its retry with the same
/// Idempotency-Key is answered from its record — in a session and without one.
async fn a_long_call_reports_progress_and_an_abandoned_one_is_charged_once(mode: &str) {
    let app = app().await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let out = python("mcp_progress.py", &[&app.url("/v1/mcp"), &key, mode]).await;
    let progress = out["progress"].as_array().unwrap();
    assert!(progress.len() >= 2, "a notification a second for 2.5 s: {out}");
    assert_eq!(progress[0]["progress"], 1.0);
    assert!(progress[0]["message"].as_str().unwrap().starts_with("slow: running"), "{out}");
    assert_eq!(out["long"]["is_error"], false, "{out}");
    assert_eq!(out["abandoned"], true, "the client gave up on the call: {out}");
    assert_eq!(out["again"]["is_error"], false, "{out}");
    // The abandoned call ran on and settled; its retry did not run again.
    let executions = app.get("/v1/api/executions", &session).await.assert_ok(200)["executions"].clone();
    let executions = executions.as_array().unwrap();
    assert_eq!(executions.len(), 2, "the long call and the abandoned one: {executions:?}");
    assert!(executions.iter().all(|e| e["state"] == "succeeded"), "{executions:?}");
    assert_eq!(charge(&out["again"]).0, executions[0]["id"].as_str().unwrap(), "the retry is the abandoned call");
    assert_eq!(app.balance_micros(&session).await, before - 2 * CALL_MICROS);
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_call_in_a_session_reports_progress_and_an_abandoned_one_is_charged_once() {
    a_long_call_reports_progress_and_an_abandoned_one_is_charged_once("legacy").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_call_without_a_session_reports_progress_and_an_abandoned_one_is_charged_once() {
    a_long_call_reports_progress_and_an_abandoned_one_is_charged_once("auto").await;
}

/// Through the SDK: a preview key on a preview server runs the sandbox, free; a revoked key
/// cannot connect.
#[tokio::test]
async fn the_sdk_runs_a_preview_key_free_and_cannot_use_a_revoked_one() {
    let app = TestApp::spawn_preview().await;
    let (session, id, key) = app.funded_key("octocat").await;
    assert!(key.starts_with("VisaKey_test_"), "a preview key");
    let before = app.balance_micros(&session).await;
    let out = python("mcp_once.py", &[&app.url("/v1/mcp"), &key]).await;
    assert!(out["tools"].as_array().unwrap().iter().any(|t| t == "echo"), "{out}");
    assert_eq!(out["result"]["is_error"], false, "{out}");
    assert_eq!(charge(&out["result"]).1, "0", "the sandbox is free: {out}");
    assert_eq!(app.balance_micros(&session).await, before);

    app.delete(&format!("/v1/api/keys/{id}"), &session).await.assert_ok(200);
    let out = python("mcp_once.py", &[&app.url("/v1/mcp"), &key]).await;
    assert!(out["error"].is_string(), "the SDK cannot connect: {out}");
    let statuses = out["statuses"].as_array().unwrap();
    assert!(!statuses.is_empty() && statuses.iter().all(|s| s == 401), "every request refused: {out}");
}

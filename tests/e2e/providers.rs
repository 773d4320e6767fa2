//! The provider adapters against local mock providers: metered charges to the micro, holds
//! refused before anything is sent, failures and timeouts voided, preview never calling out.

use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use visa_e2e::TestApp;
use visa_e2e::catalog::TestTool;
use visa_e2e::mock_provider::MockProvider;
use visa_server::tools::catalog::Catalog;

/// A catalog with a metered chat tool and a flat http tool pointing at `mock`, their provider
/// key named `key_var` and given as `secret` (none: the tools are not configured).
fn catalog(mock: &MockProvider, key_var: &str, secret: Option<&str>, timeout_ms: u64) -> Catalog {
    let tools = [
        TestTool::chat("chat", mock, key_var)
            .set("max_output_tokens", 32768)
            .set("timeout_ms", timeout_ms)
            .set("sandbox", r#"{ choices = [{ message = { content = "sandboxed" } }] }"#),
        TestTool::http("priced-http", mock, key_var).set("timeout_ms", timeout_ms),
    ];
    visa_e2e::catalog::catalog(&tools, key_var, secret)
}

async fn app_with(mock: &MockProvider, key_var: &str, secret: Option<&str>, timeout_ms: u64, preview: bool) -> TestApp {
    let catalog = catalog(mock, key_var, secret, timeout_ms);
    TestApp::spawn_with(|c| {
        c.catalog = catalog;
        if preview {
            c.environment = visa_core::key::Environment::Preview;
        }
    })
    .await
}

/// A mock provider, an app whose `chat` and `priced-http` tools call it with `secret` (in the
/// test's own variable `var`), a funded account's session and key, and its balance before.
struct Funded {
    mock: MockProvider,
    app: TestApp,
    session: String,
    key_id: i64,
    key: String,
    before: i64,
}

async fn funded(var: &str, secret: &str, timeout_ms: u64) -> Funded {
    let mock = MockProvider::start().await;
    let app = app_with(&mock, var, Some(secret), timeout_ms, false).await;
    let (session, key_id, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    Funded { mock, app, session, key_id, key, before }
}

fn chat_input(max_tokens: Option<u64>) -> Value {
    let mut input =
        json!({ "messages": [{ "role": "user", "content": "Say hello." }], "model": "caller-model", "stream": true });
    if let Some(n) = max_tokens {
        input["max_tokens"] = json!(n);
    }
    input
}

#[tokio::test]
async fn chat_is_metered_by_reported_usage_to_the_micro() {
    let Funded { mock, app, session, key_id: id, key, before } =
        funded("VISA_TEST_KEY_METERED", "sk-test-metered-0123456789", 5000).await;

    let reply = app.execute(&key, "chat", chat_input(Some(800))).await;
    let body = reply.assert_ok(200);
    // 1000 input tokens at $0.15/M + 500 output tokens at $0.60/M = 150 + 300 micros.
    assert_eq!(body["usage"], json!({ "charged_cents": 1, "charged_micros": "450" }));
    assert_eq!(body["result"]["choices"][0]["message"]["content"], "hi from the mock");
    assert_eq!(app.balance_micros(&session).await, before - 450);
    let sent = mock.behaviour.last_body.lock().unwrap().clone();
    assert_eq!(sent["model"], "mock-model", "the catalog sets the model");
    assert_eq!(sent["stream"], false, "never streamed");
    assert_eq!(mock.behaviour.last_authorization.lock().unwrap().as_deref(), Some("Bearer sk-test-metered-0123456789"));

    // Tiny usage still pays the minimum.
    mock.behaviour.prompt_tokens.store(1, Ordering::SeqCst);
    mock.behaviour.completion_tokens.store(1, Ordering::SeqCst);
    let reply = app.execute(&key, "chat", chat_input(Some(10))).await;
    assert_eq!(reply.assert_ok(200)["usage"]["charged_micros"], "100");
    let key_view = app.get(&format!("/v1/api/keys/{id}"), &session).await;
    assert_eq!(key_view.body["spent_total_cents"], 1, "550 micros round up to 1 cent");
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn a_call_that_could_pass_the_cap_is_refused_before_it_is_sent() {
    let mock = MockProvider::start().await;
    let app = app_with(&mock, "VISA_TEST_KEY_HOLD", Some("sk-test-hold-0123456789"), 5000, false).await;
    let session = app.account("octocat", true, 10_000).await;
    let (_, key) = app.key(&session, json!({ "label": "small", "daily_cap_cents": 1 })).await;
    // 100000 output tokens could cost $0.06: more than the 1-cent cap.
    let reply = app.execute(&key, "chat", chat_input(Some(100_000))).await;
    reply.assert_error(429, "RATE_LIMITED");
    // Without max_tokens the hold pays for the tool's output limit (32768 tokens, ~2 cents),
    // which the server sends as max_tokens: refused too.
    app.execute(&key, "chat", chat_input(None)).await.assert_error(429, "RATE_LIMITED");
    assert_eq!(mock.calls(), 0, "nothing was sent to the provider");
    // A small max_tokens fits and is sent.
    app.execute(&key, "chat", chat_input(Some(100))).await.assert_ok(200);
    assert_eq!(mock.calls(), 1);
    assert_eq!(mock.behaviour.last_body.lock().unwrap()["max_tokens"], 100);
}

#[tokio::test]
async fn provider_failures_are_mapped_and_charge_nothing() {
    let secret = "sk-test-failures-0123456789";
    let Funded { mock, app, session, key, before, .. } = funded("VISA_TEST_KEY_FAIL", secret, 5000).await;

    mock.behaviour.status.store(503, Ordering::SeqCst);
    let reply = app.execute(&key, "chat", chat_input(Some(10))).await;
    let body = reply.assert_error(502, "UPSTREAM_ERROR");
    assert_eq!(body["retryable"], true);
    assert_eq!(body["retry_after"], 7, "the provider's Retry-After is passed on");
    assert_eq!(reply.headers["retry-after"], "7");

    mock.behaviour.status.store(400, Ordering::SeqCst);
    let reply = app.execute(&key, "chat", chat_input(Some(10))).await;
    let body = reply.assert_error(400, "INVALID_REQUEST");
    assert_eq!(body["retryable"], false);
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("mock failure"), "{message}");
    assert!(!message.contains(&secret[..8]), "no fragment of the key: {message}");
    assert!(!message.contains(secret) && message.contains("[redacted]"), "the provider key is scrubbed: {message}");

    // A redirect is not followed: the provider key goes to the catalog's URL only.
    mock.behaviour.status.store(307, Ordering::SeqCst);
    let calls = mock.calls();
    let reply = app.execute(&key, "chat", chat_input(Some(10))).await;
    let body = reply.assert_error(503, "TOOL_UNAVAILABLE");
    assert_eq!(body["retryable"], false);
    assert_eq!(mock.calls(), calls + 1, "the redirect target was not called");

    assert_eq!(app.balance_micros(&session).await, before);
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn an_answer_too_large_to_read_is_a_failure_that_charges_nothing() {
    let Funded { mock, app, session, key, before, .. } =
        funded("VISA_TEST_KEY_LARGE", "sk-test-large-0123456789", 10_000).await;
    mock.behaviour.pad_bytes.store(visa_server::tools::upstream::MAX_ANSWER_BYTES, Ordering::SeqCst);
    let reply = app.execute(&key, "chat", chat_input(Some(10))).await;
    let body = reply.assert_error(502, "UPSTREAM_ERROR");
    assert_eq!(body["retryable"], false, "the same provider would answer the same way");
    assert_eq!(app.balance_micros(&session).await, before);
    // Just under the bound is read and charged as usual.
    mock.behaviour.pad_bytes.store(1024 * 1024, Ordering::SeqCst);
    app.execute(&key, "chat", chat_input(Some(10))).await.assert_ok(200);
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn a_provider_timeout_voids_the_hold() {
    let Funded { mock, app, session, key, before, .. } =
        funded("VISA_TEST_KEY_TIMEOUT", "sk-test-timeout-0123456789", 200).await;
    mock.behaviour.delay_ms.store(1000, Ordering::SeqCst);
    let reply = app.execute(&key, "chat", chat_input(Some(10))).await;
    assert_eq!(reply.assert_error(502, "UPSTREAM_ERROR")["retryable"], true);
    assert_eq!(app.balance_micros(&session).await, before);
    assert_eq!(app.get("/v1/api/balance", &session).await.body["held_micros"], "0");
}

#[tokio::test]
async fn the_http_adapter_posts_the_input_at_a_flat_price() {
    let Funded { mock, app, session, key, before, .. } =
        funded("VISA_TEST_KEY_HTTP", "sk-test-http-0123456789", 5000).await;
    let reply = app.execute(&key, "priced-http", json!({ "q": "weather" })).await;
    let body = reply.assert_ok(200);
    assert_eq!(body["result"], json!({ "echoed": { "q": "weather" } }));
    assert_eq!(body["usage"]["charged_micros"], "25000");
    assert_eq!(app.balance_micros(&session).await, before - 25_000);
    assert_eq!(mock.behaviour.last_authorization.lock().unwrap().as_deref(), Some("Bearer sk-test-http-0123456789"));
}

#[tokio::test]
async fn preview_answers_from_the_sandbox_without_calling_the_provider() {
    let mock = MockProvider::start().await;
    let app = app_with(&mock, "VISA_TEST_KEY_PREVIEW", Some("sk-test-preview-0123456789"), 5000, true).await;
    let (_, _, key) = app.funded_key("tester").await;
    let reply = app.execute(&key, "chat", chat_input(Some(10))).await;
    let body = reply.assert_ok(200);
    assert_eq!(body["result"]["choices"][0]["message"]["content"], "sandboxed");
    assert_eq!(body["usage"]["charged_micros"], "0");
    assert_eq!(mock.calls(), 0);
}

#[tokio::test]
async fn an_unconfigured_provider_is_unavailable_and_bad_chat_input_is_refused() {
    let mock = MockProvider::start().await;
    let app = app_with(&mock, "VISA_TEST_KEY_NEVER_SET", None, 5000, false).await;
    let (_, _, key) = app.funded_key("octocat").await;
    let reply = app.execute(&key, "chat", chat_input(Some(10))).await;
    assert!(reply.assert_error(503, "TOOL_UNAVAILABLE")["error"].as_str().unwrap().contains("VISA_TEST_KEY_NEVER_SET"));
    let tools = app.call(reqwest::Method::GET, "/v1/api/tools", None, None, &[]).await;
    let chat = tools.body["tools"].as_array().unwrap().iter().find(|t| t["id"] == "chat").unwrap().clone();
    assert_eq!(chat["ready"], false);
    assert_eq!(chat["input_micros_per_mtok"], 150000);
    assert_eq!(mock.calls(), 0);
    // A preview server answers every tool from its sandbox: the same tool is ready there.
    let preview = app_with(&mock, "VISA_TEST_KEY_NEVER_SET", None, 5000, true).await;
    let tools = preview.call(reqwest::Method::GET, "/v1/api/tools", None, None, &[]).await;
    let chat = tools.body["tools"].as_array().unwrap().iter().find(|t| t["id"] == "chat").unwrap().clone();
    assert_eq!(chat["ready"], true);
    let (_, _, test_key) = preview.funded_key("octocat").await;
    preview.execute(&test_key, "chat", chat_input(Some(10))).await.assert_ok(200);
    assert_eq!(mock.calls(), 0);

    let app = app_with(&mock, "VISA_TEST_KEY_INPUT", Some("sk-test-input-0123456789"), 5000, false).await;
    let (_, _, key) = app.funded_key("octocat").await;
    app.execute(&key, "chat", json!({ "prompt": "no messages" })).await.assert_error(400, "INVALID_REQUEST");
    assert_eq!(mock.calls(), 0);
}

fn fal_app_catalog(mock: &MockProvider, key_var: &str, secret: Option<&str>, timeout_ms: u64) -> Catalog {
    let images = TestTool::fal("images", mock, key_var)
        .set("max_price_micros", 100000)
        .set("timeout_ms", timeout_ms)
        .adapter("poll_interval_ms", 20);
    visa_e2e::catalog::catalog(&[images], key_var, secret)
}

#[tokio::test]
async fn fal_queue_polls_to_completion_and_charges_per_image() {
    let mock = MockProvider::start().await;
    mock.behaviour.fal_complete_after_ms.store(100, Ordering::SeqCst);
    let catalog = fal_app_catalog(&mock, "VISA_TEST_KEY_FAL", Some("fal-test-0123456789"), 5000);
    let app = TestApp::spawn_with(|c| c.catalog = catalog).await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let reply = app.execute(&key, "images", json!({ "prompt": "a cat", "num_images": 2 })).await;
    let body = reply.assert_ok(200);
    assert_eq!(body["result"]["images"].as_array().unwrap().len(), 2);
    assert_eq!(body["usage"]["charged_micros"], "40000", "two images at 2 cents");
    assert_eq!(app.balance_micros(&session).await, before - 40_000);
    assert_eq!(mock.behaviour.fal_submits.load(Ordering::SeqCst), 1);
    assert_eq!(mock.behaviour.last_authorization.lock().unwrap().as_deref(), Some("Key fal-test-0123456789"));
}

#[tokio::test]
async fn a_retry_after_a_timeout_resumes_the_same_provider_request() {
    let mock = MockProvider::start().await;
    mock.behaviour.fal_complete_after_ms.store(700, Ordering::SeqCst);
    let catalog = fal_app_catalog(&mock, "VISA_TEST_KEY_FAL_RESUME", Some("fal-test-resume-0123456789"), 300);
    let app = TestApp::spawn_with(|c| c.catalog = catalog).await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let idem = uuid::Uuid::new_v4().to_string();
    let body = json!({ "input": { "prompt": "a slow cat", "num_images": 2 } });

    let first = app.execute_with(&key, "images", body.clone(), &idem).await;
    assert_eq!(first.assert_error(502, "UPSTREAM_ERROR")["retryable"], true);
    assert_eq!(app.balance_micros(&session).await, before, "the timeout voided the hold");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let retry = app.execute_with(&key, "images", body, &idem).await;
    retry.assert_ok(200);
    assert_eq!(mock.behaviour.fal_submits.load(Ordering::SeqCst), 1, "resumed, not submitted twice");
    assert_eq!(app.balance_micros(&session).await, before - 40_000, "charged once");

    // A new Idempotency-Key is a new request: submitted again.
    mock.behaviour.fal_complete_after_ms.store(0, Ordering::SeqCst);
    app.execute(&key, "images", json!({ "prompt": "a slow cat", "num_images": 2 })).await.assert_ok(200);
    assert_eq!(mock.behaviour.fal_submits.load(Ordering::SeqCst), 2);
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn a_failed_generation_is_voided_and_a_retry_submits_again() {
    let mock = MockProvider::start().await;
    mock.behaviour.fal_fail.store(true, Ordering::SeqCst);
    let catalog = fal_app_catalog(&mock, "VISA_TEST_KEY_FAL_FAIL", Some("fal-test-fail-0123456789"), 5000);
    let app = TestApp::spawn_with(|c| c.catalog = catalog).await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let idem = uuid::Uuid::new_v4().to_string();
    let body = json!({ "input": { "prompt": "a cursed cat", "num_images": 2 } });
    app.execute_with(&key, "images", body.clone(), &idem).await.assert_error(502, "UPSTREAM_ERROR");
    mock.behaviour.fal_fail.store(false, Ordering::SeqCst);
    // A queue that refuses the submission with a Retry-After passes it on.
    mock.behaviour.status.store(503, Ordering::SeqCst);
    let refused = app.execute_with(&key, "images", body.clone(), &idem).await;
    assert_eq!(refused.assert_error(502, "UPSTREAM_ERROR")["retry_after"], 7);
    mock.behaviour.status.store(0, Ordering::SeqCst);
    app.execute_with(&key, "images", body, &idem).await.assert_ok(200);
    assert_eq!(mock.behaviour.fal_submits.load(Ordering::SeqCst), 2, "the refused submission made no request");
    assert_eq!(app.balance_micros(&session).await, before - 40_000);
}

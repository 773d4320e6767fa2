//! The holes a money-path audit found, each reproduced over HTTP against the real server and a
//! local mock provider: holds that must bound what a provider can bill, a count parameter the
//! hold must cover, a UTC day that must not run backwards, preview that must never call a
//! provider, and one rule for what a provider failure costs.

use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use visa_e2e::TestApp;
use visa_e2e::catalog::TestTool;
use visa_e2e::mock_provider::MockProvider;
use visa_server::tools::catalog::Catalog;

/// $0.15 / $0.60 per million tokens, at most $1 a call; a flat-priced chat tool; a fal tool at
/// 2 cents an image holding for at most 4, timing out after `fal_timeout_ms`. No sandbox samples.
fn catalog(mock: &MockProvider, var: &str, fal_timeout_ms: u64) -> Catalog {
    let tools = [
        TestTool::chat("chat", mock, var),
        TestTool::chat("flat-chat", mock, var)
            .unset("input_micros_per_mtok")
            .unset("output_micros_per_mtok")
            .set("price_micros", 3000)
            .set("max_price_micros", 90000),
        TestTool::fal("images", mock, var).set("timeout_ms", fal_timeout_ms),
    ];
    visa_e2e::catalog::catalog(&tools, var, Some("sk-test-money-path-0123456789"))
}

struct Setup {
    mock: MockProvider,
    app: TestApp,
    session: String,
    key: String,
    before: i64,
}

async fn setup(var: &str, preview: bool) -> Setup {
    setup_with(var, preview, 5000).await
}

async fn setup_with(var: &str, preview: bool, fal_timeout_ms: u64) -> Setup {
    let mock = MockProvider::start().await;
    let catalog = catalog(&mock, var, fal_timeout_ms);
    let app = TestApp::spawn_with(|c| {
        c.catalog = catalog;
        if preview {
            c.environment = visa_core::key::Environment::Preview;
        }
    })
    .await;
    let session = app.account("octocat", true, 100_000).await;
    let (_, key) = app.key(&session, json!({ "label": "money", "daily_cap_cents": 100000 })).await;
    let before = app.balance_micros(&session).await;
    Setup { mock, app, session, key, before }
}

fn ask(extra: Value) -> Value {
    let mut input = json!({ "messages": [{ "role": "user", "content": "Say hello." }] });
    input.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    input
}

fn charged(reply: &visa_e2e::Reply) -> i64 {
    reply.assert_ok(200)["usage"]["charged_micros"].as_str().unwrap().parse().unwrap()
}

/// What the mock billed for the last call at the chat tool's prices (rounded up to the micro),
/// at least the tool's 100-micro minimum: what the caller owes.
fn billed(mock: &MockProvider) -> i64 {
    let sent = mock.behaviour.last_body.lock().unwrap().clone();
    let prompt = serde_json::to_vec(&sent).unwrap().len() as i64;
    let limit = sent["max_completion_tokens"].as_i64().or(sent["max_tokens"].as_i64()).unwrap();
    let completion = sent["n"].as_i64().unwrap_or(1) * limit;
    ((prompt * 150_000 + completion * 600_000 + 999_999) / 1_000_000).max(100)
}

#[tokio::test]
async fn the_chat_hold_bounds_everything_the_provider_can_bill() {
    let Setup { mock, app, session, key, before } = setup("VISA_TEST_KEY_MP_HOLD", false).await;
    mock.behaviour.realistic_usage.store(true, Ordering::SeqCst);

    // A 500 KB tool description with max_tokens 10: the prompt is what costs.
    let tools = json!([{ "type": "function", "function": { "name": "f", "description": "x".repeat(500_000) } }]);
    let reply = app.execute(&key, "chat", ask(json!({ "max_tokens": 10, "tools": tools }))).await;
    let bill = billed(&mock);
    assert!(bill > 75_000, "the provider billed the whole prompt: {bill}");
    assert_eq!(charged(&reply), bill, "charged exactly what the provider billed, not the 100-micro minimum");

    // n = 100 choices of 1000 tokens: every choice is paid for.
    let reply = app.execute(&key, "chat", ask(json!({ "max_tokens": 1000, "n": 100 }))).await;
    assert_eq!(charged(&reply), billed(&mock));
    assert!(billed(&mock) >= 60_000);

    // No limit from the caller: the server sets one, and the hold pays for it.
    let reply = app.execute(&key, "chat", ask(json!({}))).await;
    assert_eq!(mock.behaviour.last_body.lock().unwrap()["max_tokens"], 16_384, "the default output limit");
    assert_eq!(charged(&reply), billed(&mock));
    // max_completion_tokens is the field bounded when the caller uses it.
    let reply = app.execute(&key, "chat", ask(json!({ "max_completion_tokens": 50 }))).await;
    let sent = mock.behaviour.last_body.lock().unwrap().clone();
    assert_eq!((sent["max_completion_tokens"].as_i64(), sent.get("max_tokens")), (Some(50), None));
    assert_eq!(charged(&reply), billed(&mock));

    // What cannot be bounded is refused before anything is sent.
    let calls = mock.calls();
    let refusals = [
        ask(json!({ "max_tokens": 10_000_000 })),
        ask(json!({ "n": 0 })),
        ask(json!({ "prediction": { "type": "content", "content": "x" } })),
        ask(json!({ "models": ["openai/gpt-4o"] })),
        json!({ "messages": [{ "role": "user", "content": [{ "type": "image_url", "image_url": { "url": "https://x.invalid/a.png" } }] }] }),
        json!({ "messages": [{ "role": "user", "content": [{ "type": "input_audio", "input_audio": { "data": "", "format": "wav" } }] }] }),
    ];
    for input in refusals {
        let reply = app.execute(&key, "chat", input.clone()).await;
        reply.assert_error(400, "INVALID_REQUEST");
    }
    assert_eq!(mock.calls(), calls, "nothing refused reached the provider");

    // A provider that bills past the hold anyway: the hold is charged, the excess recorded as
    // an overage (the platform's loss) and counted in the metrics.
    mock.behaviour.realistic_usage.store(false, Ordering::SeqCst);
    mock.behaviour.prompt_tokens.store(10_000_000, Ordering::SeqCst);
    let reply = app.execute(&key, "chat", ask(json!({ "max_tokens": 10 }))).await;
    let hold_charge = charged(&reply);
    assert!(hold_charge < 10_000, "at most the hold: {hold_charge}");
    let metrics = app.metrics().await;
    assert!(metrics.contains("visa_provider_overages_total 1"), "{metrics}");
    let reported = 10_000_000 * 150_000 / 1_000_000 + 500 * 600_000 / 1_000_000;
    assert!(metrics.contains(&format!("visa_provider_overage_micros_total {}", reported - hold_charge)), "{metrics}");
    let overage = app.sql_value("SELECT SUM(amount_micros) FROM ledger WHERE kind = 'overage'");
    assert_eq!(overage, reported - hold_charge, "the overage is its own ledger entry");
    assert!(app.balance_micros(&session).await < before);
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn a_queue_tool_never_delivers_more_than_its_hold_pays_for() {
    let Setup { mock, app, session, key, before } = setup("VISA_TEST_KEY_MP_FAL", false).await;
    // 10 images at 2 cents do not fit a hold of at most 4: refused before submitting.
    let reply = app.execute(&key, "images", json!({ "prompt": "cats", "num_images": 10 })).await;
    let message = reply.assert_error(400, "INVALID_REQUEST")["error"].as_str().unwrap().to_owned();
    assert!(message.contains("num_images") && message.contains("at most 4"), "{message}");
    app.execute(&key, "images", json!({ "prompt": "cats", "num_images": "3" }))
        .await
        .assert_error(400, "INVALID_REQUEST");
    assert_eq!(mock.behaviour.fal_submits.load(Ordering::SeqCst), 0);

    // Three asked, three delivered, three charged.
    let reply = app.execute(&key, "images", json!({ "prompt": "cats", "num_images": 3 })).await;
    assert_eq!(charged(&reply), 60_000);
    // None asked: one is sent explicitly, so the provider cannot default to more.
    let reply = app.execute(&key, "images", json!({ "prompt": "one cat" })).await;
    assert_eq!(charged(&reply), 20_000);
    assert_eq!(mock.behaviour.last_body.lock().unwrap()["num_images"], 1);
    // A provider delivering more than asked: charged the hold, the rest is an overage.
    mock.behaviour.fal_extra_images.store(5, Ordering::SeqCst);
    let reply = app.execute(&key, "images", json!({ "prompt": "cats", "num_images": 2 })).await;
    assert_eq!(charged(&reply), 40_000);
    assert_eq!(app.balance_micros(&session).await, before - 120_000);
    assert!(app.verify_ledger().await.is_empty());
}

/// Reusing an Idempotency-Key with other input must not replace the provider request an
/// earlier attempt left to resume: it is a mismatch, and the original still resumes.
#[tokio::test]
async fn a_resumable_provider_request_is_never_replaced_by_other_input() {
    let Setup { mock, app, key, .. } = setup_with("VISA_TEST_KEY_MP_RESUME", false, 300).await;
    mock.behaviour.fal_complete_after_ms.store(600, Ordering::SeqCst);
    let idem = uuid::Uuid::new_v4().to_string();
    let original = json!({ "input": { "prompt": "a slow cat" } });
    app.execute_with(&key, "images", original.clone(), &idem).await.assert_error(502, "UPSTREAM_ERROR");
    let other = json!({ "input": { "prompt": "a dog instead" } });
    app.execute_with(&key, "images", other, &idem).await.assert_error(409, "IDEMPOTENT_REPLAY");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    app.execute_with(&key, "images", original, &idem).await.assert_ok(200);
    assert_eq!(mock.behaviour.fal_submits.load(Ordering::SeqCst), 1, "resumed, never submitted twice");
    assert!(app.verify_ledger().await.is_empty());
}

/// A submission the provider accepts but answers only after the call's timeout: its request id
/// is still stored, a retry meeting it in progress is told to retry shortly, and the retry after
/// it resumes it; the provider is paid once.
#[tokio::test]
async fn a_submission_answered_after_the_timeout_is_resumed_not_paid_twice() {
    let Setup { mock, app, session, key, before } = setup_with("VISA_TEST_KEY_MP_SLOW_SUBMIT", false, 300).await;
    mock.behaviour.fal_submit_delay_ms.store(700, Ordering::SeqCst);
    let idem = uuid::Uuid::new_v4().to_string();
    let body = json!({ "input": { "prompt": "a slow queue" } });
    let first = app.execute_with(&key, "images", body.clone(), &idem).await;
    assert_eq!(first.assert_error(502, "UPSTREAM_ERROR")["retryable"], true, "timed out");
    let meanwhile = app.execute_with(&key, "images", body.clone(), &idem).await;
    let message = meanwhile.assert_error(502, "UPSTREAM_ERROR")["error"].as_str().unwrap().to_owned();
    assert!(message.contains("still being accepted"), "{message}");
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    mock.behaviour.fal_submit_delay_ms.store(0, Ordering::SeqCst);
    app.execute_with(&key, "images", body, &idem).await.assert_ok(200);
    assert_eq!(mock.behaviour.fal_submits.load(Ordering::SeqCst), 1, "submitted once, resumed after");
    assert_eq!(app.balance_micros(&session).await, before - 20_000, "charged once");
    assert!(app.verify_ledger().await.is_empty());
}

/// A clock stepped back across midnight must not reopen an earlier day (whose counters would
/// start again from zero), and a hold placed on one day settles on that day whatever day it is
/// when the call ends.
#[tokio::test]
async fn the_utc_day_never_runs_backwards() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 1_000).await;
    let (id, key) = app.key(&session, json!({ "label": "daily", "daily_cap_cents": 2 })).await;
    app.execute(&key, "echo", json!({})).await.assert_ok(200);
    // A call still running when the day turns.
    let running = app.execute(&key, "sleep", json!({ "ms": 1500 }));
    let around_midnight = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // An NTP step back of a day: the cap is still reached.
        app.clock.advance(time::Duration::days(-1));
        let refused = app.execute(&key, "echo", json!({})).await;
        refused.assert_error(429, "RATE_LIMITED");
        // Two days on: a new day, a fresh cap, while yesterday's call is still running.
        app.clock.advance(time::Duration::days(2));
        app.execute(&key, "echo", json!({})).await.assert_ok(200);
        app.execute(&key, "echo", json!({})).await.assert_ok(200);
        app.execute(&key, "echo", json!({})).await.assert_error(429, "RATE_LIMITED");
    };
    let (running, ()) = tokio::join!(running, around_midnight);
    running.assert_ok(200);
    let view = app.get(&format!("/v1/api/keys/{id}"), &session).await;
    assert_eq!(view.body["spent_today_cents"], 2, "today's two calls");
    assert_eq!(view.body["spent_total_cents"], 4);
    assert_eq!(app.get("/v1/api/balance", &session).await.body["held_micros"], "0", "no hold stranded");
    let days: Vec<(i64, i64, i64)> = app
        .sql_rows("SELECT day_number, spent_micros, held_micros FROM key_days ORDER BY 1")
        .into_iter()
        .map(|r| (r[0], r[1], r[2]))
        .collect();
    assert_eq!(days.len(), 2, "{days:?}");
    assert_eq!((days[0].1, days[0].2), (20_000, 0), "the first day: echo and the sleep, settled on its day");
    assert_eq!((days[1].1, days[1].2), (20_000, 0));
    assert_eq!(days[1].0 - days[0].0, 1);
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn preview_never_calls_a_provider_even_without_a_sample() {
    let Setup { mock, app, key, .. } = setup("VISA_TEST_KEY_MP_PREVIEW", true).await;
    let reply = app.execute(&key, "chat", ask(json!({ "max_tokens": 5 }))).await;
    let body = reply.assert_ok(200);
    assert_eq!(body["result"]["object"], "chat.completion");
    assert!(body["result"]["choices"][0]["message"]["content"].as_str().unwrap().contains("sandbox"));
    assert_eq!(body["usage"]["charged_micros"], "0");
    let reply = app.execute(&key, "images", json!({ "prompt": "cats", "num_images": 2 })).await;
    assert!(reply.assert_ok(200)["result"]["images"].is_array());
    let again = app.execute(&key, "chat", ask(json!({ "max_tokens": 5 }))).await;
    assert_eq!(again.body["result"], body["result"], "deterministic");
    assert_eq!(mock.calls() + mock.behaviour.fal_submits.load(Ordering::SeqCst), 0, "no provider was contacted");
}

/// One rule for every adapter: a 2xx carrying an error is a failure like its code; a 2xx we
/// cannot read is a final failure charging nothing (so a retry does not bill the provider
/// again); a flat-priced chat tool is charged its price.
#[tokio::test]
async fn provider_failures_follow_one_rule() {
    let Setup { mock, app, session, key, before } = setup("VISA_TEST_KEY_MP_RULE", false).await;
    let set_raw = |status: u16, body: &str| *mock.behaviour.raw_answer.lock().unwrap() = Some((status, body.into()));

    set_raw(200, r#"{"error":{"message":"upstream overloaded","code":503}}"#);
    let reply = app.execute(&key, "chat", ask(json!({}))).await;
    assert_eq!(reply.assert_error(502, "UPSTREAM_ERROR")["retryable"], true);
    set_raw(200, r#"{"error":{"message":"bad tool schema","code":400}}"#);
    app.execute(&key, "chat", ask(json!({}))).await.assert_error(400, "INVALID_REQUEST");

    set_raw(200, "<html>gateway</html>");
    let idem = uuid::Uuid::new_v4().to_string();
    let body = json!({ "input": ask(json!({ "max_tokens": 5 })) });
    let first = app.execute_with(&key, "chat", body.clone(), &idem).await;
    assert_eq!(first.assert_error(502, "UPSTREAM_ERROR")["retryable"], false);
    let calls = mock.calls();
    let retry = app.execute_with(&key, "chat", body, &idem).await;
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(mock.calls(), calls, "the retry did not bill the provider again");
    set_raw(200, r#"{"id":"x","object":"chat.completion"}"#);
    assert_eq!(app.execute(&key, "chat", ask(json!({}))).await.assert_error(502, "UPSTREAM_ERROR")["retryable"], false);

    // fal: a result that is not JSON charges nothing.
    let reply = app.execute(&key, "images", json!({ "prompt": "cats" })).await;
    assert_eq!(reply.assert_error(502, "UPSTREAM_ERROR")["retryable"], false);
    *mock.behaviour.raw_answer.lock().unwrap() = None;
    assert_eq!(app.balance_micros(&session).await, before, "no failure was charged");

    // A chat tool without token prices costs its price, not its hold.
    let reply = app.execute(&key, "flat-chat", ask(json!({}))).await;
    assert_eq!(charged(&reply), 3000);
    assert_eq!(app.balance_micros(&session).await, before - 3000);
    assert!(app.verify_ledger().await.is_empty());
}

/// A settle that meets a store locked for longer than one write waits (3 s here, past the
/// writer's 2 s lock timeout) is retried with backoff: the call answers 200, charged once,
/// instead of being left for an operator to reconcile.
#[tokio::test]
async fn a_settle_that_meets_a_locked_store_is_retried() {
    let app = TestApp::spawn().await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let call = app.execute(&key, "sleep", json!({ "ms": 300 }));
    let lock = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let held = app.lock_writes();
        tokio::time::sleep(std::time::Duration::from_millis(3_000)).await;
        held.release();
    };
    let (reply, ()) = tokio::join!(call, lock);
    assert_eq!(reply.assert_ok(200)["usage"]["charged_micros"], "10000");
    assert_eq!(app.balance_micros(&session).await, before - 10_000);
    let held = app.get("/v1/api/balance", &session).await;
    assert_eq!(held.body["held_micros"], "0");
    assert!(app.verify_ledger().await.is_empty());
}

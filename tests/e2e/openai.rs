//! The OpenAI-compatible surface over HTTP against the real server and a local OpenAI-style
//! provider: a completion is a paid call of the same money path (charged from `usage`, once
//! per Idempotency-Key, replayed byte for byte), models are the key's chat tools, and every
//! refusal is OpenAI's error shape with our `error_code` as `code`. (`tests/e2e/openai_sdk.rs`
//! drives the same surface with the official Python SDK.)

use reqwest::Method;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use visa_e2e::TestApp;
use visa_e2e::mock_provider::MockProvider;
use visa_e2e::mock_provider::chat_catalog;

async fn app(mock: &MockProvider, key_var: &str) -> TestApp {
    let catalog = chat_catalog(mock, key_var);
    TestApp::spawn_with(|c| c.catalog = catalog).await
}

async fn chat(app: &TestApp, key: &str, body: Value, idempotency_key: Option<&str>) -> visa_e2e::Reply {
    let mut headers = vec![("Authorization".to_owned(), format!("Bearer {key}"))];
    if let Some(k) = idempotency_key {
        headers.push(("Idempotency-Key".to_owned(), k.to_owned()));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    app.call(Method::POST, "/v1/openai/chat/completions", None, Some(body), &headers).await
}

fn hello(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "hello" }], "max_tokens": 1000 })
}

/// OpenAI's error shape with our code.
fn assert_openai_error(reply: &visa_e2e::Reply, status: u16, code: &str, kind: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    let error = &reply.body["error"];
    assert_eq!((error["code"].as_str(), error["type"].as_str()), (Some(code), Some(kind)), "{}", reply.body);
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", reply.body);
    assert!(error.get("param").is_some(), "param is present (null): {}", reply.body);
    assert!(reply.body.get("success").is_none(), "not our envelope: {}", reply.body);
}

#[tokio::test]
async fn a_completion_is_charged_from_usage_once_per_idempotency_key_and_replayed() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_OPENAI_KEY_1").await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;

    let first = chat(&app, &key, hello("gpt-mock"), Some("sdk-retry-7f3a")).await;
    assert_eq!(first.status.as_u16(), 200, "{}", first.body);
    assert_eq!(first.body["object"], "chat.completion");
    assert_eq!(first.body["model"], "gpt-mock", "the name the caller used");
    assert_eq!(first.body["choices"][0]["message"]["content"], "hi from the mock");
    // 1,000 prompt tokens at $0.15/M and 500 completion tokens at $0.60/M: 150 + 300 micros.
    assert_eq!(first.body["visa"]["charged_micros"], "450");
    assert_eq!(app.balance_micros(&session).await, before - 450);
    // The provider got the catalog's model and our limit, never the caller's alias.
    let sent = mock.behaviour.last_body.lock().unwrap().clone();
    assert_eq!((sent["model"].as_str(), sent["max_tokens"].as_u64()), (Some("mock-model"), Some(1000)));

    // The same key again: the stored bytes, no provider call, no charge.
    let again = chat(&app, &key, hello("gpt-mock"), Some("sdk-retry-7f3a")).await;
    assert_eq!((again.status.as_u16(), again.raw.as_slice()), (200, first.raw.as_slice()));
    assert_eq!(again.headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    assert_eq!((mock.calls(), app.balance_micros(&session).await), (1, before - 450));
    // The same key with another body is refused; a new key is a new call.
    let other = chat(&app, &key, hello("chat"), Some("sdk-retry-7f3a")).await;
    assert_openai_error(&other, 409, "IDEMPOTENT_REPLAY", "conflict_error");
    assert_eq!(chat(&app, &key, hello("chat"), Some("another-call")).await.status.as_u16(), 200);
    assert_eq!(mock.calls(), 2);
    // It is the same execution record as on execute: listed, with its receipt.
    let listed = app.get("/v1/api/executions", &session).await;
    let newest = &listed.assert_ok(200)["executions"][0];
    assert_eq!((newest["tool"].as_str(), newest["charged_micros"].as_str()), (Some("chat"), Some("450")));
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn refusals_are_openai_errors_and_nothing_reaches_the_provider() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_OPENAI_KEY_2").await;
    let (session, _, key) = app.funded_key("octocat").await;
    let (_, echo_only) = app.key(&session, json!({ "label": "echo-only", "allowed_tools": ["echo"] })).await;
    let before = app.balance_micros(&session).await;

    let missing = chat(&app, &key, hello("chat"), None).await;
    assert_openai_error(&missing, 400, "INVALID_REQUEST", "invalid_request_error");
    assert!(missing.body["error"]["message"].as_str().unwrap().contains("extra_headers"), "says how: {}", missing.body);
    let unknown = chat(&app, "VisaKey_live_notakey", hello("chat"), Some("k1")).await;
    assert_openai_error(&unknown, 401, "AUTH_INVALID", "authentication_error");
    let forbidden = chat(&app, &echo_only, hello("chat"), Some("k2")).await;
    assert_openai_error(&forbidden, 403, "TOOL_NOT_PERMITTED", "permission_error");
    let no_model = chat(&app, &key, hello("no-such-model"), Some("k3")).await;
    assert_openai_error(&no_model, 404, "TOOL_NOT_FOUND", "not_found_error");
    let not_chat = chat(&app, &key, hello("echo"), Some("k4")).await;
    assert_openai_error(&not_chat, 404, "TOOL_NOT_FOUND", "not_found_error");
    let long_key = "k".repeat(256);
    assert_openai_error(
        &chat(&app, &key, hello("chat"), Some(&long_key)).await,
        400,
        "INVALID_REQUEST",
        "invalid_request_error",
    );
    let unbounded = json!({ "model": "chat", "messages": [], "max_tokens": 100, "prediction": {} });
    assert_openai_error(
        &chat(&app, &key, unbounded, Some("k5")).await,
        400,
        "INVALID_REQUEST",
        "invalid_request_error",
    );
    assert_eq!(mock.calls(), 0, "no refusal reached the provider");
    assert_eq!(app.balance_micros(&session).await, before, "nothing charged");

    // A provider failure: 502 in OpenAI's shape, retryable, with its Retry-After; nothing charged.
    mock.behaviour.status.store(500, std::sync::atomic::Ordering::SeqCst);
    let failed = chat(&app, &key, hello("chat"), Some("k6")).await;
    assert_openai_error(&failed, 502, "UPSTREAM_ERROR", "api_error");
    assert_eq!(failed.body["error"]["retryable"], true);
    assert_eq!(failed.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("7"));
    mock.behaviour.status.store(0, std::sync::atomic::Ordering::SeqCst);
    // The retry with the same key runs (the failure freed it) and is charged once.
    assert_eq!(chat(&app, &key, hello("chat"), Some("k6")).await.status.as_u16(), 200);
    assert_eq!(mock.calls(), 2);
    assert_eq!(app.balance_micros(&session).await, before - 450);
    // Unknown routes under the surface answer in its shape too (images are not served yet).
    let nowhere = app.call(Method::GET, "/v1/openai/images/generations", Some(&key), None, &[]).await;
    assert_openai_error(&nowhere, 404, "NOT_FOUND", "not_found_error");
}

#[tokio::test]
async fn models_are_the_chat_tools_the_key_may_use() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_OPENAI_KEY_3").await;
    let (session, _, all) = app.funded_key("octocat").await;
    let (_, echo_only) = app.key(&session, json!({ "label": "echo-only", "allowed_tools": ["echo"] })).await;
    let listed = app.call(Method::GET, "/v1/openai/models", Some(&all), None, &[]).await;
    assert_eq!(listed.status.as_u16(), 200, "{}", listed.body);
    assert_eq!(listed.body["object"], "list");
    let ids: Vec<&str> = listed.body["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["chat"], "chat tools only, not echo");
    let none = app.call(Method::GET, "/v1/openai/models", Some(&echo_only), None, &[]).await;
    assert_eq!(none.body["data"], json!([]));
    let one = app.call(Method::GET, "/v1/openai/models/gpt-mock", Some(&all), None, &[]).await;
    assert_eq!((one.status.as_u16(), one.body["id"].as_str()), (200, Some("chat")), "an alias finds its tool");
    let hidden = app.call(Method::GET, "/v1/openai/models/chat", Some(&echo_only), None, &[]).await;
    assert_openai_error(&hidden, 404, "TOOL_NOT_FOUND", "not_found_error");
    let anonymous = app.call(Method::GET, "/v1/openai/models", None, None, &[]).await;
    assert_openai_error(&anonymous, 401, "AUTH_REQUIRED", "authentication_error");
}

/// A chat completion request, its answer not read yet (a stream is read as it comes).
async fn send_streamed(app: &TestApp, key: &str, body: Value, idempotency_key: &str) -> reqwest::Response {
    let request = reqwest::Client::new().post(app.url("/v1/openai/chat/completions")).bearer_auth(key);
    request.header("Idempotency-Key", idempotency_key).json(&body).send().await.unwrap()
}

/// A streamed call's raw answer: status, content type, the whole body as text.
async fn stream_call(app: &TestApp, key: &str, body: Value, idempotency_key: &str) -> (u16, String, String, bool) {
    let response = send_streamed(app, key, body, idempotency_key).await;
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (content_type, replayed) = (header("content-type"), header("idempotent-replayed") == "true");
    (status, content_type, response.text().await.unwrap(), replayed)
}

/// The `data:` payloads of an event stream, and its `: visa` comment.
fn events(text: &str) -> (Vec<Value>, Value) {
    let data = text.lines().filter_map(|l| l.strip_prefix("data: ")).filter(|d| *d != "[DONE]");
    let visa = text.lines().find_map(|l| l.strip_prefix(": visa ")).map(|v| serde_json::from_str(v).unwrap());
    (data.map(|d| serde_json::from_str(d).unwrap()).collect(), visa.unwrap_or(Value::Null))
}

fn streamed(model: &str, include_usage: bool) -> Value {
    let mut body = hello(model);
    body["stream"] = json!(true);
    if include_usage {
        body["stream_options"] = json!({ "include_usage": true });
    }
    body
}

#[tokio::test]
async fn a_stream_is_metered_from_its_usage_chunk_and_replayed_as_recorded() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_OPENAI_KEY_4").await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;

    let (status, content_type, text, replayed) = stream_call(&app, &key, streamed("gpt-mock", false), "s-1").await;
    assert_eq!((status, content_type.as_str(), replayed), (200, "text/event-stream", false), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let (chunks, visa) = events(&text);
    let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "tok0 tok1 tok2 tok3 ");
    assert!(
        chunks.iter().all(|c| c["model"] == "gpt-mock" && c.get("usage").is_none()),
        "no usage chunk unasked: {text}"
    );
    assert_eq!((visa["charged_micros"].as_str(), visa["metered"].as_str()), (Some("450"), Some("usage")), "{text}");
    // The provider was asked for its usage although the caller was not.
    let sent = mock.behaviour.last_body.lock().unwrap().clone();
    assert_eq!(
        (sent["stream"].clone(), sent["stream_options"].clone()),
        (json!(true), json!({ "include_usage": true }))
    );
    assert_eq!(app.balance_micros(&session).await, before - 450);

    // The same Idempotency-Key: the recorded stream, byte for byte, no provider call.
    let again = stream_call(&app, &key, streamed("gpt-mock", false), "s-1").await;
    assert_eq!(again, (200, "text/event-stream".to_owned(), text, true));
    assert_eq!((mock.calls(), app.balance_micros(&session).await), (1, before - 450));

    // Asked for, the usage chunk is passed through.
    let (_, _, text, _) = stream_call(&app, &key, streamed("chat", true), "s-2").await;
    let (chunks, _) = events(&text);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 500, "{text}");
    assert!(app.verify_ledger().await.is_empty());
}

/// A chunk of the mock's stream: `delta` for choice 0, and its finish reason.
fn chunk(delta: Value, finish: Value) -> String {
    json!({ "id": "chatcmpl-x", "object": "chat.completion.chunk", "model": "mock-model",
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
    .to_string()
}

fn script(mock: &MockProvider, payloads: &[String], cut: bool) {
    *mock.behaviour.stream_script.lock().unwrap() = Some((payloads.to_vec(), cut));
}

/// The hold, charge and state of the account's newest execution.
async fn newest(app: &TestApp, session: &str) -> (String, i64, i64) {
    let e = app.get("/v1/api/executions?limit=1", session).await.assert_ok(200)["executions"][0].clone();
    let micros = |field: &str| e[field].as_str().unwrap().parse::<i64>().unwrap();
    (e["state"].as_str().unwrap().to_owned(), micros("held_micros"), micros("charged_micros"))
}

#[tokio::test]
async fn a_stream_cut_after_content_is_charged_an_estimate_of_what_was_delivered() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_OPENAI_KEY_5").await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;

    // 500 words delivered in 5 chunks, then the connection drops: no usage, no [DONE].
    let mut payloads = vec![chunk(json!({ "role": "assistant", "content": "" }), Value::Null)];
    payloads.extend((0..5).map(|_| chunk(json!({ "content": "word ".repeat(100) }), Value::Null)));
    script(&mock, &payloads, true);
    let (status, _, text, _) = stream_call(&app, &key, streamed("chat", false), "cut-1").await;
    assert_eq!(status, 200);
    let (chunks, visa) = events(&text);
    assert_eq!(chunks.len(), 6, "everything the provider sent before the cut: {text}");
    assert_eq!(visa["metered"], "estimated", "{text}");
    // cl100k (the mock's model is no OpenAI model): the prompt's 8 tokens and the output's
    // 501 ("word", " word" 499 times, the trailing space) at $0.15 / $0.60 per M, rounded up.
    let (state, hold, charged) = newest(&app, &session).await;
    assert_eq!((state.as_str(), charged), ("succeeded", 302), "{text}");
    assert!(charged < hold, "an estimate, not the hold ({hold})");
    assert_eq!(visa["charged_micros"], charged.to_string());
    assert_eq!(app.balance_micros(&session).await, before - charged);

    // An estimate is never above the hold: a stream cut late in a long answer is charged the hold.
    let mut long = vec![chunk(json!({ "role": "assistant" }), Value::Null)];
    long.extend((0..20).map(|_| chunk(json!({ "content": "word ".repeat(10_000) }), Value::Null)));
    script(&mock, &long, true);
    let small = json!({ "model": "chat", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 100, "stream": true });
    let (status, _, text, _) = stream_call(&app, &key, small, "cut-2").await;
    let (_, hold, charged_long) = newest(&app, &session).await;
    assert_eq!((status, charged_long, events(&text).1["metered"].as_str()), (200, hold, Some("estimated")));

    // A provider that refuses before streaming: an OpenAI error in JSON, nothing charged.
    *mock.behaviour.stream_script.lock().unwrap() = None;
    mock.behaviour.status.store(500, Ordering::SeqCst);
    let (status, content_type, text, _) = stream_call(&app, &key, streamed("chat", false), "cut-3").await;
    assert_eq!((status, content_type.as_str()), (502, "application/json"), "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error"]["code"], "UPSTREAM_ERROR");
    assert_eq!(app.balance_micros(&session).await, before - charged - charged_long);
    assert!(app.verify_ledger().await.is_empty());
}

/// Until the first content token, a provider's error event fails the call as a non-streamed
/// error answer would: an OpenAI error with the mapped status, nothing charged, nothing held,
/// and (for a 5xx or 429) the Idempotency-Key free, so the retry runs and is charged once.
#[tokio::test]
async fn a_stream_that_fails_before_content_is_charged_nothing_and_may_be_retried() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_OPENAI_KEY_13").await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let role = chunk(json!({ "role": "assistant", "content": "" }), Value::Null);
    let overloaded = json!({ "error": { "message": "overloaded", "code": 503 } }).to_string();
    let refused = json!({ "error": { "message": "bad prompt", "code": 400 } }).to_string();
    let mut spent = 0;
    for (n, payloads) in [vec![overloaded.clone()], vec![role.clone(), overloaded]].into_iter().enumerate() {
        script(&mock, &payloads, false);
        let idempotency_key = format!("early-{n}");
        let (status, content_type, text, _) = stream_call(&app, &key, streamed("chat", true), &idempotency_key).await;
        assert_eq!((status, content_type.as_str()), (502, "application/json"), "{text}");
        let error = serde_json::from_str::<Value>(&text).unwrap()["error"].clone();
        assert_eq!((error["code"].as_str(), error["retryable"].as_bool()), (Some("UPSTREAM_ERROR"), Some(true)));
        assert!(error["message"].as_str().unwrap().contains("overloaded"), "{error}");
        let (state, _, charged) = newest(&app, &session).await;
        assert_eq!((state.as_str(), charged), ("voided", 0));
        let balance = app.get("/v1/api/balance", &session).await.assert_ok(200).clone();
        assert_eq!((balance["held_micros"].as_str(), app.balance_micros(&session).await), (Some("0"), before - spent));

        // The key is free: the retry reaches the provider and is charged once, from usage.
        *mock.behaviour.stream_script.lock().unwrap() = None;
        let calls = mock.calls();
        let (status, _, text, replayed) = stream_call(&app, &key, streamed("chat", true), &idempotency_key).await;
        assert_eq!((status, replayed, mock.calls()), (200, false, calls + 1), "{text}");
        assert_eq!(events(&text).1["charged_micros"], "450");
        spent += 450;
        assert_eq!(app.balance_micros(&session).await, before - spent);
    }

    // An error the caller caused (a 4xx) is final, as for a non-streamed call: replayed, not rerun.
    script(&mock, &[role, refused], false);
    let (status, _, text, _) = stream_call(&app, &key, streamed("chat", false), "early-final").await;
    assert_eq!(status, 400, "{text}");
    let calls = mock.calls();
    let (status, _, again, replayed) = stream_call(&app, &key, streamed("chat", false), "early-final").await;
    assert_eq!((status, replayed, again, mock.calls()), (400, true, text, calls));
    assert_eq!(newest(&app, &session).await.2, 0);
    assert!(app.verify_ledger().await.is_empty());
}

/// A provider event that is valid JSON but not an object (`data: 1`) is skipped: it breaks
/// nothing, the call is charged from its usage; a stream of nothing else fails the call, voided,
/// with no hold left and the Idempotency-Key free (never "in flight" forever).
#[tokio::test]
async fn a_provider_event_that_is_not_an_object_breaks_nothing() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_OPENAI_KEY_14").await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let usage = json!({ "id": "x", "object": "chat.completion.chunk", "choices": [],
                        "usage": { "prompt_tokens": 1000, "completion_tokens": 500 } })
    .to_string();
    let payloads = [
        "1".to_owned(),
        chunk(json!({ "role": "assistant" }), Value::Null),
        "[1, 2]".to_owned(),
        "\"text\"".to_owned(),
        chunk(json!({ "content": "hello" }), Value::Null),
        "null".to_owned(),
        chunk(json!({}), json!("stop")),
        usage,
    ];
    script(&mock, &payloads, false);
    let (status, _, text, _) = stream_call(&app, &key, streamed("chat", false), "odd-1").await;
    assert_eq!(status, 200, "{text}");
    let (chunks, visa) = events(&text);
    assert_eq!(chunks.len(), 3, "only the chunks: {text}");
    assert_eq!((visa["charged_micros"].as_str(), visa["metered"].as_str()), (Some("450"), Some("usage")));

    script(&mock, &["1".to_owned()], false);
    let (status, _, text, _) = stream_call(&app, &key, streamed("chat", false), "odd-2").await;
    assert_eq!(status, 502, "{text}");
    let (state, _, charged) = newest(&app, &session).await;
    assert_eq!((state.as_str(), charged), ("voided", 0));
    let balance = app.get("/v1/api/balance", &session).await.assert_ok(200).clone();
    assert_eq!((balance["held_micros"].as_str(), app.balance_micros(&session).await), (Some("0"), before - 450));
    let (status, _, _, _) = stream_call(&app, &key, streamed("chat", false), "odd-2").await;
    assert_ne!(status, 409, "the key is free, not in flight");
    assert!(app.verify_ledger().await.is_empty());
}

/// The account's newest execution once it is no longer running (polled for up to 5 s): a call
/// whose caller hung up is finished without anyone waiting on it.
async fn newest_execution_once_settled(app: &TestApp, session: &str) -> Value {
    let mut newest = Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        newest = app.get("/v1/api/executions?limit=1", session).await.assert_ok(200)["executions"][0].clone();
        if newest["state"] != "running" {
            break;
        }
    }
    newest
}

#[tokio::test]
async fn a_caller_that_hangs_up_mid_stream_leaves_no_hold_and_a_slow_one_gets_everything() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_OPENAI_KEY_6").await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    mock.behaviour.stream_chunks.store(20, Ordering::SeqCst);
    mock.behaviour.stream_delay_ms.store(20, Ordering::SeqCst);

    // Read the first event, then hang up.
    let mut response = send_streamed(&app, &key, streamed("chat", false), "gone-1").await;
    assert!(response.chunk().await.unwrap().is_some());
    drop(response);
    // The provider is read to its end and the call settled: charged from its usage, no hold left.
    let settled = newest_execution_once_settled(&app, &session).await;
    assert_eq!((settled["state"].as_str(), settled["charged_micros"].as_str()), (Some("succeeded"), Some("450")));
    assert_eq!(mock.behaviour.streams_completed.load(Ordering::SeqCst), 1);
    let balance = app.get("/v1/api/balance", &session).await.assert_ok(200).clone();
    assert_eq!((balance["held_micros"].as_str(), app.balance_micros(&session).await), (Some("0"), before - 450));

    // A slow reader: 200 events read one at a time with a pause; the provider finishes long
    // before the reader does (nothing waits on the reader), and every event arrives.
    mock.behaviour.stream_chunks.store(200, Ordering::SeqCst);
    mock.behaviour.stream_delay_ms.store(0, Ordering::SeqCst);
    let mut response = send_streamed(&app, &key, streamed("chat", false), "slow-1").await;
    let mut text = Vec::new();
    let mut provider_done_while_reading = false;
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.extend_from_slice(&chunk);
        provider_done_while_reading |= mock.behaviour.streams_completed.load(Ordering::SeqCst) == 2
            && !String::from_utf8_lossy(&text).contains("[DONE]");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let text = String::from_utf8(text).unwrap();
    let (chunks, visa) = events(&text);
    let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, (0..200).map(|i| format!("tok{i} ")).collect::<String>());
    assert_eq!(visa["charged_micros"], "450");
    assert!(provider_done_while_reading, "the provider waited for the slow reader");
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn a_key_may_opt_out_of_the_idempotency_key_on_this_surface_only() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_OPENAI_KEY_7").await;
    let (session, _, _) = app.funded_key("octocat").await;
    let (id, key) = app.key(&session, json!({ "label": "framework", "idempotency": "optional" })).await;
    let view = app.get(&format!("/v1/api/keys/{id}"), &session).await.assert_ok(200).clone();
    assert_eq!(view["idempotency"], "optional");
    let before = app.balance_micros(&session).await;
    // Without the header each call is its own: twice the same body is two charges.
    for _ in 0..2 {
        assert_eq!(chat(&app, &key, hello("chat"), None).await.status.as_u16(), 200);
    }
    assert_eq!((mock.calls(), app.balance_micros(&session).await), (2, before - 900));
    // With the header it is still exactly once.
    for _ in 0..2 {
        assert_eq!(chat(&app, &key, hello("chat"), Some("once")).await.status.as_u16(), 200);
    }
    assert_eq!(mock.calls(), 3);
    // The execute route still requires its UUID Idempotency-Key.
    let execute = app
        .call(Method::POST, "/v1/api/tools/echo/execute", None, Some(json!({ "input": {} })), &[("X-Api-Key", &key)])
        .await;
    execute.assert_error(400, "INVALID_REQUEST");
    // Back to required; a value other than required/optional is refused; both audited.
    app.patch(&format!("/v1/api/keys/{id}"), &session, json!({ "idempotency": "required" })).await.assert_ok(200);
    assert_openai_error(&chat(&app, &key, hello("chat"), None).await, 400, "INVALID_REQUEST", "invalid_request_error");
    app.patch(&format!("/v1/api/keys/{id}"), &session, json!({ "idempotency": "sometimes" }))
        .await
        .assert_error(400, "INVALID_REQUEST");
    let changed = &app.audit(&session, "?action=key.updated").await[0];
    assert_eq!(changed["changes"]["idempotency"], json!({ "before": "optional", "after": "required" }), "{changed}");
}

#[tokio::test]
async fn agents_discover_the_api_at_llms_txt_and_read_every_doc_it_links() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::new();
    let index = http.get(app.url("/llms.txt")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert!(index.headers()["content-type"].to_str().unwrap().starts_with("text/markdown"));
    let text = index.text().await.unwrap();
    for expected in
        ["# Visa Keys", "Idempotency-Key", "retryable", "/v1/openai", "(/openapi.json)", "(/docs/openai.md)"]
    {
        assert!(text.contains(expected), "{expected:?} missing from llms.txt:\n{text}");
    }
    let links: Vec<&str> = text.split("](").skip(1).filter_map(|rest| rest.split(')').next()).collect();
    assert!(links.len() >= 10, "{links:?}");
    for link in links {
        let doc = http.get(app.url(link)).send().await.unwrap();
        assert_eq!(doc.status(), 200, "{link}");
        assert!(!doc.text().await.unwrap().is_empty(), "{link}");
    }
    let openai = http.get(app.url("/docs/openai.md")).send().await.unwrap().text().await.unwrap();
    assert!(openai.contains("extra_headers"), "the doc as in the repository");
    app.call(Method::GET, "/docs/nope.md", None, None, &[]).await.assert_error(404, "NOT_FOUND");
}

/// A caller that gives up while the provider works (the handler is dropped mid-call) on either
/// surface: the call still runs to its end, is charged once from its usage and holds nothing;
/// the same Idempotency-Key then replays the recorded answer without calling the provider.
#[tokio::test]
async fn a_caller_that_hangs_up_mid_call_is_charged_once_and_leaves_no_hold() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_OPENAI_KEY_12").await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    mock.behaviour.delay_ms.store(1_000, Ordering::SeqCst);
    let execute_key = uuid::Uuid::new_v4().to_string();
    let calls = [
        ("/v1/openai/chat/completions", "hangup-openai-1".to_owned(), hello("chat")),
        ("/v1/api/tools/chat/execute", execute_key, json!({ "input": hello("chat") })),
    ];
    for (n, (path, idempotency_key, body)) in calls.iter().enumerate() {
        let sent = reqwest::Client::new()
            .post(app.url(path))
            .bearer_auth(&key)
            .header("Idempotency-Key", idempotency_key)
            .json(body)
            .send();
        let caller = tokio::spawn(sent);
        // Hang up once the provider has the call (not before: a caller gone before the hold
        // is simply never charged, which is another story).
        for _ in 0..200 {
            if mock.calls() > n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(mock.calls(), n + 1, "{path}: the provider has the call");
        assert!(!caller.is_finished(), "{path}: the client gave up before the answer");
        caller.abort();
        let settled = newest_execution_once_settled(&app, &session).await;
        assert_eq!((settled["state"].as_str(), settled["charged_micros"].as_str()), (Some("succeeded"), Some("450")));
        let balance = app.get("/v1/api/balance", &session).await.assert_ok(200).clone();
        let spent = 450 * (n as i64 + 1);
        assert_eq!((balance["held_micros"].as_str(), app.balance_micros(&session).await), (Some("0"), before - spent));
        assert_eq!(mock.calls(), n + 1, "{path}: one provider call");
    }
    mock.behaviour.delay_ms.store(0, Ordering::SeqCst);
    let again = chat(&app, &key, hello("chat"), Some("hangup-openai-1")).await;
    assert_eq!(again.status.as_u16(), 200, "{}", again.body);
    assert_eq!(again.headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    assert_eq!((mock.calls(), app.balance_micros(&session).await), (2, before - 900));
    assert!(app.verify_ledger().await.is_empty());
}

/// Every answer of the OpenAI surface is in OpenAI's shape, a wrong method included; every
/// completion and chunk says when it was made (the mock provider sends no `created`); a
/// preview stream sends its usage chunk when asked, as production does.
#[tokio::test]
async fn the_surface_answers_in_openais_shape_with_created_and_preview_usage() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_OPENAI_KEY_15").await;
    let (_, _, key) = app.funded_key("octocat").await;
    for (method, path) in [(Method::GET, "/v1/openai/chat/completions"), (Method::POST, "/v1/openai/models")] {
        let reply = app.call(method, path, Some(&key), None, &[]).await;
        assert_openai_error(&reply, 405, "METHOD_NOT_ALLOWED", "invalid_request_error");
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let plain = chat(&app, &key, hello("chat"), Some("created-1")).await;
    assert!(plain.body["created"].as_i64().is_some_and(|t| (t - now).abs() < 600), "{}", plain.body);
    let (_, _, text, _) = stream_call(&app, &key, streamed("chat", true), "created-2").await;
    let (chunks, _) = events(&text);
    assert!(chunks.iter().all(|c| c["created"].is_i64()), "{text}");

    let preview = TestApp::spawn_with(|c| {
        c.catalog = visa_e2e::mock_provider::chat_catalog(&mock, "VISA_TEST_OPENAI_KEY_15");
        c.environment = visa_core::key::Environment::Preview;
    })
    .await;
    let (_, _, test_key) = preview.funded_key("octocat").await;
    let (status, _, text, _) = stream_call(&preview, &test_key, streamed("chat", true), "p-1").await;
    let (chunks, visa) = events(&text);
    assert_eq!(status, 200, "{text}");
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "sandboxed");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 0, "{text}");
    assert_eq!(visa["charged_micros"], "0", "nothing is charged in preview");
    let (_, _, text, _) = stream_call(&preview, &test_key, streamed("chat", false), "p-2").await;
    assert_eq!(events(&text).0.len(), 1, "no usage chunk unasked: {text}");
    assert_eq!(mock.calls(), 2, "the preview server never called the provider");
}

/// The default catalog's `echo-chat` answers a first OpenAI-compatible call with no provider
/// key: your last message back, charged like `echo` (1 cent), streamed or not, listed as a model.
#[tokio::test]
async fn echo_chat_answers_without_any_provider() {
    let app = TestApp::spawn().await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let body = json!({ "model": "echo-chat", "messages": [
        { "role": "system", "content": "be brief" }, { "role": "user", "content": "hello there" } ] });
    let reply = chat(&app, &key, body.clone(), Some("echo-1")).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    assert_eq!(reply.body["choices"][0]["message"]["content"], "hello there");
    assert_eq!(
        (reply.body["model"].as_str(), reply.body["visa"]["charged_micros"].as_str()),
        (Some("echo-chat"), Some("10000"))
    );
    assert_eq!(app.balance_micros(&session).await, before - 10_000);
    let again = chat(&app, &key, body.clone(), Some("echo-1")).await;
    assert_eq!((again.raw, app.balance_micros(&session).await), (reply.raw, before - 10_000), "replayed, charged once");

    let mut streamed = body;
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({ "include_usage": true });
    let (status, content_type, text, _) = stream_call(&app, &key, streamed, "echo-2").await;
    assert_eq!((status, content_type.as_str()), (200, "text/event-stream"), "{text}");
    let (chunks, visa) = events(&text);
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "hello there", "{text}");
    assert!(chunks.last().unwrap()["usage"].is_object(), "{text}");
    assert_eq!(visa["charged_micros"], "10000");

    let models = app.get("/v1/openai/models", &key).await;
    let ids: Vec<&str> = models.body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"echo-chat"), "{ids:?}");
    assert!(app.verify_ledger().await.is_empty());
}

/// A Responses API call over the raw wire.
async fn respond(app: &TestApp, key: &str, body: Value) -> visa_e2e::Reply {
    let idempotency_key = uuid::Uuid::new_v4().to_string();
    let headers = [("Authorization", format!("Bearer {key}")), ("Idempotency-Key", idempotency_key)];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    app.call(Method::POST, "/v1/openai/responses", None, Some(body), &headers).await
}

/// The Responses API refuses what it cannot serve from a chat provider — state kept between
/// calls, OpenAI's own tools, unknown members — in OpenAI's shape, before anything is held or
/// sent; `user` is the end user (kept, and capped, never sent upstream); a method other than
/// POST is 405.
#[tokio::test]
async fn the_responses_api_refuses_what_a_chat_provider_cannot_serve_and_names_the_end_user() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_RESPONSES_WIRE_KEY").await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    for (member, value, says) in [
        ("previous_response_id", json!("resp_1"), "keeps no conversation state"),
        ("tools", json!([{ "type": "web_search" }]), "only function tools"),
        ("input", json!([{ "type": "file_search_call", "id": "x" }]), "not supported"),
        ("background", json!(true), "background is not supported"),
        ("frobnicate", json!(1), "frobnicate is not supported"),
    ] {
        let mut body = json!({ "model": "chat", "input": "hello" });
        body[member] = value;
        let refused = respond(&app, &key, body).await;
        assert_openai_error(&refused, 400, "INVALID_REQUEST", "invalid_request_error");
        assert!(refused.body["error"]["message"].as_str().unwrap().contains(says), "{member}: {}", refused.body);
    }
    assert_eq!((mock.calls(), app.balance_micros(&session).await), (0, before), "nothing sent, nothing held");
    let wrong =
        app.call(Method::GET, "/v1/openai/responses", None, None, &[("Authorization", &format!("Bearer {key}"))]).await;
    assert_openai_error(&wrong, 405, "METHOD_NOT_ALLOWED", "invalid_request_error");

    // `user` is the end user: on the execution and its receipt, capped, never upstream.
    let (_, capped) = app.key(&session, json!({ "label": "per-user", "end_user_total_cap_cents": 1 })).await;
    let body = json!({ "model": "chat", "input": "hello", "user": "customer-9", "max_output_tokens": 100 });
    let done = respond(&app, &capped, body.clone()).await;
    assert_eq!(done.status.as_u16(), 200, "{}", done.body);
    assert_eq!(
        (&done.body["object"], &done.body["visa"]["receipt"]["end_user"]),
        (&json!("response"), &json!("customer-9"))
    );
    assert!(mock.behaviour.last_body.lock().unwrap().get("user").is_none(), "the end user stays here");
    // Until her 1-cent cap refuses her (each call is charged what it held, 100 output tokens' worth).
    let mut refused = respond(&app, &capped, body.clone()).await;
    for _ in 0..200 {
        if refused.status.as_u16() != 200 {
            break;
        }
        refused = respond(&app, &capped, body.clone()).await;
    }
    assert_openai_error(&refused, 429, "RATE_LIMITED", "rate_limit_error");
    assert_eq!(refused.body["error"]["limit"], "end_user_total_cap");
    let other = json!({ "model": "chat", "input": "hello", "user": "customer-10", "max_output_tokens": 100 });
    assert_eq!(respond(&app, &capped, other).await.status.as_u16(), 200, "another end user still spends");
    assert!(app.verify_ledger().await.is_empty());
}

/// A streamed Responses call reaches its caller piece by piece as the provider streams (the
/// first text long before the provider is done), ends with `response.completed` carrying the
/// provider's usage and then the charge, and a provider cut after the first text is charged an
/// estimate of what was delivered, the response completed with what came.
#[tokio::test]
async fn a_responses_stream_delivers_each_piece_as_the_provider_sends_it() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_RESPONSES_STREAM_KEY").await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    mock.behaviour.stream_delay_ms.store(250, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let mut response = reqwest::Client::new()
        .post(app.url("/v1/openai/responses"))
        .bearer_auth(&key)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({ "model": "chat", "input": "hello", "stream": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (mut text, mut first_delta) = (String::new(), None);
    while let Some(piece) = response.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&piece));
        if first_delta.is_none() && text.contains("response.output_text.delta") {
            first_delta = Some(started.elapsed());
        }
    }
    let (first, total) = (first_delta.expect("a delta"), started.elapsed());
    // Nine provider events 250 ms apart: the first text after the second, the end after all.
    assert!(total >= std::time::Duration::from_millis(2_000), "{total:?}");
    assert!(first + std::time::Duration::from_millis(1_000) < total, "first text at {first:?}, the end at {total:?}");
    let completed = text.find("event: response.completed").expect("completed");
    assert!(text[completed..].contains("\"output_tokens\":500") && text.contains(": visa "), "{text}");
    assert!(text.find("event: response.output_text.done").unwrap() < completed);
    assert_eq!(app.balance_micros(&session).await, before - 450, "metered from the provider's usage");

    // Cut after the first text: an estimate of what was delivered, the response completed with it.
    mock.behaviour.stream_delay_ms.store(0, Ordering::SeqCst);
    mock.behaviour.stream_cut.store(true, Ordering::SeqCst);
    let cut = reqwest::Client::new()
        .post(app.url("/v1/openai/responses"))
        .bearer_auth(&key)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({ "model": "chat", "input": "hello", "stream": true }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(cut.contains("\"text\":\"tok0 tok1 \"") && cut.contains("\"metered\":\"estimated\""), "{cut}");
    assert!(cut.contains("event: response.completed"), "{cut}");
    assert!(app.verify_ledger().await.is_empty());
}

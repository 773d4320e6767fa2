//! The OpenAI-compatible surface with the official `openai` Python SDK as the client (from the
//! tests' venv, `tests/python/requirements.txt`), against the real server in front of a local
//! OpenAI-style provider. `tests/python/openai_sdk_client.py` makes the calls as an application
//! would, with only `base_url` and the key changed; this side checks the provider's calls, the
//! charges to the micro and the ledger.

use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use visa_e2e::TestApp;
use visa_e2e::mock_provider::{MockProvider, chat_catalog};

/// Runs one scenario of the SDK script and returns what it printed.
async fn sdk(app: &TestApp, scenario: &str, key: &str, arg: Option<&str>) -> Value {
    script(scenario, &app.url("/v1/openai"), key, arg).await
}

/// Runs one scenario of the SDK script against `base_url`.
async fn script(scenario: &str, base_url: &str, key: &str, arg: Option<&str>) -> Value {
    let python = visa_e2e::python_venv().join("bin/python");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/openai_sdk_client.py");
    let mut command = tokio::process::Command::new(python);
    command.arg(script).args([scenario, base_url, key]).args(arg);
    let out = command.output().await.expect("the venv's python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{scenario}: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{scenario} printed {stdout}"))
}

async fn app(mock: &MockProvider, var: &str) -> TestApp {
    let catalog = chat_catalog(mock, var);
    TestApp::spawn_with(|c| c.catalog = catalog).await
}

/// 1,000 prompt tokens at $0.15/M and 500 completion tokens at $0.60/M.
const CALL_MICROS: i64 = 450;

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_calls_are_metered_once_and_retried_safely() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_SDK_KEY_1").await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;

    let plain = sdk(&app, "plain", &key, None).await;
    assert_eq!(plain["content"], "hi from the mock");
    assert_eq!(plain["visa"]["charged_micros"], CALL_MICROS.to_string());
    let alias = sdk(&app, "plain", &key, Some("gpt-mock")).await;
    assert_eq!(alias["model"], "gpt-mock");
    assert_eq!((mock.calls(), app.balance_micros(&session).await), (2, before - 2 * CALL_MICROS));

    // The same Idempotency-Key twice: one provider call, one charge, the same completion.
    let twice = sdk(&app, "same_key_twice", &key, None).await;
    assert_eq!(twice["first"], twice["second"]);
    assert_eq!((mock.calls(), app.balance_micros(&session).await), (3, before - 3 * CALL_MICROS));

    // A provider 500: we answer 502 retryable, the SDK retries by itself with the same key,
    // the provider is called twice, the account is charged once.
    mock.behaviour.fail_next.store(1, Ordering::SeqCst);
    let retried = sdk(&app, "retried", &key, Some("sdk-retried-call-1")).await;
    assert_eq!(retried["content"], "hi from the mock");
    assert_eq!((mock.calls(), app.balance_micros(&session).await), (5, before - 4 * CALL_MICROS));
    let executions = app.get("/v1/api/executions?limit=2", &session).await.assert_ok(200)["executions"].clone();
    let states: Vec<&str> = executions.as_array().unwrap().iter().filter_map(|e| e["state"].as_str()).collect();
    assert_eq!(states, ["succeeded", "voided"], "the failed attempt voided, the retry captured");

    // Streaming through the SDK: metered from the final usage chunk, replayed as recorded.
    let streamed = sdk(&app, "stream", &key, None).await;
    let expected = json!({ "content": "tok0 tok1 tok2 tok3 ", "usage": { "prompt": 1000, "completion": 500 }, "models": ["chat"] });
    assert_eq!(streamed["runs"], json!([expected, expected]), "{streamed}");
    assert_eq!((mock.calls(), app.balance_micros(&session).await), (6, before - 5 * CALL_MICROS));

    let models = sdk(&app, "models", &key, None).await;
    assert_eq!(models["ids"], json!(["chat"]));
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_raises_its_typed_errors_with_our_codes() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_SDK_KEY_2").await;
    let (session, _, key) = app.funded_key("octocat").await;
    let (_, echo_only) = app.key(&session, json!({ "label": "echo-only", "allowed_tools": ["echo"] })).await;
    let errors = sdk(&app, "errors", &key, Some(&echo_only)).await;
    let seen =
        |case: &str| (errors[case]["class"].clone(), errors[case]["status"].clone(), errors[case]["code"].clone());
    assert_eq!(seen("bad_key"), (json!("AuthenticationError"), json!(401), json!("AUTH_INVALID")));
    assert_eq!(seen("not_allowed"), (json!("PermissionDeniedError"), json!(403), json!("TOOL_NOT_PERMITTED")));
    assert_eq!(seen("unknown_model"), (json!("NotFoundError"), json!(404), json!("TOOL_NOT_FOUND")));
    assert_eq!(seen("no_idempotency_key"), (json!("BadRequestError"), json!(400), json!("INVALID_REQUEST")));
    assert_eq!(mock.calls(), 0, "a refused call never reaches the provider");

    // A cap reached mid-conversation: RateLimitError with RATE_LIMITED, nothing more charged.
    let (_, capped) = app.key(&session, json!({ "label": "capped", "daily_cap_cents": 1 })).await;
    let before = app.balance_micros(&session).await;
    let reached = sdk(&app, "capped", &capped, None).await;
    assert_eq!(
        reached["refused"],
        json!({ "class": "RateLimitError", "status": 429, "code": "RATE_LIMITED", "limit": "key_daily_cap" })
    );
    let succeeded = reached["succeeded"].as_i64().unwrap();
    assert!(succeeded >= 1, "{reached}");
    assert_eq!(app.balance_micros(&session).await, before - succeeded * CALL_MICROS);
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_sdk_calls_never_spend_past_the_cap() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_SDK_KEY_3").await;
    let (session, _, _) = app.funded_key("octocat").await;
    let (key_id, capped) = app.key(&session, json!({ "label": "raced", "daily_cap_cents": 1 })).await;
    let before = app.balance_micros(&session).await;
    let raced = sdk(&app, "race", &capped, Some("40")).await;
    let results = raced["results"].as_array().unwrap();
    let charged: Vec<i64> = results.iter().filter_map(|r| r.as_str()?.parse().ok()).collect();
    let refused = results.iter().filter(|r| r.as_str() == Some("RATE_LIMITED")).count();
    assert_eq!(charged.len() + refused, 40, "every call succeeded or was refused by the cap: {raced}");
    assert!(charged.iter().all(|c| *c == CALL_MICROS));
    let raced_spend = charged.len() as i64 * CALL_MICROS;
    assert!(raced_spend <= 10_000, "a 1-cent cap: {raced_spend} micros");
    assert_eq!(app.balance_micros(&session).await, before - raced_spend);
    assert_eq!(mock.calls(), charged.len(), "one provider call per charged call");
    // A racing call is refused when the holds in flight leave no room, and a hold is bigger
    // than the charge it settles to, so the race may end with room for more. One call at a
    // time, the key is then used up to what one more call's hold needs, and no further.
    let rest = sdk(&app, "capped", &capped, None).await;
    assert_eq!(
        rest["refused"],
        json!({ "class": "RateLimitError", "status": 429, "code": "RATE_LIMITED", "limit": "key_daily_cap" })
    );
    let spent = raced_spend + rest["succeeded"].as_i64().unwrap() * CALL_MICROS;
    assert!(spent <= 10_000, "a 1-cent cap: {spent} micros");
    assert_eq!(app.balance_micros(&session).await, before - spent);
    assert_eq!(mock.calls() as i64 * CALL_MICROS, spent, "one provider call per charged call");
    let key = app.get(&format!("/v1/api/keys/{key_id}"), &session).await.assert_ok(200).clone();
    assert_eq!(key["spent_today_cents"].as_i64(), Some((spent + 9_999) / 10_000));
    let again = sdk(&app, "capped", &capped, None).await;
    assert_eq!(again["succeeded"], 0, "no room left: {again}");
    assert!(app.verify_ledger().await.is_empty());
}

/// Runs one scenario of the Node SDK script (default retries) and returns what it printed;
/// the SDK gets 10 s (without `x-should-retry: false` it would sleep through `Retry-After`).
async fn node_sdk(app: &TestApp, scenario: &str, key: &str) -> Value {
    let dir = visa_e2e::node_sdk();
    let mut command = tokio::process::Command::new("node");
    command.arg(dir.join("openai_node_client.mjs")).args([scenario, &app.url("/v1/openai"), key]);
    command.kill_on_drop(true);
    let run = tokio::time::timeout(std::time::Duration::from_secs(10), command.output());
    let out = run.await.unwrap_or_else(|_| panic!("{scenario}: the Node SDK was still waiting after 10 s"));
    let out = out.expect("node runs (run `cargo xtask test`, which installs it, or apt-get install nodejs npm)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{scenario}: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{scenario} printed {stdout}"))
}

/// The official Node SDK with its default retries (two, honouring `Retry-After` however long)
/// against refusals a prompt retry cannot fix: a daily cap (429, retry after midnight), a
/// total cap and a revoked key. Each answers at once, after one request, with our code; the
/// body still says `retryable`/`retry_after` as the contract does.
#[tokio::test(flavor = "multi_thread")]
async fn the_node_sdk_never_waits_on_a_refusal_it_cannot_fix_by_retrying() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_SDK_KEY_NODE").await;
    let (session, _, _) = app.funded_key("octocat").await;
    let (daily_id, daily) = app.key(&session, json!({ "label": "daily", "daily_cap_cents": 1 })).await;
    let (total_id, total) = app.key(&session, json!({ "label": "total", "total_cap_cents": 1 })).await;
    let (revoked_id, revoked) = app.key(&session, json!({ "label": "revoked" })).await;
    app.delete(&format!("/v1/api/keys/{revoked_id}"), &session).await.assert_ok(200);
    // Noon UTC on the server's clock: in the last minute before midnight a daily cap's refusal is
    // a short wait that SDKs may rightly retry (docs/errors.md); this test is about the long one.
    let now = app.clock.now().unix_timestamp();
    app.clock.advance(time::Duration::seconds(43_200 - now.rem_euclid(86_400)));

    for (key, status, code, limit) in [
        (&daily, 429, "RATE_LIMITED", json!("key_daily_cap")),
        (&total, 429, "RATE_LIMITED", json!("key_total_cap")),
        (&revoked, 401, "AUTH_INVALID", json!(null)),
    ] {
        let refused = node_sdk(&app, "refused", key).await;
        assert_eq!((refused["ok"].as_bool(), refused["status"].as_u64()), (Some(false), Some(status)), "{refused}");
        assert_eq!((&refused["code"], &refused["limit"]), (&json!(code), &limit), "{refused}");
        assert!(refused["elapsed_ms"].as_u64().unwrap() < 2_000, "answered within 2 s: {refused}");
    }
    // One request each reached the server (the SDK did not retry), and nothing reached the provider.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await; // the per-second usage flush
    for id in [daily_id, total_id] {
        let usage = app.get(&format!("/v1/api/keys/{id}/usage"), &session).await.assert_ok(200).clone();
        assert_eq!(usage["secrets"][0]["totals"]["requests"], 1, "{usage}");
    }
    assert_eq!(mock.calls(), 0);

    // The body keeps the contract's hints; the header tells SDKs not to act on them.
    let daily_refusal = app
        .call(
            reqwest::Method::POST,
            "/v1/openai/chat/completions",
            Some(&daily),
            Some(json!({ "model": "chat", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 20000 })),
            &[("Idempotency-Key", "direct-1")],
        )
        .await;
    assert_eq!(daily_refusal.headers["x-should-retry"], "false");
    assert_eq!(daily_refusal.body["error"]["retryable"], true, "{}", daily_refusal.body);
    assert!(daily_refusal.body["error"]["retry_after"].as_u64().unwrap() > 60);
}

/// The first call of docs/openai.md, with the official Node SDK and the default catalog: the
/// built-in `echo-chat` answers without any provider key, plain and streamed, 1 cent each.
#[tokio::test(flavor = "multi_thread")]
async fn the_node_sdk_makes_a_first_call_without_a_provider_key() {
    let app = TestApp::spawn().await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let echoed = node_sdk(&app, "echo", &key).await;
    assert_eq!((echoed["content"].as_str(), echoed["streamed"].as_str()), (Some("Say hello"), Some("Say hello")));
    assert_eq!(echoed["visa"]["charged_micros"], "10000", "{echoed}");
    assert_eq!(app.balance_micros(&session).await, before - 20_000);
}

/// Embeddings through the SDK's `client.embeddings.create`: held by counting the input, metered
/// from the provider's `usage.prompt_tokens`, charged once per Idempotency-Key; an input its
/// max price cannot pay for is refused before anything is held or sent.
#[tokio::test(flavor = "multi_thread")]
async fn embeddings_are_held_by_their_input_metered_by_usage_and_charged_once() {
    use visa_e2e::catalog::{TestTool, catalog};
    let mock = MockProvider::start().await;
    mock.behaviour.prompt_tokens.store(2, Ordering::SeqCst);
    let var = "VISA_TEST_SDK_EMBED_KEY";
    // 100 micros a token, at most 10 cents a call (1,000 tokens).
    let embed = TestTool::embeddings("embed", &mock, var).set("input_micros_per_mtok", 100_000_000);
    let tools = [embed, TestTool::chat("chat", &mock, var)];
    let catalog = catalog(&tools, var, Some(visa_e2e::mock_provider::CHAT_SECRET));
    let app = TestApp::spawn_with(|c| c.catalog = catalog).await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;

    let out = sdk(&app, "embeddings", &key, None).await;
    assert_eq!((out["count"].as_u64(), out["model"].as_str()), (Some(2), Some("embed")), "{out}");
    assert_eq!(out["vectors"][1], json!([0.25, -0.5, 1.0]));
    assert_eq!(out["same_again"], true, "the retry is the first answer: {out}");
    // Two tokens at 100 micros, once; the hold was the input's 10 bytes' worth.
    assert_eq!(out["visa"]["charged_micros"], "200", "{out}");
    assert_eq!((mock.calls(), app.balance_micros(&session).await), (1, before - 200));
    let sent = mock.behaviour.last_body.lock().unwrap().clone();
    assert_eq!((sent["model"].as_str(), sent["input"].clone()), (Some("mock-embed"), json!(["hello", "world"])));
    let models = reqwest::Client::new().get(app.url("/v1/openai/models")).bearer_auth(&key).send().await.unwrap();
    let models: Value = models.json().await.unwrap();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"embed") && ids.contains(&"chat"), "{models}");

    // Refused before anything is held: too large for its max price, a chat model, a bad input.
    let post = |body: Value| {
        let request = reqwest::Client::new().post(app.url("/v1/openai/embeddings")).bearer_auth(&key);
        request.header("Idempotency-Key", uuid::Uuid::new_v4().to_string()).json(&body).send()
    };
    for (body, status, code) in [
        (json!({ "model": "embed", "input": "x".repeat(1_001) }), 400, "INVALID_REQUEST"),
        (json!({ "model": "chat", "input": "hello" }), 404, "TOOL_NOT_FOUND"),
        (json!({ "model": "embed", "input": [] }), 400, "INVALID_REQUEST"),
        (json!({ "model": "embed", "input": "hi", "tools": [] }), 400, "INVALID_REQUEST"),
    ] {
        let answer = post(body.clone()).await.unwrap();
        let answer_status = answer.status().as_u16();
        let error: Value = answer.json().await.unwrap();
        assert_eq!((answer_status, error["error"]["code"].as_str()), (status, Some(code)), "{body}: {error}");
    }
    assert_eq!((mock.calls(), app.balance_micros(&session).await), (1, before - 200), "nothing more");
    assert!(app.verify_ledger().await.is_empty());
}

/// The Responses API through the official SDK (`client.responses.create`): a paid call of a chat
/// tool, translated for a provider that offers only chat completions — plain, streamed with its
/// typed events, with a function tool and its output sent back — metered from the provider's
/// usage, charged once per Idempotency-Key (a retry replays the answer or the recorded stream),
/// refused by a limit in OpenAI's shape.
#[tokio::test(flavor = "multi_thread")]
async fn the_responses_api_is_one_paid_call_plain_streamed_and_with_tools() {
    let mock = MockProvider::start().await;
    let app = app(&mock, "VISA_TEST_SDK_KEY_RESPONSES").await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;

    let plain = sdk(&app, "responses", &key, None).await;
    assert_eq!(
        (&plain["text"], &plain["status"], &plain["model"]),
        (&json!("hi from the mock"), &json!("completed"), &json!("chat")),
        "{plain}"
    );
    assert!(plain["id"].as_str().unwrap().starts_with("resp_"), "{plain}");
    assert_eq!(plain["usage"], json!({ "input": 1000, "output": 500 }));
    assert_eq!(
        (&plain["visa"]["charged_micros"], &plain["same_again"]),
        (&json!(CALL_MICROS.to_string()), &json!(true))
    );
    assert_eq!((mock.calls(), app.balance_micros(&session).await), (1, before - CALL_MICROS), "charged once");
    let sent = mock.behaviour.last_body.lock().unwrap().clone();
    assert_eq!(
        sent["messages"],
        json!([{ "role": "system", "content": "be brief" }, { "role": "user", "content": "hello" }])
    );
    assert!(
        sent["max_tokens"].as_u64().is_some_and(|limit| limit <= 1000),
        "max_output_tokens bounds the hold: {sent}"
    );

    // Streamed: the provider's chunks become the typed events as they come (one delta per
    // chunk of text), completed with the provider's usage; the same key replays the stream.
    let streamed = sdk(&app, "responses_stream", &key, None).await;
    assert_eq!(mock.behaviour.last_body.lock().unwrap()["stream"], json!(true), "the provider streams to us");
    let runs = streamed["runs"].as_array().unwrap();
    assert_eq!(runs[0], runs[1], "the same Idempotency-Key replays the recorded stream");
    assert_eq!(
        (&runs[0]["text"], &runs[0]["final_text"], &runs[0]["output_tokens"]),
        (&json!("tok0 tok1 tok2 tok3 "), &json!("tok0 tok1 tok2 tok3 "), &json!(500))
    );
    assert_eq!(
        runs[0]["types"],
        json!([
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ])
    );
    assert_eq!((mock.calls(), app.balance_micros(&session).await), (2, before - 2 * CALL_MICROS));

    // The provider calls the function (and says a word); its output goes back as a tool message.
    let tool_call = json!({
        "id": "chatcmpl-tool", "object": "chat.completion", "model": "mock-model",
        "choices": [{ "index": 0, "finish_reason": "tool_calls", "message": { "role": "assistant", "content": "It is sunny.",
            "tool_calls": [{ "id": "call_7", "type": "function", "function": { "name": "weather", "arguments": "{\"city\":\"Paris\"}" } }] } }],
        "usage": { "prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500 },
    });
    *mock.behaviour.raw_answer.lock().unwrap() = Some((200, tool_call.to_string()));
    let tool = sdk(&app, "responses_tool", &key, None).await;
    *mock.behaviour.raw_answer.lock().unwrap() = None;
    assert_eq!(
        (&tool["name"], &tool["arguments"], &tool["call_id"]),
        (&json!("weather"), &json!("{\"city\":\"Paris\"}"), &json!("call_7"))
    );
    assert_eq!(tool["answer"], "It is sunny.");
    let sent = mock.behaviour.last_body.lock().unwrap().clone();
    assert_eq!(sent["tools"][0]["function"]["name"], "weather", "{sent}");
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], "call_7", "{sent}");
    assert_eq!(sent["messages"][2], json!({ "role": "tool", "tool_call_id": "call_7", "content": "sunny" }));
    assert_eq!((mock.calls(), app.balance_micros(&session).await), (4, before - 4 * CALL_MICROS));

    // Refused by a limit (a 1-cent daily cap, after the calls it covers): OpenAI's shape with our
    // code and the limit; the refused call reaches no provider.
    let (_, capped) = app.key(&session, json!({ "label": "capped", "daily_cap_cents": 1 })).await;
    let refused = sdk(&app, "responses_refused", &capped, None).await;
    assert_eq!(
        (&refused["status"], &refused["code"], &refused["limit"]),
        (&json!(429), &json!("RATE_LIMITED"), &json!("key_daily_cap")),
        "{refused}"
    );
    let covered = refused["succeeded"].as_u64().unwrap() as usize;
    assert!(covered >= 1, "{refused}");
    assert_eq!(mock.calls(), 4 + covered);
    assert!(app.verify_ledger().await.is_empty());
}

/// The OpenAI Agents SDK with its default model settings runs an agent against Visa Keys: only
/// `OPENAI_BASE_URL` and `OPENAI_API_KEY` point it here, and its default model (whatever this
/// version of the SDK says it is) names a chat tool by alias. It calls the Responses API, with no
/// Idempotency-Key, so the key allows that (`idempotency: optional`, docs/openai.md).
#[tokio::test(flavor = "multi_thread")]
async fn the_agents_sdk_runs_an_agent_with_its_default_model_settings() {
    let default_model = script("agents_default_model", "http://127.0.0.1:9/v1", "unused", None).await;
    let default_model = default_model["model"].as_str().unwrap().to_owned();
    let mock = MockProvider::start().await;
    let var = "VISA_TEST_SDK_KEY_AGENTS";
    let chat = visa_e2e::catalog::TestTool::chat("chat", &mock, var)
        .set("aliases", format!("[{default_model:?}]"))
        .set("max_output_tokens", 4096);
    let catalog = visa_e2e::catalog::catalog(&[chat], var, Some(visa_e2e::mock_provider::CHAT_SECRET));
    let app = TestApp::spawn_with(|c| c.catalog = catalog).await;
    let session = app.account("agents", true, 1_000).await;
    let (_, key) = app.key(&session, json!({ "label": "agent", "idempotency": "optional" })).await;

    let ran = sdk(&app, "agents", &key, None).await;
    assert_eq!(
        (&ran["final_output"], &ran["model"], &ran["responses"]),
        (&json!("hi from the mock"), &json!(default_model), &json!(1)),
        "{ran}"
    );
    let sent = mock.behaviour.last_body.lock().unwrap().clone();
    assert_eq!(
        sent["messages"],
        json!([{ "role": "system", "content": "You are brief." }, { "role": "user", "content": "hello" }]),
        "{sent}"
    );
    let executions = app.get("/v1/api/executions", &session).await.assert_ok(200)["executions"].clone();
    assert_eq!(executions.as_array().unwrap().len(), 1, "one paid call: {executions}");
    assert_eq!(
        (&executions[0]["state"], &executions[0]["charged_micros"]),
        (&json!("succeeded"), &json!(CALL_MICROS.to_string()))
    );
    assert!(app.verify_ledger().await.is_empty());
}

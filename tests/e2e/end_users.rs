//! End users (docs/end-users.md): a paid call names the end user it is made for — the
//! `X-Visa-End-User` header on execute, OpenAI's `user` on the OpenAI surface, `_meta` on MCP
//! (`mcp.rs`) — and it is kept on the execution and in its receipt exactly as sent, never cut
//! (129 characters are refused, nothing charged), part of the request an Idempotency-Key
//! names, and never sent to the provider.

use reqwest::Method;
use serde_json::{Value, json};
use visa_e2e::TestApp;
use visa_e2e::mock_provider::{MockProvider, chat_catalog};

/// A chat completion on the OpenAI surface with a fresh Idempotency-Key.
async fn chat(app: &TestApp, key: &str, body: Value) -> visa_e2e::Reply {
    let idempotency_key = uuid::Uuid::new_v4().to_string();
    let headers = [("Authorization", format!("Bearer {key}")), ("Idempotency-Key", idempotency_key)];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    app.call(Method::POST, "/v1/openai/chat/completions", None, Some(body), &headers).await
}

/// An echo call made for `end_user` with `idempotency_key`.
async fn echo_for(app: &TestApp, key: &str, end_user: &str, idempotency_key: &str) -> visa_e2e::Reply {
    let headers = [("X-Api-Key", key), ("Idempotency-Key", idempotency_key), ("X-Visa-End-User", end_user)];
    app.call(Method::POST, "/v1/api/tools/echo/execute", None, Some(json!({ "input": {} })), &headers).await
}

#[tokio::test]
async fn the_end_user_of_a_call_is_kept_as_sent_and_is_part_of_its_request() {
    let app = TestApp::spawn().await;
    let (session, _, key) = app.funded_key("platform").await;
    let before = app.balance_micros(&session).await;
    let first = uuid::Uuid::new_v4().to_string();
    let done = echo_for(&app, &key, "customer-42", &first).await;
    let done = done.assert_ok(200).clone();
    assert_eq!(done["receipt"]["end_user"], "customer-42", "{done}");
    let execution = app.get(&format!("/v1/api/executions/{}", done["execution_id"].as_str().unwrap()), &session).await;
    assert_eq!(execution.assert_ok(200)["end_user"], "customer-42");
    assert_eq!(execution.body["receipt"]["end_user"], "customer-42");

    // The same Idempotency-Key: for the same end user a replay, for another a different request.
    let replay = echo_for(&app, &key, "customer-42", &first).await;
    assert_eq!(replay.assert_ok(200)["execution_id"], done["execution_id"]);
    echo_for(&app, &key, "customer-43", &first).await.assert_error(409, "IDEMPOTENT_REPLAY");

    // 128 characters (not bytes) are kept as sent; 129 are refused, not cut. (HTTP itself drops
    // a header value's leading and trailing spaces; inner ones are kept.)
    let longest = format!("user {}", "é".repeat(123));
    let kept = echo_for(&app, &key, &longest, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(kept.assert_ok(200)["receipt"]["end_user"], json!(longest));
    let charged_so_far = app.balance_micros(&session).await;
    for refused in ["é".repeat(129), "tab\there".to_owned()] {
        let answer = echo_for(&app, &key, &refused, &uuid::Uuid::new_v4().to_string()).await;
        assert!(answer.assert_error(400, "INVALID_REQUEST")["error"].as_str().unwrap().contains("end user"));
    }
    assert_eq!(app.balance_micros(&session).await, charged_so_far, "nothing charged for a refused end user");
    assert_eq!(before - charged_so_far, 2 * 10_000, "two calls charged");
    // Without the header a call has no end user (and its receipt no member for it).
    let plain = app.execute(&key, "echo", json!({})).await;
    assert!(plain.assert_ok(200)["receipt"].get("end_user").is_none(), "{}", plain.body);
    let listed = app.get("/v1/api/executions?limit=1", &session).await;
    assert_eq!(listed.assert_ok(200)["executions"][0]["end_user"], json!(null));
}

#[tokio::test]
async fn openais_user_names_the_end_user_and_never_reaches_the_provider() {
    let mock = MockProvider::start().await;
    let catalog = chat_catalog(&mock, "VISA_TEST_END_USER_KEY");
    let app = TestApp::spawn_with(|c| c.catalog = catalog).await;
    let (session, _, key) = app.funded_key("platform").await;
    let body = json!({ "model": "chat", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 50, "user": "end-user-7" });
    let completion = chat(&app, &key, body).await;
    assert_eq!(completion.status.as_u16(), 200, "{}", completion.body);
    let completion = completion.body.clone();
    assert_eq!(completion["visa"]["receipt"]["end_user"], "end-user-7", "{completion}");
    let sent: Value = mock.behaviour.last_body.lock().unwrap().clone();
    assert!(sent.get("user").is_none() && sent["messages"][0]["content"] == "hi", "the provider got no user: {sent}");
    let execution = app
        .get(&format!("/v1/api/executions/{}", completion["visa"]["execution_id"].as_str().unwrap()), &session)
        .await;
    assert_eq!(execution.assert_ok(200)["end_user"], "end-user-7");
    // A user that is not a string, or too long, is refused in OpenAI's shape.
    for user in [json!(7), json!("u".repeat(129))] {
        let body = json!({ "model": "chat", "messages": [{ "role": "user", "content": "hi" }], "user": user });
        let refused = chat(&app, &key, body).await;
        assert_eq!(
            (refused.status.as_u16(), refused.body["error"]["code"].as_str()),
            (400, Some("INVALID_REQUEST")),
            "{}",
            refused.body
        );
    }
}

#[tokio::test]
async fn a_key_that_requires_an_end_user_refuses_calls_without_one_and_charges_nothing() {
    let mock = MockProvider::start().await;
    let catalog = chat_catalog(&mock, "VISA_TEST_END_USER_KEY_2");
    let app = TestApp::spawn_with(|c| c.catalog = catalog).await;
    let (session, _, _) = app.funded_key("platform").await;
    let (id, key) = app.key(&session, json!({ "label": "shared", "end_user": "required" })).await;
    assert_eq!(app.get(&format!("/v1/api/keys/{id}"), &session).await.assert_ok(200)["end_user"], "required");
    let before = app.balance_micros(&session).await;
    let refused = app.execute(&key, "echo", json!({})).await;
    assert!(refused.assert_error(400, "INVALID_REQUEST")["error"].as_str().unwrap().contains("requires an end user"));
    let body = json!({ "model": "chat", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 50 });
    let openai = chat(&app, &key, body).await;
    assert_eq!((openai.status.as_u16(), openai.body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST")));
    assert_eq!((app.balance_micros(&session).await, mock.calls()), (before, 0), "nothing held, nothing sent");
    // Named, it runs; made optional again, a call without one runs too.
    echo_for(&app, &key, "customer-1", &uuid::Uuid::new_v4().to_string()).await.assert_ok(200);
    app.patch(&format!("/v1/api/keys/{id}"), &session, json!({ "end_user": "optional" })).await.assert_ok(200);
    app.execute(&key, "echo", json!({})).await.assert_ok(200);
    let bad = json!({ "end_user": "sometimes" });
    app.patch(&format!("/v1/api/keys/{id}"), &session, bad).await.assert_error(400, "INVALID_REQUEST");
    let audit = app.audit(&session, "?action=key.updated").await;
    assert_eq!(audit[0]["changes"]["end_user"], json!({ "before": "required", "after": "optional" }));
}

/// A tool whose catalog entry says `pass_end_user = true` sends the end user upstream as
/// OpenAI's `user`, from every surface (here execute's header and the OpenAI surface's field).
#[tokio::test]
async fn a_tool_may_pass_the_end_user_on_when_its_catalog_entry_says_so() {
    use visa_e2e::catalog::{TestTool, catalog};
    let mock = MockProvider::start().await;
    let var = "VISA_TEST_END_USER_KEY_3";
    let tools = [TestTool::chat("chat", &mock, var).set("pass_end_user", true), TestTool::builtin("echo", "echo")];
    let catalog = catalog(&tools, var, Some(visa_e2e::mock_provider::CHAT_SECRET));
    let app = TestApp::spawn_with(|c| c.catalog = catalog).await;
    let (_, _, key) = app.funded_key("platform").await;
    let body = json!({ "model": "chat", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 50, "user": "end-user-8" });
    assert_eq!(chat(&app, &key, body).await.status.as_u16(), 200);
    assert_eq!(mock.behaviour.last_body.lock().unwrap()["user"], "end-user-8");
    let input = json!({ "input": { "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 50 } });
    let idempotency_key = uuid::Uuid::new_v4().to_string();
    let headers =
        [("X-Api-Key", key.as_str()), ("Idempotency-Key", idempotency_key.as_str()), ("X-Visa-End-User", "end-user-9")];
    app.call(Method::POST, "/v1/api/tools/chat/execute", None, Some(input.clone()), &headers).await.assert_ok(200);
    assert_eq!(mock.behaviour.last_body.lock().unwrap()["user"], "end-user-9");
    // Without an end user, nothing is sent for it.
    app.execute(&key, "chat", input["input"].clone()).await.assert_ok(200);
    assert!(mock.behaviour.last_body.lock().unwrap().get("user").is_none());
}

/// A key's caps on each of its end users (docs/end-users.md): an end user spends at most the
/// daily cap per UTC day and the total cap in all, refused with 429 naming the limit on
/// execute and on the OpenAI surface (nothing sent upstream); the key's other end users, and
/// calls naming none, are not held back; the key reports an end user's budget; clearing a cap
/// lifts it, audited.
#[tokio::test]
async fn each_end_user_of_a_key_spends_at_most_the_keys_caps_on_end_users() {
    let mock = MockProvider::start().await;
    let catalog = chat_catalog(&mock, "VISA_TEST_END_USER_KEY_4");
    let app = TestApp::spawn_with(|c| c.catalog = catalog).await;
    let (session, _, _) = app.funded_key("platform").await;
    let fields = json!({
        "label": "shared", "daily_cap_cents": 100, "end_user_daily_cap_cents": 3, "end_user_total_cap_cents": 5,
    });
    let (id, key) = app.key(&session, fields).await;
    let view = app.get(&format!("/v1/api/keys/{id}"), &session).await.assert_ok(200).clone();
    assert_eq!((&view["end_user_daily_cap_cents"], &view["end_user_total_cap_cents"]), (&json!(3), &json!(5)));
    // Noon UTC on the server's clock, so the daily refusal's wait is about 12 hours.
    let now = app.clock.now().unix_timestamp();
    app.clock.advance(time::Duration::seconds(43_200 - now.rem_euclid(86_400)));
    let call = |user: &'static str| {
        let (app, key) = (&app, key.clone());
        async move { echo_for(app, &key, user, &uuid::Uuid::new_v4().to_string()).await }
    };
    for _ in 0..3 {
        call("alice").await.assert_ok(200);
    }
    let refused = call("alice").await;
    let body = refused.assert_error(429, "RATE_LIMITED").clone();
    assert_eq!((&body["limit"], &body["retryable"]), (&json!("end_user_daily_cap"), &json!(true)), "{body}");
    // Until the next 00:00 UTC: 12 hours, less the seconds the server's clock (real time plus the
    // test's offset) moved since noon.
    let wait = body["retry_after"].as_i64().unwrap();
    assert!((43_140..=43_200).contains(&wait), "{body}");
    assert!(body["resets_at"].as_str().unwrap().ends_with("T00:00:00Z"), "{body}");
    call("bob").await.assert_ok(200);
    app.execute(&key, "echo", json!({})).await.assert_ok(200);
    // OpenAI's `user` is the same end user: refused in OpenAI's shape, the provider never asked.
    let chat_body =
        json!({ "model": "chat", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 5, "user": "alice" });
    let openai = chat(&app, &key, chat_body).await;
    assert_eq!(openai.status.as_u16(), 429, "{}", openai.body);
    assert_eq!(
        (&openai.body["error"]["code"], &openai.body["error"]["limit"]),
        (&json!("RATE_LIMITED"), &json!("end_user_daily_cap"))
    );
    assert_eq!(mock.calls(), 0);
    let budget = |user: &'static str| {
        let (app, key) = (&app, key.clone());
        async move { app.get(&format!("/v1/api/key?end_user={user}"), &key).await.assert_ok(200).clone() }
    };
    let b = budget("alice").await;
    assert_eq!(
        (&b["end_user"]["id"], &b["end_user"]["spent_today_cents"], &b["end_user"]["daily_cap_cents"]),
        (&json!("alice"), &json!(3), &json!(3)),
        "{b}"
    );
    assert_eq!((&b["spendable_cents"], &b["limited_by"]), (&json!(0), &json!("end_user_daily_cap")), "{b}");
    let b = budget("carol").await;
    assert_eq!(
        (&b["spendable_cents"], &b["limited_by"], &b["end_user"]["spent_total_cents"]),
        (&json!(3), &json!("end_user_daily_cap"), &json!(0)),
        "an end user never seen has the whole room: {b}"
    );
    assert_eq!(
        app.get("/v1/api/key", &key).await.assert_ok(200)["end_user"],
        json!(null),
        "no end user asked, none shown"
    );
    let long = "x".repeat(129);
    app.get(&format!("/v1/api/key?end_user={long}"), &key).await.assert_error(400, "INVALID_REQUEST");

    // The next day the daily cap has room again, but the total cap (5) lets only 2 more through,
    // and it does not reset.
    app.clock.advance(time::Duration::days(1));
    for _ in 0..2 {
        call("alice").await.assert_ok(200);
    }
    let body = call("alice").await.assert_error(429, "RATE_LIMITED").clone();
    assert_eq!(
        (&body["limit"], body.get("resets_at"), &body["retryable"]),
        (&json!("end_user_total_cap"), None, &json!(false)),
        "{body}"
    );
    let b = budget("alice").await;
    assert_eq!(
        (&b["end_user"]["spent_total_cents"], &b["limited_by"], &b["resets_at"]),
        (&json!(5), &json!("end_user_total_cap"), &json!(null)),
        "{b}"
    );

    // Cleared, the total cap no longer holds her back; the change is audited.
    app.patch(&format!("/v1/api/keys/{id}"), &session, json!({ "end_user_total_cap_cents": null }))
        .await
        .assert_ok(200);
    call("alice").await.assert_ok(200);
    let audit = app.audit(&session, "?action=key.updated").await;
    assert_eq!(audit[0]["changes"]["end_user_total_cap_cents"], json!({ "before": 5, "after": null }));
    assert!(app.verify_ledger().await.is_empty());
}

//! Key authentication and authorization on `POST /v1/api/tools/:tool/execute`: every
//! error code of the contract's order, revocation and rotation taking effect at once, and the
//! success envelope of the builtin tools.

use reqwest::Method;
use serde_json::{Value, json};
use visa_e2e::{OPERATOR_TOKEN, TestApp, rfc3339_in};

#[tokio::test]
async fn echo_answers_with_the_tool_execution_envelope() {
    let app = TestApp::spawn().await;
    let (_, _, key) = app.funded_key("octocat").await;
    let reply = app.execute(&key, "builtin-echo", json!({ "hello": "world" })).await;
    let body = reply.assert_ok(200);
    assert_eq!(body["object"], "tool_execution");
    assert_eq!(body["tool"], "echo", "aliases answer with the canonical id");
    assert_eq!(body["result"], json!({ "hello": "world" }));
    assert!(body["usage"]["charged_micros"].is_string());
    assert!(body["usage"]["charged_cents"].is_i64());
    assert!(body["execution_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(body.get("receipt").is_some());
}

#[tokio::test]
async fn missing_and_malformed_keys() {
    let app = TestApp::spawn().await;
    let (_, _, key) = app.funded_key("octocat").await;
    let idem = uuid::Uuid::new_v4().to_string();
    let body = Some(json!({ "input": {} }));
    let no_key = app.call(Method::POST, "/v1/api/tools/echo/execute", None, body, &[("Idempotency-Key", &idem)]).await;
    no_key.assert_error(401, "AUTH_REQUIRED");

    // One character changed: the checksum fails.
    let mut tampered = key.clone().into_bytes();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    app.execute(&tampered, "echo", json!({})).await.assert_error(401, "AUTH_INVALID");
    app.execute("VisaKey_live_garbage", "echo", json!({})).await.assert_error(401, "AUTH_INVALID");
    app.execute("sk-something-else", "echo", json!({})).await.assert_error(401, "AUTH_INVALID");

    // Also accepted as a bearer token.
    let reply = app
        .call(
            Method::POST,
            "/v1/api/tools/echo/execute",
            Some(&key),
            Some(json!({ "input": {} })),
            &[("Idempotency-Key", &idem)],
        )
        .await;
    reply.assert_ok(200);
}

#[tokio::test]
async fn a_well_formed_but_unknown_key_is_invalid() {
    let app = TestApp::spawn().await;
    let other = TestApp::spawn().await;
    let (_, _, foreign) = other.funded_key("octocat").await;
    app.execute(&foreign, "echo", json!({})).await.assert_error(401, "AUTH_INVALID");
}

#[tokio::test]
async fn environment_mismatch_both_ways() {
    let production = TestApp::spawn().await;
    let preview = TestApp::spawn_preview().await;
    let (_, _, live) = production.funded_key("octocat").await;
    let (_, _, test) = preview.funded_key("octocat").await;
    assert!(live.starts_with("VisaKey_live_") && test.starts_with("VisaKey_test_"));
    production.execute(&test, "echo", json!({})).await.assert_error(401, "KEY_ENVIRONMENT_MISMATCH");
    preview.execute(&live, "echo", json!({})).await.assert_error(401, "KEY_ENVIRONMENT_MISMATCH");
    preview.execute(&test, "echo", json!({ "a": 1 })).await.assert_ok(200);
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 100).await;
    let (id, key) = app.key(&session, json!({ "label": "short", "expires_at": rfc3339_in(1) })).await;
    app.execute(&key, "echo", json!({})).await.assert_ok(200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    app.execute(&key, "echo", json!({})).await.assert_error(403, "KEY_EXPIRED");
    assert_eq!(app.get(&format!("/v1/api/keys/{id}"), &session).await.body["status"], "expired");
}

#[tokio::test]
async fn source_ip_allowlist() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 100).await;
    let (_, outside) = app.key(&session, json!({ "label": "office", "allowed_cidrs": ["10.0.0.0/8"] })).await;
    app.execute(&outside, "echo", json!({})).await.assert_error(403, "KEY_SOURCE_IP_DENIED");
    let (_, inside) = app.key(&session, json!({ "label": "local", "allowed_cidrs": ["127.0.0.0/8"] })).await;
    app.execute(&inside, "echo", json!({})).await.assert_ok(200);
}

#[tokio::test]
async fn tool_checks_in_order() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 100).await;
    let (_, key) = app.key(&session, json!({ "label": "echo-only", "allowed_tools": ["echo"] })).await;
    app.execute(&key, "no-such-tool", json!({})).await.assert_error(404, "TOOL_NOT_FOUND");
    app.execute(&key, "sleep", json!({})).await.assert_error(403, "TOOL_NOT_PERMITTED");
    app.execute(&key, "echo", json!({})).await.assert_ok(200);

    let (_, read_only) = app.key(&session, json!({ "label": "reader", "read_only": true })).await;
    app.execute(&read_only, "echo", json!({})).await.assert_error(403, "FORBIDDEN");
}

#[tokio::test]
async fn unapproved_accounts_cannot_execute_until_approved() {
    let app = TestApp::spawn().await;
    let session = app.account("pending", false, 100).await;
    let (_, key) = app.key(&session, json!({ "label": "k" })).await;
    app.execute(&key, "echo", json!({})).await.assert_error(403, "ACCOUNT_NOT_APPROVED");
    app.patch("/v1/operator/accounts/pending", OPERATOR_TOKEN, json!({ "approved": true })).await.assert_ok(200);
    app.execute(&key, "echo", json!({})).await.assert_ok(200);
    app.patch("/v1/operator/accounts/pending", OPERATOR_TOKEN, json!({ "approved": false })).await.assert_ok(200);
    app.execute(&key, "echo", json!({})).await.assert_error(403, "ACCOUNT_NOT_APPROVED");
}

#[tokio::test]
async fn revocation_and_updates_take_effect_immediately() {
    let app = TestApp::spawn().await;
    let (session, id, key) = app.funded_key("octocat").await;
    app.execute(&key, "echo", json!({})).await.assert_ok(200); // now cached
    app.patch(&format!("/v1/api/keys/{id}"), &session, json!({ "allowed_tools": ["sleep"] })).await.assert_ok(200);
    app.execute(&key, "echo", json!({})).await.assert_error(403, "TOOL_NOT_PERMITTED");
    app.call(Method::DELETE, &format!("/v1/api/keys/{id}"), Some(&session), None, &[]).await.assert_ok(200);
    app.execute(&key, "sleep", json!({ "ms": 1 })).await.assert_error(401, "AUTH_INVALID");
}

#[tokio::test]
async fn rotation_without_grace_kills_the_old_secret_at_once() {
    let app = TestApp::spawn().await;
    let (session, id, old) = app.funded_key("octocat").await;
    app.execute(&old, "echo", json!({})).await.assert_ok(200);
    let rotated = app.post(&format!("/v1/api/keys/{id}/rotate"), &session, json!({})).await;
    let new = rotated.body["key"].as_str().unwrap().to_owned();
    app.execute(&old, "echo", json!({})).await.assert_error(401, "AUTH_INVALID");
    app.execute(&new, "echo", json!({})).await.assert_ok(200);
}

#[tokio::test]
async fn rotation_with_grace_keeps_both_secrets_until_it_ends() {
    let app = TestApp::spawn().await;
    let (session, id, old) = app.funded_key("octocat").await;
    let rotated = app.post(&format!("/v1/api/keys/{id}/rotate"), &session, json!({ "grace_period_seconds": 1 })).await;
    let new = rotated.body["key"].as_str().unwrap().to_owned();
    app.execute(&old, "echo", json!({})).await.assert_ok(200);
    app.execute(&new, "echo", json!({})).await.assert_ok(200);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    app.execute(&old, "echo", json!({})).await.assert_error(401, "AUTH_INVALID");
    app.execute(&new, "echo", json!({})).await.assert_ok(200);
}

#[tokio::test]
async fn a_grace_can_be_ended_early_by_revoking_the_old_secret() {
    let app = TestApp::spawn().await;
    let (session, id, old) = app.funded_key("octocat").await;
    let rotated =
        app.post(&format!("/v1/api/keys/{id}/rotate"), &session, json!({ "grace_period_seconds": 3600 })).await;
    let new = rotated.body["key"].as_str().unwrap().to_owned();
    let (new_secret, old_secret) =
        (rotated.body["secrets"][0]["id"].as_i64().unwrap(), rotated.body["secrets"][1]["id"].as_i64().unwrap());
    app.execute(&old, "echo", json!({})).await.assert_ok(200);
    let path = |secret: i64| format!("/v1/api/keys/{id}/secrets/{secret}/revoke");
    app.post(&path(new_secret), &session, json!({})).await.assert_error(409, "CONFLICT");
    let reply = app.post(&path(old_secret), &session, json!({})).await;
    assert_eq!(reply.assert_ok(200)["secrets"][1]["status"], "revoked");
    app.execute(&old, "echo", json!({})).await.assert_error(401, "AUTH_INVALID");
    app.execute(&new, "echo", json!({})).await.assert_ok(200);
    app.post(&path(999_999), &session, json!({})).await.assert_error(404, "KEY_NOT_FOUND");
    let other = app.account("mallory", true, 0).await;
    app.post(&path(old_secret), &other, json!({})).await.assert_error(404, "KEY_NOT_FOUND");
}

#[tokio::test]
async fn idempotency_key_and_body_are_validated() {
    let app = TestApp::spawn().await;
    let (_, _, key) = app.funded_key("octocat").await;
    let body = json!({ "input": {} });
    for bad in ["", "not-a-uuid", "6ba7b810-9dad-11d1-80b4-00c04fd430c8" /* v1 */] {
        app.execute_with(&key, "echo", body.clone(), bad).await.assert_error(400, "INVALID_REQUEST");
    }
    let upper = uuid::Uuid::new_v4().to_string().to_uppercase();
    app.execute_with(&key, "echo", body, &upper).await.assert_ok(200);
    let missing = app
        .call(Method::POST, "/v1/api/tools/echo/execute", None, Some(json!({ "input": {} })), &[("X-Api-Key", &key)])
        .await;
    missing.assert_error(400, "INVALID_REQUEST");

    let idem = uuid::Uuid::new_v4().to_string();
    for field in ["max_cents", "dry_run", "stream", "messages"] {
        let reply = app.execute_with(&key, "echo", json!({ "input": {}, field: 1 }), &idem).await;
        let body = reply.assert_error(400, "INVALID_REQUEST");
        assert!(body["error"].as_str().unwrap().contains(field), "names {field}: {body}");
    }
    let reply = app.execute_with(&key, "echo", json!({}), &idem).await;
    assert!(reply.assert_error(400, "INVALID_REQUEST")["error"].as_str().unwrap().contains("input"));
    app.execute_with(&key, "echo", json!({ "input": [1] }), &idem).await.assert_error(400, "INVALID_REQUEST");
}

#[tokio::test]
async fn builtin_sleep_and_fail() {
    let app = TestApp::spawn().await;
    let (_, _, key) = app.funded_key("octocat").await;
    let reply = app.execute(&key, "sleep", json!({ "ms": 20 })).await;
    assert_eq!(reply.assert_ok(200)["result"], json!({ "slept_ms": 20 }));
    app.execute(&key, "sleep", json!({ "ms": 10001 })).await.assert_error(400, "INVALID_REQUEST");
    let failed = app.execute(&key, "fail", json!({ "status": 503 })).await;
    assert_eq!(failed.assert_error(502, "UPSTREAM_ERROR")["retryable"], true);
    // The builtin maps a status by the same rule as a real provider: a 4xx is the caller's.
    let failed = app.execute(&key, "fail", json!({ "status": 400 })).await;
    assert_eq!(failed.assert_error(400, "INVALID_REQUEST")["retryable"], false);
    let failed = app.execute(&key, "fail", json!({ "status": 401 })).await;
    assert_eq!(failed.assert_error(503, "TOOL_UNAVAILABLE")["retryable"], false);
}

#[tokio::test]
async fn provider_tools_without_their_secret_are_unavailable() {
    let app = TestApp::spawn().await;
    let (_, _, key) = app.funded_key("octocat").await;
    let reply = app.execute(&key, "fal-flux-pro", json!({ "prompt": "a cat" })).await;
    let body = reply.assert_error(503, "TOOL_UNAVAILABLE");
    assert!(body["error"].as_str().unwrap().contains("FAL_KEY"), "{body}");
}

/// The store's commit counter, from the operator's metrics.
async fn commits(app: &TestApp) -> u64 {
    app.metric("visa_store_commits_total").await.expect("the counter") as u64
}

#[tokio::test]
async fn fifty_authenticated_requests_cost_at_most_two_writes_of_last_used() {
    let app = TestApp::spawn().await;
    let (session, id, key) = app.funded_key("octocat").await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await; // let earlier writes settle
    let before = commits(&app).await;
    for _ in 0..50 {
        app.get("/v1/api/balance", &key).await.assert_ok(200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await; // one flush
    let writes = commits(&app).await - before;
    assert!((1..=2).contains(&writes), "50 requests caused {writes} commits");
    let fetched = app.get(&format!("/v1/api/keys/{id}"), &session).await;
    assert!(fetched.body["last_used_at"].is_string());
    app.call(Method::GET, "/metrics", Some(&session), None, &[]).await.assert_error(401, "AUTH_INVALID");
}

#[tokio::test]
async fn last_used_is_recorded_without_a_write_per_request() {
    let app = TestApp::spawn().await;
    let (session, id, key) = app.funded_key("octocat").await;
    assert_eq!(app.get(&format!("/v1/api/keys/{id}"), &session).await.body["last_used_at"], Value::Null);
    app.execute(&key, "echo", json!({})).await.assert_ok(200);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let fetched = app.get(&format!("/v1/api/keys/{id}"), &session).await;
    assert!(fetched.body["last_used_at"].is_string(), "{}", fetched.body);
    assert_eq!(fetched.body["last_used_ip"], "127.0.0.1");
    assert_eq!(fetched.body["secrets"][0]["last_used_ip"], "127.0.0.1");
}

/// Headers that decide who pays or what is charged once must be sent once: two
/// Idempotency-Keys, two X-Api-Keys, or an X-Api-Key with a different Authorization key are
/// refused before anything is charged (a proxy reading the other one would disagree with us).
/// The RFC 8941 string form of an Idempotency-Key is the same key as the bare one.
#[tokio::test]
async fn ambiguous_credentials_and_keys_are_refused() {
    let app = TestApp::spawn().await;
    let (session, _, key) = app.funded_key("octocat").await;
    let (_, other) = app.key(&session, json!({ "label": "other" })).await;
    let before = app.balance_micros(&session).await;
    let send = |headers: Vec<(&'static str, String)>| {
        let mut request =
            reqwest::Client::new().post(app.url("/v1/api/tools/echo/execute")).json(&json!({ "input": { "n": 1 } }));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let idem = || uuid::Uuid::new_v4().to_string();
    let cases = [
        vec![("X-Api-Key", key.clone()), ("Idempotency-Key", idem()), ("Idempotency-Key", idem())],
        vec![("X-Api-Key", key.clone()), ("X-Api-Key", other.clone()), ("Idempotency-Key", idem())],
        vec![("X-Api-Key", key.clone()), ("Authorization", format!("Bearer {other}")), ("Idempotency-Key", idem())],
    ];
    for headers in cases {
        let (status, body) = send(headers).await;
        assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_REQUEST")), "{body}");
    }
    assert_eq!(app.balance_micros(&session).await, before, "nothing was charged");
    // The same key in both headers is not ambiguous.
    let same =
        vec![("X-Api-Key", key.clone()), ("Authorization", format!("Bearer {key}")), ("Idempotency-Key", idem())];
    assert_eq!(send(same).await.0, 200);
    // `"<uuid>"` (RFC 8941) and `<uuid>` are one Idempotency-Key: the second is a replay.
    let uuid = idem();
    let quoted = vec![("X-Api-Key", key.clone()), ("Idempotency-Key", format!("\"{uuid}\""))];
    let (status, first) = send(quoted).await;
    assert_eq!(status, 200, "{first}");
    let bare = app.execute_with(&key, "echo", json!({ "input": { "n": 1 } }), &uuid).await;
    assert_eq!(bare.headers["idempotent-replayed"], "true");
    assert_eq!(bare.body, first);
}

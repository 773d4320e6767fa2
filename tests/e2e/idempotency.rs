//! Exactly-once charging through the Idempotency-Key, over HTTP and under real concurrency.

use futures::future::join_all;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;
use visa_e2e::TestApp;

const CENT: i64 = 10_000;

#[tokio::test]
async fn a_completed_request_is_replayed_byte_for_byte_and_charged_once() {
    let app = TestApp::spawn().await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let idem = Uuid::new_v4().to_string();
    let body = json!({ "input": { "text": "hello" } });
    let client = reqwest::Client::new();
    let send = || {
        client
            .post(app.url("/v1/api/tools/echo/execute"))
            .header("X-Api-Key", &key)
            .header("Idempotency-Key", &idem)
            .json(&body)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_bytes = first.bytes().await.unwrap();
    for _ in 0..3 {
        let again = send().await.unwrap();
        assert_eq!(again.status(), 200);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.bytes().await.unwrap(), first_bytes);
    }
    // Same input with keys in another order is the same request.
    let reordered = app.execute_with(&key, "builtin-echo", json!({ "input": { "text": "hello" } }), &idem).await;
    assert_eq!(reordered.headers["idempotent-replayed"], "true");
    assert_eq!(app.balance_micros(&session).await, before - CENT);
}

#[tokio::test]
async fn a_different_request_with_the_same_key_is_refused() {
    let app = TestApp::spawn().await;
    let (session, _, key) = app.funded_key("octocat").await;
    let idem = Uuid::new_v4().to_string();
    app.execute_with(&key, "echo", json!({ "input": { "n": 1 } }), &idem).await.assert_ok(200);
    let before = app.balance_micros(&session).await;
    let other_body = app.execute_with(&key, "echo", json!({ "input": { "n": 2 } }), &idem).await;
    assert_eq!(other_body.assert_error(409, "IDEMPOTENT_REPLAY")["retryable"], false);
    let other_tool = app.execute_with(&key, "sleep", json!({ "input": { "n": 1 } }), &idem).await;
    other_tool.assert_error(409, "IDEMPOTENT_REPLAY");
    assert_eq!(app.balance_micros(&session).await, before);
}

#[tokio::test]
async fn keys_have_their_own_idempotency_scope() {
    let app = TestApp::spawn().await;
    let (session, _, key_a) = app.funded_key("octocat").await;
    let (_, key_b) = app.key(&session, json!({ "label": "b" })).await;
    let before = app.balance_micros(&session).await;
    let idem = Uuid::new_v4().to_string();
    let a = app.execute_with(&key_a, "echo", json!({ "input": {} }), &idem).await;
    let b = app.execute_with(&key_b, "echo", json!({ "input": {} }), &idem).await;
    assert_ne!(a.assert_ok(200)["execution_id"], b.assert_ok(200)["execution_id"]);
    assert_eq!(app.balance_micros(&session).await, before - 2 * CENT);
}

#[tokio::test]
async fn a_running_request_answers_in_flight() {
    let app = TestApp::spawn().await;
    let (_, _, key) = app.funded_key("octocat").await;
    let idem = Uuid::new_v4().to_string();
    let body = json!({ "input": { "ms": 800 } });
    let slow = app.execute_with(&key, "sleep", body.clone(), &idem);
    let probe = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.execute_with(&key, "sleep", body.clone(), &idem).await
    };
    let (slow, probe) = tokio::join!(slow, probe);
    slow.assert_ok(200);
    let err = probe.assert_error(409, "IDEMPOTENCY_IN_FLIGHT");
    assert_eq!(err["retryable"], true);
    assert_eq!(err["retry_after"], 1);
    assert_eq!(probe.headers["retry-after"], "1");
    // Once done, the same request is a replay.
    let after = app.execute_with(&key, "sleep", body, &idem).await;
    assert_eq!(after.headers["idempotent-replayed"], "true");
}

#[tokio::test]
async fn racing_duplicates_charge_exactly_once() {
    let app = TestApp::spawn().await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let idem = Uuid::new_v4().to_string();
    let body = json!({ "input": { "ms": 50 } });
    let replies = join_all((0..40).map(|_| app.execute_with(&key, "sleep", body.clone(), &idem))).await;
    let fresh = replies.iter().filter(|r| r.status == 200 && !r.headers.contains_key("idempotent-replayed")).count();
    let replayed = replies.iter().filter(|r| r.headers.contains_key("idempotent-replayed")).count();
    let in_flight = replies.iter().filter(|r| r.body["error_code"] == "IDEMPOTENCY_IN_FLIGHT").count();
    assert_eq!(fresh, 1);
    assert_eq!(fresh + replayed + in_flight, 40);
    assert_eq!(app.balance_micros(&session).await, before - CENT);
    let executions = app.get("/v1/api/executions", &session).await;
    assert_eq!(executions.body["executions"].as_array().unwrap().len(), 1);
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn a_retryable_failure_frees_the_key_and_a_final_one_is_replayed() {
    let app = TestApp::spawn().await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let idem = Uuid::new_v4().to_string();
    let body = json!({ "input": { "status": 503 } });
    for _ in 0..2 {
        let reply = app.execute_with(&key, "fail", body.clone(), &idem).await;
        reply.assert_error(502, "UPSTREAM_ERROR");
        assert!(!reply.headers.contains_key("idempotent-replayed"), "a retry runs again");
    }
    let idem = Uuid::new_v4().to_string();
    let body = json!({ "input": { "status": 422 } });
    let first = app.execute_with(&key, "fail", body.clone(), &idem).await;
    first.assert_error(400, "INVALID_REQUEST");
    let second = app.execute_with(&key, "fail", body, &idem).await;
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert_eq!(second.body, first.body);
    assert_eq!(app.balance_micros(&session).await, before);
}

#[tokio::test]
async fn records_expire_after_the_retention_period() {
    let app = TestApp::spawn_with(|c| c.idempotency_ttl = Duration::from_secs(3600)).await;
    let (session, _, key) = app.funded_key("octocat").await;
    let idem = Uuid::new_v4().to_string();
    app.execute_with(&key, "echo", json!({ "input": { "n": 1 } }), &idem).await.assert_ok(200);
    app.clock.advance(time::Duration::minutes(61));
    let reused = app.execute_with(&key, "echo", json!({ "input": { "n": 2 } }), &idem).await;
    assert!(!reused.assert_ok(200).is_null());
    assert!(!reused.headers.contains_key("idempotent-replayed"));
    assert_eq!(app.get("/v1/api/executions", &session).await.body["executions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_locked_store_answers_unavailable_and_loses_nothing() {
    let app = TestApp::spawn().await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let lock = app.lock_writes();
    let idem = Uuid::new_v4().to_string();
    let body = json!({ "input": { "n": 1 } });
    // The execute path says IDEMPOTENCY_UNAVAILABLE, as the API contract reserves it; a control-plane
    // route says SERVICE_UNAVAILABLE. Both retryable, both having changed nothing.
    let label = json!({ "label": "during the outage" });
    let (reply, control) =
        tokio::join!(app.execute_with(&key, "echo", body.clone(), &idem), app.post("/v1/api/keys", &session, label));
    let err = reply.assert_error(503, "IDEMPOTENCY_UNAVAILABLE");
    assert_eq!(err["retryable"], true);
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(control.assert_error(503, "SERVICE_UNAVAILABLE")["retryable"], true);
    lock.release();
    // The retry with the same Idempotency-Key goes through, charged once.
    app.execute_with(&key, "echo", body, &idem).await.assert_ok(200);
    assert_eq!(app.balance_micros(&session).await, before - CENT);
    let keys = app.get("/v1/api/keys", &session).await;
    assert_eq!(keys.body["keys"].as_array().unwrap().len(), 1, "the refused key was not created");
    assert!(app.verify_ledger().await.is_empty());
}

/// Expiry never frees the key of a call that is still running: a retry after the retention
/// (the clock moved two hours while the first call sleeps) is in flight, not a second charge.
#[tokio::test]
async fn expiry_never_frees_the_key_of_a_running_call() {
    let app = TestApp::spawn_with(|c| c.idempotency_ttl = Duration::from_secs(3600)).await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let idem = Uuid::new_v4().to_string();
    let body = json!({ "input": { "ms": 1500 } });
    let first = app.execute_with(&key, "sleep", body.clone(), &idem);
    let retry = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        app.clock.advance(time::Duration::hours(2));
        app.execute_with(&key, "sleep", body.clone(), &idem).await
    };
    let (first, retry) = tokio::join!(first, retry);
    first.assert_ok(200);
    retry.assert_error(409, "IDEMPOTENCY_IN_FLIGHT");
    assert_eq!(app.balance_micros(&session).await, before - CENT, "charged once");
    assert!(app.verify_ledger().await.is_empty());
}

/// A retention shorter than the longest tool timeout (or zero) is refused at start: a record
/// must outlive every call it guards.
#[tokio::test]
async fn a_retention_shorter_than_a_tool_timeout_is_refused_at_start() {
    for ttl in [Duration::from_secs(2), Duration::ZERO] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = visa_server::ServeConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
        config.idempotency_ttl = ttl;
        let error = visa_server::Server::start(config).await.err().expect("refused").to_string();
        assert!(error.contains("retention"), "{error}");
        assert!(!dir.path().join(visa_server::DATABASE_FILE).exists(), "nothing was created");
    }
}

/// Retention deletes an Idempotency-Key record past its window with the answer it replayed
/// (the execution and its ledger entries stay), and never the record of a running call.
#[tokio::test]
async fn retention_sweeps_expired_records_but_never_a_running_one() {
    let app = TestApp::spawn_with(|c| {
        c.idempotency_ttl = Duration::from_secs(3600);
        c.sweep_interval = Duration::from_millis(50);
    })
    .await;
    let (session, _, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let done = Uuid::new_v4().to_string();
    app.execute_with(&key, "echo", json!({ "input": { "n": 1 } }), &done).await.assert_ok(200);
    let running = Uuid::new_v4().to_string();
    let slow = app.execute_with(&key, "sleep", json!({ "input": { "ms": 1200 } }), &running);
    let sweep = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.clock.advance(time::Duration::hours(2));
        tokio::time::sleep(Duration::from_millis(400)).await;
        let counts = |table: &str| app.sql_value(&format!("SELECT COUNT(*) FROM {table}"));
        // The finished call's record and stored answer are gone; the running one's record stays.
        assert_eq!(counts("idempotency_records"), 1, "only the running call's record is kept");
        assert_eq!(counts("execution_responses"), 0);
        assert_eq!(counts("executions"), 2, "executions are kept");
        app.execute_with(&key, "sleep", json!({ "input": { "ms": 1200 } }), &running).await
    };
    let (slow, retry) = tokio::join!(slow, sweep);
    slow.assert_ok(200);
    retry.assert_error(409, "IDEMPOTENCY_IN_FLIGHT");
    assert_eq!(app.balance_micros(&session).await, before - 2 * CENT);
    assert!(app.verify_ledger().await.is_empty());
}

//! `GET /metrics` reports what an operator graphs, and the numbers follow what happened: requests
//! by route template and status, paid-call outcomes by reason, holds in flight, provider latency
//! per tool, open connections, key-cache hits and the store's commit and fsync figures.

use serde_json::json;
use std::time::Duration;
use visa_e2e::{OPERATOR_TOKEN, TestApp};

const EXECUTE: &str = r#"route="/v1/api/tools/{tool}/execute",method="POST""#;

#[tokio::test]
async fn metrics_follow_the_calls_that_were_made() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 10_000).await;
    let (_, key) = app.key(&session, json!({ "label": "metered", "daily_cap_cents": 3 })).await;

    app.execute(&key, "fail", json!({ "status": 503 })).await.assert_error(502, "UPSTREAM_ERROR");
    app.execute(&key, "fail", json!({ "status": 400 })).await.assert_error(400, "INVALID_REQUEST");
    let idempotency = uuid::Uuid::new_v4().to_string();
    let body = json!({ "input": { "n": 1 } });
    app.execute_with(&key, "echo", body.clone(), &idempotency).await.assert_ok(200);
    app.execute_with(&key, "echo", body, &idempotency).await.assert_ok(200);
    app.execute(&key, "echo", json!({})).await.assert_ok(200);

    // A hold in flight shows while its call runs, and is gone once it ends.
    let sleeping = {
        let (app_url, key) = (app.url("/v1/api/tools/sleep/execute"), key.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(app_url)
                .header("X-Api-Key", key)
                .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                .json(&json!({ "input": { "ms": 1500 } }))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.metric("visa_holds_open").await, Some(1.0));
    assert_eq!(app.metric("visa_held_micros").await, Some(10_000.0));
    assert_eq!(sleeping.await.unwrap(), 200);
    assert_eq!(app.metric("visa_holds_open").await, Some(0.0));
    assert_eq!(app.metric("visa_held_micros").await, Some(0.0));

    // The daily cap (3 cents) is spent: refused by reason.
    app.execute(&key, "echo", json!({})).await.assert_error(429, "RATE_LIMITED");
    app.get("/v1/api/no-such-thing/12345", &session).await.assert_error(404, "NOT_FOUND");

    let text = app.metrics().await;
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(value(&format!(r#"visa_http_requests_total{{{EXECUTE},status="200"}}"#)), 4.0);
    assert_eq!(value(&format!(r#"visa_http_requests_total{{{EXECUTE},status="429"}}"#)), 1.0);
    assert_eq!(value(&format!(r#"visa_http_requests_total{{{EXECUTE},status="502"}}"#)), 1.0);
    assert_eq!(value(r#"visa_http_requests_total{route="unmatched",method="other",status="404"}"#), 1.0);
    assert_eq!(value(&format!(r#"visa_http_request_duration_seconds_count{{{EXECUTE}}}"#)), 7.0);
    assert_eq!(value(r#"visa_paid_calls_total{outcome="captured",reason=""}"#), 3.0);
    assert_eq!(value(r#"visa_paid_calls_total{outcome="voided",reason="provider_retryable"}"#), 1.0);
    assert_eq!(value(r#"visa_paid_calls_total{outcome="voided",reason="provider_final"}"#), 1.0);
    assert_eq!(value(r#"visa_paid_calls_total{outcome="idempotent",reason="replay"}"#), 1.0);
    assert_eq!(value(r#"visa_paid_calls_total{outcome="refused",reason="daily_cap"}"#), 1.0);
    assert_eq!(value(r#"visa_provider_duration_seconds_count{tool="echo"}"#), 2.0);
    assert_eq!(value(r#"visa_provider_duration_seconds_count{tool="fail"}"#), 2.0);
    let sleep_seconds = value(r#"visa_provider_duration_seconds_sum{tool="sleep"}"#);
    assert!((1.5..10.0).contains(&sleep_seconds), "{sleep_seconds}");
    // Seven authenticated calls of one key: the first read the store, most of the rest the
    // cache (its entries live a second, so the call after the 1.5 s sleep reads again).
    let (misses, hits) = (value("visa_key_cache_misses_total"), value("visa_key_cache_hits_total"));
    assert_eq!(misses + hits, 7.0);
    assert!((1.0..=2.0).contains(&misses), "{misses}");
    assert!(value("visa_connections_open") >= 1.0, "this scrape's own connection");
    assert!(value("visa_store_commits_total") >= 8.0);
    assert!(value("visa_store_transaction_seconds_count") >= 8.0);
    assert!(value("visa_store_fsync_seconds_count") >= 1.0);
    assert!(text.ends_with("# EOF\n"), "OpenMetrics framing");
    assert!(!text.contains(&key[..20]) && !text.contains("octocat"), "no secret, login or id in metrics");
}

#[tokio::test]
async fn metrics_need_the_operator_token() {
    let app = TestApp::spawn().await;
    let (session, _, key) = app.funded_key("octocat").await;
    for bearer in [session.as_str(), key.as_str(), "wrong"] {
        let reply = reqwest::Client::new().get(app.url("/metrics")).bearer_auth(bearer).send().await.unwrap();
        assert_eq!(reply.status(), 401, "{bearer}");
    }
    let reply = reqwest::Client::new().get(app.url("/metrics")).bearer_auth(OPERATOR_TOKEN).send().await.unwrap();
    assert_eq!(reply.headers()["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

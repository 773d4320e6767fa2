//! The money path over HTTP: charges, caps, balance and rate limits, under real concurrency,
//! with the ledger verified after each scenario.

use futures::future::join_all;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use visa_e2e::{OPERATOR_TOKEN, TestApp};

const CENT: i64 = 10_000;

async fn spent_today(app: &TestApp, session: &str, id: i64) -> i64 {
    app.get(&format!("/v1/api/keys/{id}"), session).await.body["spent_today_cents"].as_i64().unwrap()
}

#[tokio::test]
async fn a_paid_call_charges_its_price_with_a_receipt() {
    let app = TestApp::spawn().await;
    let (session, id, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let reply = app.execute(&key, "echo", json!({ "n": 1 })).await;
    let body = reply.assert_ok(200);
    assert_eq!(body["usage"], json!({ "charged_cents": 1, "charged_micros": "10000" }));
    let receipt = &body["receipt"];
    assert_eq!(receipt["execution_id"], body["execution_id"]);
    assert_eq!(receipt["charged_micros"], "10000");
    assert!(receipt["id"].as_str().unwrap().starts_with("rcpt_"));
    assert!(receipt["created_at"].is_string());
    assert_eq!(app.balance_micros(&session).await, before - CENT);
    assert_eq!(spent_today(&app, &session, id).await, 1);

    let balance = app.get("/v1/api/balance", &key).await;
    let balance = balance.assert_ok(200);
    assert_eq!(balance["held_micros"], "0");
    assert_eq!(balance["available_micros"], balance["balance_micros"]);
    assert_eq!(balance["balance_cents"], 9_999);

    let execution_id = body["execution_id"].as_str().unwrap();
    let execution = app.get(&format!("/v1/api/executions/{execution_id}"), &session).await;
    let execution = execution.assert_ok(200);
    assert_eq!(execution["state"], "succeeded");
    assert_eq!(execution["charged_micros"], "10000");
    assert_eq!(execution["receipt"]["id"], receipt["id"]);
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn sixty_racing_calls_against_a_ten_cent_daily_cap() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 10_000).await;
    let (id, key) = app.key(&session, json!({ "label": "capped", "daily_cap_cents": 10 })).await;
    let before = app.balance_micros(&session).await;

    let replies = join_all((0..60).map(|i| app.execute(&key, "echo", json!({ "i": i })))).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let limited: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!((ok, limited.len()), (10, 50));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let to_midnight = 86_400 - now.rem_euclid(86_400);
    for reply in limited {
        let body = reply.assert_error(429, "RATE_LIMITED");
        assert_eq!(body["retryable"], true);
        let retry_after = body["retry_after"].as_i64().unwrap();
        assert!((retry_after - to_midnight).abs() <= 5, "{retry_after} vs {to_midnight}");
        assert_eq!(reply.headers["retry-after"].to_str().unwrap(), retry_after.to_string());
        // Which limit, and when it resets: the next midnight UTC.
        assert_eq!(body["limit"], "key_daily_cap");
        let resets_at = time::OffsetDateTime::parse(body["resets_at"].as_str().unwrap(), &Rfc3339).unwrap();
        assert_eq!(resets_at.unix_timestamp().rem_euclid(86_400), 0, "{body}");
        assert!((resets_at.unix_timestamp() - (now + to_midnight)).abs() <= 5, "{body}");
        // Retryable, but not by an SDK's prompt retry (it would wait until midnight), unless
        // midnight is within the minute a prompt retry may wait.
        let prompt_retry = retry_after <= 60;
        assert_eq!(reply.headers.get("x-should-retry").is_none(), prompt_retry, "retry after {retry_after} s");
        if !prompt_retry {
            assert_eq!(reply.headers["x-should-retry"], "false");
        }
    }
    assert_eq!(spent_today(&app, &session, id).await, 10);
    assert_eq!(app.balance_micros(&session).await, before - 10 * CENT);
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn total_cap_is_not_retryable() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 10_000).await;
    let (id, key) = app.key(&session, json!({ "label": "lifetime", "total_cap_cents": 3 })).await;
    let replies = join_all((0..12).map(|i| app.execute(&key, "echo", json!({ "i": i })))).await;
    assert_eq!(replies.iter().filter(|r| r.status == 200).count(), 3);
    for reply in replies.iter().filter(|r| r.status != 200) {
        let body = reply.assert_error(429, "RATE_LIMITED");
        assert_eq!(body["retryable"], false);
        assert!(body.get("retry_after").is_none());
        assert_eq!((body["limit"].as_str(), body.get("resets_at")), (Some("key_total_cap"), None), "{body}");
        assert_eq!(reply.headers["x-should-retry"], "false");
    }
    assert_eq!(app.get(&format!("/v1/api/keys/{id}"), &session).await.body["spent_total_cents"], 3);
    // Raising the cap lets the key spend again.
    app.patch(&format!("/v1/api/keys/{id}"), &session, json!({ "total_cap_cents": 4 })).await.assert_ok(200);
    app.execute(&key, "echo", json!({})).await.assert_ok(200);
    app.execute(&key, "echo", json!({})).await.assert_error(429, "RATE_LIMITED");
}

#[tokio::test]
async fn the_balance_never_goes_below_zero() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 5).await;
    let (_, key) = app.key(&session, json!({ "label": "k" })).await;
    let (_, other) = app.key(&session, json!({ "label": "k2" })).await;
    let replies =
        join_all((0..30).map(|i| app.execute(if i % 2 == 0 { &key } else { &other }, "echo", json!({ "i": i })))).await;
    assert_eq!(replies.iter().filter(|r| r.status == 200).count(), 5);
    for reply in replies.iter().filter(|r| r.status != 200) {
        let body = reply.assert_error(429, "RATE_LIMITED");
        assert_eq!(body["retryable"], false);
        assert_eq!((body["limit"].as_str(), body.get("resets_at")), (Some("account_balance"), None), "{body}");
    }
    assert_eq!(app.balance_micros(&session).await, 0);
    // Credit makes it spendable again.
    app.post("/v1/operator/accounts/octocat/credits", OPERATOR_TOKEN, json!({ "amount_cents": 1 }))
        .await
        .assert_ok(200);
    app.execute(&key, "echo", json!({})).await.assert_ok(200);
    assert_eq!(app.balance_micros(&session).await, 0);
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn upstream_failures_charge_nothing() {
    let app = TestApp::spawn().await;
    let (session, id, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    for status in [500, 503, 429, 400, 404] {
        let reply = app.execute(&key, "fail", json!({ "status": status })).await;
        let retryable = status >= 500 || status == 429;
        let body = if retryable {
            reply.assert_error(502, "UPSTREAM_ERROR")
        } else {
            reply.assert_error(400, "INVALID_REQUEST")
        };
        assert_eq!(body["retryable"], json!(retryable));
    }
    assert_eq!(app.balance_micros(&session).await, before);
    assert_eq!(spent_today(&app, &session, id).await, 0);
    let balance = app.get("/v1/api/balance", &session).await;
    assert_eq!(balance.body["held_micros"], "0");
    let failed = app.get("/v1/api/executions?state=failed", &session).await;
    assert_eq!(failed.body["executions"].as_array().unwrap().len(), 2);
    let voided = app.get("/v1/api/executions?state=voided", &session).await;
    assert_eq!(voided.body["executions"].as_array().unwrap().len(), 3);
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn per_key_rate_limit() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 1_000).await;
    let (id, key) = app.key(&session, json!({ "label": "slow", "rate_limit_per_second": 2 })).await;
    assert_eq!(app.get(&format!("/v1/api/keys/{id}"), &session).await.body["rate_limit_per_second"], 2);
    let replies = join_all((0..5).map(|i| app.execute(&key, "echo", json!({ "i": i })))).await;
    assert_eq!(replies.iter().filter(|r| r.status == 200).count(), 2);
    for reply in replies.iter().filter(|r| r.status != 200) {
        let body = reply.assert_error(429, "RATE_LIMITED");
        assert_eq!(body["retryable"], true);
        assert_eq!(body["retry_after"], 1);
        assert_eq!(body["limit"], "key_rate");
        let resets_at = time::OffsetDateTime::parse(body["resets_at"].as_str().unwrap(), &Rfc3339).unwrap();
        let in_seconds = (resets_at - time::OffsetDateTime::now_utc()).whole_seconds();
        assert!((0..=2).contains(&in_seconds), "resets within the second: {body}");
        assert!(reply.headers.contains_key("retry-after"));
        assert!(!reply.headers.contains_key("x-should-retry"), "an SDK may retry a rate limit");
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.execute(&key, "echo", json!({})).await.assert_ok(200);
    for bad in [0, -1, 100_001] {
        let reply = app.post("/v1/api/keys", &session, json!({ "label": "x", "rate_limit_per_second": bad })).await;
        reply.assert_error(400, "INVALID_REQUEST");
    }
}

#[tokio::test]
async fn preview_is_free_deterministic_and_still_capped() {
    let app = TestApp::spawn_preview().await;
    let session = app.account("tester", true, 0).await;
    let (id, key) = app.key(&session, json!({ "label": "preview", "daily_cap_cents": 7 })).await;
    assert!(key.starts_with("VisaKey_test_"));
    let first = app.execute(&key, "or-gpt-4o-mini", json!({ "messages": [{ "role": "user", "content": "hi" }] })).await;
    let second =
        app.execute(&key, "or-gpt-4o-mini", json!({ "messages": [{ "role": "user", "content": "hi" }] })).await;
    let first = first.assert_ok(200).clone();
    assert_eq!(first["usage"], json!({ "charged_cents": 0, "charged_micros": "0" }));
    assert_eq!(first["receipt"], Value::Null);
    assert_eq!(first["result"], second.body["result"], "deterministic sandbox sample");
    assert_eq!(first["result"]["choices"][0]["message"]["content"], "Hello from the sandbox.");
    // The catalog price counts against the caps: or-gpt-4o-mini costs 1 cent a call, and a
    // 7-cent cap allows 7 calls.
    assert_eq!(spent_today(&app, &session, id).await, 2);
    let hi = json!({ "messages": [{ "role": "user", "content": "hi" }] });
    for _ in 0..5 {
        app.execute(&key, "or-gpt-4o-mini", hi.clone()).await.assert_ok(200);
    }
    app.execute(&key, "or-gpt-4o-mini", hi).await.assert_error(429, "RATE_LIMITED");
    // Preview checks input like production does.
    app.execute(&key, "or-gpt-4o-mini", json!({})).await.assert_error(400, "INVALID_REQUEST");
    assert_eq!(app.balance_micros(&session).await, 0);
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn executions_are_listed_per_account_and_per_key() {
    let app = TestApp::spawn().await;
    let (session, _, key_a) = app.funded_key("octocat").await;
    let (_, key_b) = app.key(&session, json!({ "label": "b" })).await;
    for _ in 0..3 {
        app.execute(&key_a, "echo", json!({})).await.assert_ok(200);
    }
    app.execute(&key_b, "echo", json!({})).await.assert_ok(200);
    let all = app.get("/v1/api/executions", &session).await;
    assert_eq!(all.assert_ok(200)["executions"].as_array().unwrap().len(), 4);
    let mine = app.get("/v1/api/executions", &key_b).await;
    let mine = mine.assert_ok(200)["executions"].as_array().unwrap().clone();
    assert_eq!(mine.len(), 1);
    let page = app.get("/v1/api/executions?limit=2", &session).await;
    let cursor = page.body["next_cursor"].as_i64().unwrap();
    let next = app.get(&format!("/v1/api/executions?limit=2&starting_after={cursor}"), &session).await;
    assert_eq!(next.body["executions"].as_array().unwrap().len(), 2);
    assert_eq!(next.body["has_more"], false);
    // A key cannot read another key's execution; another account cannot either.
    let foreign = all.body["executions"].as_array().unwrap().iter().find(|e| e["id"] != mine[0]["id"]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get(&format!("/v1/api/executions/{foreign}"), &key_b).await.assert_error(404, "EXECUTION_NOT_FOUND");
    let other = app.account("mallory", true, 0).await;
    app.get(&format!("/v1/api/executions/{foreign}"), &other).await.assert_error(404, "EXECUTION_NOT_FOUND");
    app.get("/v1/api/executions?state=bogus", &session).await.assert_error(400, "INVALID_REQUEST");
    // Filtered by key: the session sees that key's; a key asking for another key's sees none.
    let b_id = mine[0]["key_id"].as_i64().unwrap();
    let of_b = app.get(&format!("/v1/api/executions?key_id={b_id}"), &session).await;
    let of_b = of_b.assert_ok(200)["executions"].as_array().unwrap().clone();
    assert_eq!((of_b.len(), &of_b[0]["id"]), (1, &mine[0]["id"]));
    let a_id = all.body["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key_id"].as_i64().unwrap())
        .find(|k| *k != b_id)
        .unwrap();
    let spied = app.get(&format!("/v1/api/executions?key_id={a_id}"), &key_b).await;
    assert_eq!(spied.assert_ok(200)["executions"], json!([]));
    app.get("/v1/api/executions?key_id=0", &session).await.assert_error(400, "INVALID_REQUEST");
    // Spend per day and key agrees with the executions.
    let spend = app.get("/v1/api/spend?days=1", &session).await;
    let today = &spend.assert_ok(200)["days"][0];
    assert_eq!(today["spent_cents"], 4, "{today}");
    assert_eq!(app.get("/v1/api/spend?days=1", &key_b).await.body["days"][0]["spent_cents"], 1, "a key sees its own");
    app.get("/v1/api/spend?days=0", &session).await.assert_error(400, "INVALID_REQUEST");
    // A read-only key reads but does not execute.
    let (reader_id, reader) = app.key(&session, json!({ "label": "ro", "read_only": true })).await;
    app.get("/v1/api/balance", &reader).await.assert_ok(200);
    app.get("/v1/api/executions", &reader).await.assert_ok(200);
    let usage = app.get(&format!("/v1/api/keys/{reader_id}/usage"), &reader).await;
    assert_eq!(usage.assert_ok(200)["key_id"], reader_id);
    // Its own usage only: another key of the same account is not found.
    let (other_key, _) = app.key(&session, json!({ "label": "other" })).await;
    app.get(&format!("/v1/api/keys/{other_key}/usage"), &reader).await.assert_error(404, "KEY_NOT_FOUND");
    // Keys are not control-plane credentials.
    app.get("/v1/api/keys", &reader).await.assert_error(401, "AUTH_INVALID");
}

#[tokio::test]
async fn a_tool_that_times_out_is_voided_and_retryable() {
    let slow = visa_e2e::catalog::TestTool::builtin("slow", "sleep").set("timeout_ms", 100);
    let catalog = visa_e2e::catalog::catalog(&[slow], "", None);
    let app = TestApp::spawn_with(|c| c.catalog = catalog).await;
    let (session, id, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let reply = app.execute(&key, "slow", json!({ "ms": 1000 })).await;
    let body = reply.assert_error(502, "UPSTREAM_ERROR");
    assert_eq!(body["retryable"], true);
    assert!(body["error"].as_str().unwrap().contains("100 ms"), "{body}");
    app.execute(&key, "slow", json!({ "ms": 10 })).await.assert_ok(200);
    assert_eq!(app.balance_micros(&session).await, before - CENT);
    assert_eq!(spent_today(&app, &session, id).await, 1);
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn usage_is_reported_per_secret_during_a_grace_rotation() {
    let app = TestApp::spawn().await;
    let (session, id, old) = app.funded_key("octocat").await;
    for _ in 0..3 {
        app.execute(&old, "echo", json!({})).await.assert_ok(200);
    }
    let rotated =
        app.post(&format!("/v1/api/keys/{id}/rotate"), &session, json!({ "grace_period_seconds": 3600 })).await;
    let new = rotated.body["key"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        app.execute(&old, "echo", json!({})).await.assert_ok(200);
    }
    for _ in 0..4 {
        app.execute(&new, "echo", json!({})).await.assert_ok(200);
    }
    app.execute(&new, "fail", json!({ "status": 503 })).await.assert_error(502, "UPSTREAM_ERROR");
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await; // one flush
    let reply = app.get(&format!("/v1/api/keys/{id}/usage?granularity=hour"), &session).await;
    let body = reply.assert_ok(200);
    assert_eq!(body["granularity"], "hour");
    let secrets = body["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 2);
    let (newest, oldest) = (&secrets[0]["totals"], &secrets[1]["totals"]);
    assert_eq!(newest["requests"], 5);
    assert_eq!(newest["successes"], 4);
    assert_eq!(newest["errors"], json!({ "UPSTREAM_ERROR": 1 }));
    assert_eq!(newest["charged_micros"], "40000");
    assert_eq!(oldest["requests"], 5);
    assert_eq!(oldest["successes"], 5);
    assert_eq!(oldest["charged_micros"], "50000");
    assert_eq!(
        secrets[1]["buckets"].as_array().unwrap().iter().map(|b| b["requests"].as_u64().unwrap()).sum::<u64>(),
        5
    );

    let minute = app.get(&format!("/v1/api/keys/{id}/usage"), &session).await;
    assert_eq!(minute.assert_ok(200)["granularity"], "minute");
    app.get(&format!("/v1/api/keys/{id}/usage?granularity=week"), &session).await.assert_error(400, "INVALID_REQUEST");
    let backwards = format!("/v1/api/keys/{id}/usage?since=2030-01-02T00:00:00Z&until=2030-01-01T00:00:00Z");
    app.get(&backwards, &session).await.assert_error(400, "INVALID_REQUEST");
    let other = app.account("mallory", true, 0).await;
    app.get(&format!("/v1/api/keys/{id}/usage"), &other).await.assert_error(404, "KEY_NOT_FOUND");
}

/// A call whose task ended without recording its outcome (a bug: here, a hold placed beside the
/// server under its node, as a task that died would leave it) is voided by the node's own sweep:
/// its hold freed, its Idempotency-Key free again. The node's calls that a task still runs are
/// left alone (and other nodes' calls are never listed: the store's contract suite).
#[tokio::test]
async fn the_nodes_sweep_voids_a_running_call_no_task_tracks() {
    use std::time::Duration;
    use visa_store::{BeginOutcome, ExecutionStart, NodeId};
    let app = TestApp::spawn_with(|c| c.sweep_interval = Duration::from_millis(200)).await;
    let (session, key_id, key) = app.funded_key("octocat").await;
    let before = app.balance_micros(&session).await;
    let account_id = app.sql_value("SELECT id FROM accounts WHERE login = 'octocat'");
    let secret_id = app.sql_value(&format!("SELECT id FROM key_secrets WHERE key_id = {key_id}"));
    let node = NodeId(app.sql_value("SELECT MAX(id) FROM nodes"));
    let beside = app.database.open().expect("a second handle on the test's database");
    let idempotency_key = *uuid::Uuid::new_v4().as_bytes();
    let now = app.clock.now() - time::Duration::minutes(1);
    let start = ExecutionStart {
        node,
        public_id: "exec-stranded".into(),
        account_id: visa_store::AccountId::new(account_id),
        key_id: visa_store::KeyId::new(key_id),
        secret_id: visa_store::SecretId::new(secret_id),
        client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        idempotency_key,
        request_hash: [7; 32],
        tool: "echo".into(),
        hold: visa_core::money::Micros(CENT),
        rate_limit_per_second: 1_000_000,
        rate_clock: visa_store::RateClock::Database,
        sandbox: false,
        now,
        day_number: now.unix_timestamp().div_euclid(86_400),
        idempotency_expires_at: now + time::Duration::hours(24),
        end_user: None,
    };
    let begun = beside.begin_execution(start).await.unwrap();
    assert!(matches!(begun, BeginOutcome::Started(_)));
    // A call of this node that a task runs (a slow one) while the sweep passes.
    let slow = app.execute(&key, "sleep", json!({ "ms": 2500 }));
    let (slow, stranded) = tokio::join!(slow, async {
        // Old enough for the sweep to look at it: only its tracking keeps it from being voided.
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.clock.advance(time::Duration::seconds(10));
        let mut state = String::new();
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let e = app.get("/v1/api/executions?limit=10", &session).await.assert_ok(200).clone();
            let found = e["executions"].as_array().unwrap().iter().find(|e| e["id"] == "exec-stranded").cloned();
            state = found.map(|e| e["state"].as_str().unwrap().to_owned()).unwrap_or_default();
            if state != "running" {
                break;
            }
        }
        state
    });
    assert_eq!(stranded, "voided");
    slow.assert_ok(200);
    // The stranded call's hold is gone; its Idempotency-Key runs afresh.
    let idempotency = uuid::Uuid::from_bytes(idempotency_key).to_string();
    let retried = app.execute_with(&key, "echo", json!({ "input": {} }), &idempotency).await;
    retried.assert_ok(200);
    let balance = app.get("/v1/api/balance", &session).await.assert_ok(200).clone();
    assert_eq!(balance["held_micros"], "0");
    assert_eq!(app.balance_micros(&session).await, before - 2 * CENT, "the slow call and the retry");
}

/// The rows of a CSV export: its header, then each row as a map by column.
async fn export_csv(
    app: &TestApp,
    query: &str,
    bearer: &str,
) -> (Vec<String>, Vec<std::collections::HashMap<String, String>>) {
    let reply = reqwest::Client::new()
        .get(app.url(&format!("/v1/api/spend/export.csv{query}")))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    let status = reply.status();
    let csv_type = reply.headers()["content-type"].to_str().unwrap().starts_with("text/csv");
    let text = reply.text().await.unwrap();
    assert_eq!((status.as_u16(), csv_type), (200, true), "{text}");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let rows =
        reader.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(str::to_owned)).collect()).collect();
    (header, rows)
}

/// The CSV export holds exactly the executions list, page after page past its page size, failed
/// and zero-charge calls and end users (with a comma and a quote) included; a key exports only
/// its own; a range with nothing in it is a header alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_csv_export_is_the_executions_list_whatever_its_size() {
    let app = TestApp::spawn().await;
    let (session, _, _) = app.funded_key("exporter").await;
    let roomy = json!({ "label": "bulk", "daily_cap_cents": 100_000, "rate_limit_per_second": 100_000 });
    let (_, key) = app.key(&session, roomy).await;
    let (_, other) = app.key(&session, json!({ "label": "other" })).await;
    for round in 0..33 {
        let calls = (0..32).map(|i| {
            let (app, key) = (&app, &key);
            async move { app.execute(key, "echo", json!({ "round": round, "i": i })).await.status.as_u16() }
        });
        assert!(futures::future::join_all(calls).await.iter().all(|s| *s == 200));
    }
    for status in [500, 400] {
        app.execute(&other, "fail", json!({ "status": status })).await;
    }
    let headers = [
        ("X-Api-Key", other.as_str()),
        ("Idempotency-Key", "0b6c2b8e-6d5a-4d8e-9b1a-3f2f4e5d6c7b"),
        ("X-Visa-End-User", "acme, \"inc\""),
    ];
    app.call(reqwest::Method::POST, "/v1/api/tools/echo/execute", None, Some(json!({ "input": {} })), &headers)
        .await
        .assert_ok(200);

    let listed: Vec<Value> = app
        .walk_pages("/v1/api/executions?limit=100", &session)
        .await
        .iter()
        .flat_map(|page| page["executions"].as_array().unwrap().clone())
        .collect();
    assert_eq!(listed.len(), 33 * 32 + 3);
    let (header, rows) = export_csv(&app, "", &session).await;
    assert_eq!(header[..3], ["execution_id", "created_at", "finished_at"]);
    assert_eq!(rows.len(), listed.len(), "one row per execution");
    for (row, execution) in rows.iter().zip(&listed) {
        assert_eq!(row["execution_id"], execution["id"].as_str().unwrap());
        assert_eq!(row["charged_micros"], execution["charged_micros"].as_str().unwrap());
        assert_eq!(row["state"], execution["state"].as_str().unwrap());
        assert_eq!(row["end_user"], execution["end_user"].as_str().unwrap_or(""));
    }
    assert_eq!(rows[0]["end_user"], "acme, \"inc\"", "quoted as CSV quotes");
    assert_eq!(rows.iter().filter(|r| r["charged_micros"] == "0").count(), 2, "failed calls are rows too");
    // A key exports its own; a range in the future has no rows; a backwards range is refused.
    let (_, own) = export_csv(&app, "", &other).await;
    assert_eq!(own.len(), 3);
    let later = format!("?from={}&to={}", visa_e2e::rfc3339_in(3_600), visa_e2e::rfc3339_in(7_200));
    let (_, none) = export_csv(&app, &later, &session).await;
    assert!(none.is_empty());
    let backwards =
        format!("/v1/api/spend/export.csv?from={}&to={}", visa_e2e::rfc3339_in(60), visa_e2e::rfc3339_in(0));
    app.get(&backwards, &session).await.assert_error(400, "INVALID_REQUEST");
    app.get("/v1/api/spend/export.csv?from=yesterday", &session).await.assert_error(400, "INVALID_REQUEST");
}

//! Webhooks end to end: endpoints created over the API, events fired by real causes (a key
//! created, a key revoked, `test`), delivered to a local receiver that verifies every
//! signature with the Standard Webhooks reference library (`tests/python/webhook_receiver.py`),
//! retried on failure with the same `webhook-id`, signed by both secrets during a rotation,
//! an endpoint disabled by a 410, and loopback refused without the operator's allowance.

use serde_json::{Value, json};
use std::time::Duration;
use visa_e2e::TestApp;

/// The Python receiver, running until dropped.
struct Receiver {
    child: std::process::Child,
    port: u16,
    http: reqwest::Client,
}

impl Receiver {
    fn start() -> Self {
        Self::start_on(0)
    }

    /// A receiver on `port` (any free one for 0).
    fn start_on(port: u16) -> Self {
        use std::io::BufRead;
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/webhook_receiver.py");
        let mut child = std::process::Command::new(visa_e2e::python_venv().join("bin/python"))
            .arg(script)
            .arg(port.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the venv's python runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the port");
        Self { child, port: line.trim().parse().expect("a port"), http: reqwest::Client::new() }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// An endpoint of the session's account to this receiver, for `events`, whose secret the
    /// receiver then verifies with: (its id, the secret).
    async fn subscribe(&self, app: &TestApp, session: &str, events: &[&str]) -> (i64, String) {
        let created = app.post("/v1/api/webhooks", session, json!({ "url": self.url(), "events": events })).await;
        let created = created.assert_ok(201);
        let secret = created["secret"].as_str().expect("the secret, once").to_owned();
        self.control("/secrets", json!({ "secrets": [secret] })).await;
        (created["id"].as_i64().expect("an id"), secret)
    }

    async fn control(&self, path: &str, body: Value) {
        let sent = self.http.post(format!("http://127.0.0.1:{}{path}", self.port)).json(&body).send().await;
        assert!(sent.expect("the receiver answers").status().is_success());
    }

    async fn received(&self) -> Vec<Value> {
        let got = self.http.get(format!("http://127.0.0.1:{}/received", self.port)).send().await.expect("received");
        got.json().await.expect("a JSON list")
    }

    /// Waits (at most 10 s) until `count` deliveries arrived; all of them.
    async fn until(&self, count: usize) -> Vec<Value> {
        for _ in 0..200 {
            let got = self.received().await;
            if got.len() >= count {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{count} deliveries expected: {:?}", self.received().await);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The endpoint's delivery log once it holds `count` attempts (an attempt is recorded just
/// after the receiver answered it), waiting at most 10 s.
async fn delivery_log(app: &TestApp, session: &str, id: i64, count: usize) -> Vec<Value> {
    for _ in 0..200 {
        let log = app.get(&format!("/v1/api/webhooks/{id}/deliveries"), session).await;
        let log = log.assert_ok(200)["deliveries"].as_array().unwrap().clone();
        if log.len() >= count {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the delivery log never held {count} attempts");
}

/// `count` echo calls of `key` sent at once; their statuses.
async fn race_echo(app: &TestApp, key: &str, count: usize) -> Vec<u16> {
    let calls = (0..count).map(|_| async move { app.execute(key, "echo", json!({})).await.status.as_u16() });
    futures::future::join_all(calls).await
}

async fn spawn_allowing_loopback() -> TestApp {
    TestApp::spawn_with(|c| c.webhook_allow_private = vec!["127.0.0.0/8".parse().unwrap()]).await
}

#[tokio::test]
async fn events_of_real_causes_arrive_signed_once_each_and_failures_are_retried_with_the_same_id() {
    let app = spawn_allowing_loopback().await;
    let receiver = Receiver::start();
    let session = app.account("hooked", true, 1_000).await;
    let created = app
        .post("/v1/api/webhooks", &session, json!({ "url": receiver.url(), "events": ["*"], "description": "ops" }))
        .await;
    let created = created.assert_ok(201).clone();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!((created["enabled"].clone(), created["events"].clone()), (json!(true), json!(["*"])));
    // The secret is shown once: never in a read.
    let read = app.get(&format!("/v1/api/webhooks/{id}"), &session).await;
    assert!(!read.assert_ok(200).to_string().contains(&secret));
    receiver.control("/secrets", json!({ "secrets": [secret] })).await;

    // Three causes: a test, a key created, the key revoked.
    let test = app.post(&format!("/v1/api/webhooks/{id}/test"), &session, json!({})).await;
    let test_id = test.assert_ok(200)["event_id"].as_str().unwrap().to_owned();
    let (key_id, _) = app.key(&session, json!({ "label": "watched", "daily_cap_cents": 100 })).await;
    app.delete(&format!("/v1/api/keys/{key_id}"), &session).await.assert_ok(200);
    let got = receiver.until(3).await;
    let mut types: Vec<&str> = got.iter().map(|d| d["type"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(types, ["key.created", "key.revoked", "webhook.test"], "{got:?}");
    assert!(got.iter().all(|d| d["verified_by"] == json!([0])), "every signature verifies: {got:?}");
    assert!(got.iter().any(|d| d["id"] == json!(test_id)));
    let revoked = got.iter().find(|d| d["type"] == "key.revoked").unwrap();
    assert_eq!(revoked["body"]["data"]["key_id"], json!(key_id));
    assert_eq!(revoked["body"]["data"]["label"], "watched");
    assert_eq!(revoked["body"]["data"]["reason"], "revoked");
    assert!(revoked["body"]["timestamp"].as_str().unwrap().ends_with('Z'));
    let log = delivery_log(&app, &session, id, 3).await;
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(log.iter().all(|a| a["status"] == json!(200) && a["attempt"] == json!(1)), "{log:?}");

    // The receiver fails: the attempt is logged, and once due again (5 s on the server's clock)
    // the same event comes with the same id.
    receiver.control("/answer", json!({ "status": 503, "retry_after": 1 })).await;
    let failing = app.post(&format!("/v1/api/webhooks/{id}/test"), &session, json!({})).await;
    let failing_id = failing.assert_ok(200)["event_id"].as_str().unwrap().to_owned();
    receiver.until(4).await;
    receiver.control("/answer", json!({ "status": 200 })).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(receiver.received().await.len(), 4, "not due again before its retry");
    app.clock.advance(time::Duration::seconds(6));
    let got = receiver.until(5).await;
    let same: Vec<&Value> = got.iter().filter(|d| d["id"] == json!(failing_id)).collect();
    assert_eq!(same.len(), 2, "{got:?}");
    let attempts: Vec<(Value, Value)> = delivery_log(&app, &session, id, 5)
        .await
        .iter()
        .filter(|a| a["event_id"] == json!(failing_id))
        .map(|a| (a["attempt"].clone(), a["status"].clone()))
        .collect();
    assert_eq!(attempts, [(json!(2), json!(200)), (json!(1), json!(503))]);

    // A rotation: for a day deliveries carry both signatures, each verifying on its own.
    let rotated = app.post(&format!("/v1/api/webhooks/{id}/rotate-secret"), &session, json!({})).await;
    let new_secret = rotated.assert_ok(200)["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    receiver.control("/secrets", json!({ "secrets": [secret, new_secret] })).await;
    app.post(&format!("/v1/api/webhooks/{id}/test"), &session, json!({})).await.assert_ok(200);
    let got = receiver.until(6).await;
    assert_eq!(got[5]["verified_by"], json!([0, 1]), "{:?}", got[5]);

    // A 410 disables the endpoint.
    receiver.control("/answer", json!({ "status": 410 })).await;
    app.post(&format!("/v1/api/webhooks/{id}/test"), &session, json!({})).await.assert_ok(200);
    receiver.until(7).await;
    let mut disabled = json!(null);
    for _ in 0..100 {
        disabled = app.get(&format!("/v1/api/webhooks/{id}"), &session).await.assert_ok(200).clone();
        if disabled["enabled"] == json!(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((disabled["enabled"].clone(), disabled["disabled_reason"].clone()), (json!(false), json!("gone")));
}

#[tokio::test]
async fn endpoints_are_managed_by_admins_and_read_by_everyone_and_loopback_needs_the_operators_allowance() {
    let strict = TestApp::spawn().await;
    let session = strict.account("careful", true, 0).await;
    let refused =
        strict.post("/v1/api/webhooks", &session, json!({ "url": "http://127.0.0.1:9/hook", "events": ["*"] })).await;
    assert!(refused.assert_error(400, "INVALID_REQUEST")["error"].as_str().unwrap().contains("webhook-allow-private"));
    let https_loopback = json!({ "url": "https://127.0.0.1:9/hook", "events": ["*"] });
    strict.post("/v1/api/webhooks", &session, https_loopback).await.assert_error(400, "INVALID_REQUEST");
    let unknown = json!({ "url": "https://93.184.216.34/hook", "events": ["key.exploded"] });
    strict.post("/v1/api/webhooks", &session, unknown).await.assert_error(400, "INVALID_REQUEST");

    let app = spawn_allowing_loopback().await;
    let owner = app.account("team", true, 0).await;
    let (_, developer) = app.member(&owner, "dev", "developer").await;
    let body = json!({ "url": "http://127.0.0.1:9/hook", "events": ["key.created"] });
    app.post("/v1/api/webhooks", &developer, body.clone()).await.assert_error(403, "FORBIDDEN");
    let id = app.post("/v1/api/webhooks", &owner, body).await.assert_ok(201)["id"].as_i64().unwrap();
    let listed = app.get("/v1/api/webhooks", &developer).await;
    assert_eq!(listed.assert_ok(200)["webhooks"][0]["id"], json!(id));
    let path = format!("/v1/api/webhooks/{id}");
    app.patch(&path, &developer, json!({ "enabled": false })).await.assert_error(403, "FORBIDDEN");
    let changed = app.patch(&path, &owner, json!({ "events": ["key.revoked", "key.created"], "enabled": false })).await;
    assert_eq!(changed.assert_ok(200)["events"], json!(["key.created", "key.revoked"]));
    assert_eq!(app.audit(&owner, "?action=webhook.updated").await.len(), 1);
    app.delete(&path, &owner).await.assert_ok(200);
    app.get(&path, &owner).await.assert_error(404, "NOT_FOUND");
    app.get("/v1/api/webhooks/abc", &owner).await.assert_error(404, "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_racing_calls_that_cross_a_low_balance_threshold_fire_it_once_and_a_credit_rearms_it() {
    let app = spawn_allowing_loopback().await;
    let receiver = Receiver::start();
    let session = app.account("spender", true, 100).await;
    // The owner sets the thresholds; a developer may not.
    let (_, developer) = app.member(&session, "dev", "developer").await;
    let thresholds = json!({ "low_balance_thresholds_cents": [80] });
    app.patch("/v1/api/account", &developer, thresholds.clone()).await.assert_error(403, "FORBIDDEN");
    assert_eq!(
        app.get("/v1/api/account", &developer).await.assert_ok(200)["low_balance_thresholds_cents"],
        json!([1000])
    );
    let set = app.patch("/v1/api/account", &session, thresholds).await;
    assert_eq!(set.assert_ok(200)["low_balance_thresholds_cents"], json!([80]));
    let bad = json!({ "low_balance_thresholds_cents": [0] });
    app.patch("/v1/api/account", &session, bad).await.assert_error(400, "INVALID_REQUEST");
    receiver.subscribe(&app, &session, &["balance.low"]).await;
    let (_, key) = app.key(&session, json!({ "label": "racer", "daily_cap_cents": 10_000 })).await;

    // $1.00 and 50 calls of 1 cent at once: the balance passes under 80 cents exactly once.
    let statuses = race_echo(&app, &key, 50).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let got = receiver.until(1).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let got_now = receiver.received().await;
    assert_eq!(got_now.len(), 1, "one crossing, one event: {got_now:?}");
    assert_eq!(got[0]["type"], "balance.low");
    assert_eq!(got[0]["verified_by"], json!([0]));
    assert_eq!(got[0]["body"]["data"]["threshold_cents"], 80);
    assert!(got[0]["body"]["data"]["available_cents"].as_i64().unwrap() < 80, "{:?}", got[0]);

    // A credit lifts the balance over 80 again: the next fall under it fires again.
    app.post("/v1/operator/accounts/spender/credits", visa_e2e::OPERATOR_TOKEN, json!({ "amount_cents": 40 }))
        .await
        .assert_ok(200);
    for _ in 0..15 {
        app.execute(&key, "echo", json!({})).await.assert_ok(200);
    }
    let got = receiver.until(2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["body"]["data"]["threshold_cents"], 80);
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_calls_past_a_keys_daily_cap_send_one_threshold_alert_and_one_cap_reached() {
    let app = spawn_allowing_loopback().await;
    let receiver = Receiver::start();
    let session = app.account("capped", true, 10_000).await;
    receiver.subscribe(&app, &session, &["*"]).await;
    let (key_id, key) = app.key(&session, json!({ "label": "ten-cents", "daily_cap_cents": 10 })).await;
    receiver.until(1).await; // key.created

    // 20 calls of 1 cent at once against a 10-cent day: 10 run, 10 are refused by the cap.
    let mut statuses = race_echo(&app, &key, 20).await;
    statuses.sort();
    assert_eq!(statuses, [[200; 10], [429; 10]].concat());
    app.execute(&key, "echo", json!({})).await.assert_error(429, "RATE_LIMITED");
    let got = receiver.until(3).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let got_now = receiver.received().await;
    assert_eq!(got_now.len(), 3, "one threshold alert and one cap reached: {got_now:?}");
    let of = |kind: &str| got.iter().find(|d| d["type"] == kind).unwrap_or_else(|| panic!("{kind}: {got:?}")).clone();
    let threshold = of("key.cap.threshold");
    assert_eq!(threshold["body"]["data"]["key_id"], json!(key_id));
    assert_eq!(threshold["body"]["data"]["cap"], "daily");
    assert_eq!(threshold["body"]["data"]["cap_cents"], 10);
    assert_eq!(threshold["body"]["data"]["percent"], 80);
    assert!(threshold["body"]["data"]["day"].as_str().unwrap().starts_with("20"), "{threshold}");
    let reached = of("key.cap.reached");
    assert_eq!(
        (reached["body"]["data"]["cap"].clone(), reached["body"]["data"]["label"].clone()),
        (json!("daily"), json!("ten-cents"))
    );
    assert!(got.iter().all(|d| d["verified_by"] == json!([0])));
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn a_key_is_announced_a_week_and_a_day_before_it_expires_and_again_after_a_new_expiry() {
    let app = TestApp::spawn_with(|c| {
        c.webhook_allow_private = vec!["127.0.0.0/8".parse().unwrap()];
        c.sweep_interval = Duration::from_millis(100);
    })
    .await;
    let receiver = Receiver::start();
    let session = app.account("expiring", true, 100).await;
    receiver.subscribe(&app, &session, &["key.expiring"]).await;
    let expires_at = visa_e2e::rfc3339_in(3 * 86_400);
    let (key_id, _) = app.key(&session, json!({ "label": "short", "expires_at": expires_at })).await;
    let got = receiver.until(1).await;
    assert_eq!(got[0]["body"]["data"]["key_id"], json!(key_id));
    assert_eq!(got[0]["body"]["data"]["days_before"], 7);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().await.len(), 1, "once per notice");
    // Two and a half days later (on the server's clock), the day's notice.
    app.clock.advance(time::Duration::hours(60));
    let got = receiver.until(2).await;
    assert_eq!(got[1]["body"]["data"]["days_before"], 1);
    // A new expiry re-arms the notices.
    let later = json!({ "expires_at": visa_e2e::rfc3339_in(3 * 86_400 + 5 * 86_400) });
    app.patch(&format!("/v1/api/keys/{key_id}"), &session, later).await.assert_ok(200);
    let got = receiver.until(3).await;
    assert_eq!(got[2]["body"]["data"]["days_before"], 7, "{:?}", got[2]);
    assert!(got.iter().all(|d| d["verified_by"] == json!([0])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_calls_past_the_balance_send_one_depleted_alert_until_a_credit() {
    let app = spawn_allowing_loopback().await;
    let receiver = Receiver::start();
    let session = app.account("broke", true, 5).await;
    receiver.subscribe(&app, &session, &["balance.depleted"]).await;
    let (_, key) = app.key(&session, json!({ "label": "spender", "daily_cap_cents": 10_000 })).await;
    // 5 cents and 12 calls of 1 cent at once: 5 run, 7 are refused for want of balance.
    let mut statuses = race_echo(&app, &key, 12).await;
    statuses.sort();
    assert_eq!(statuses, [[200; 5].as_slice(), [429; 7].as_slice()].concat());
    let got = receiver.until(1).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(receiver.received().await.len(), 1, "one depletion, one event");
    assert_eq!(got[0]["type"], "balance.depleted");
    assert_eq!(got[0]["body"]["data"]["available_micros"], 0);
    // A credit re-arms it: spent again, refused again, sent again.
    app.post("/v1/operator/accounts/broke/credits", visa_e2e::OPERATOR_TOKEN, json!({ "amount_cents": 2 }))
        .await
        .assert_ok(200);
    for _ in 0..2 {
        app.execute(&key, "echo", json!({})).await.assert_ok(200);
    }
    app.execute(&key, "echo", json!({})).await.assert_error(429, "RATE_LIMITED");
    receiver.until(2).await;
    assert!(app.verify_ledger().await.is_empty());
}

#[tokio::test]
async fn a_receiver_down_for_two_hours_gets_every_event_once_it_is_back_each_id_once() {
    let app = spawn_allowing_loopback().await;
    let receiver = Receiver::start();
    let session = app.account("outage", true, 1_000).await;
    let (id, secret) = receiver.subscribe(&app, &session, &["*"]).await;
    // The receiver goes down (its port refuses connections), and five events happen.
    let port = receiver.port;
    drop(receiver);
    for _ in 0..3 {
        app.post(&format!("/v1/api/webhooks/{id}/test"), &session, json!({})).await.assert_ok(200);
    }
    let (key_id, _) = app.key(&session, json!({ "label": "during-outage" })).await;
    app.delete(&format!("/v1/api/keys/{key_id}"), &session).await.assert_ok(200);
    // Two hours on the server's clock, in steps past each retry (5 s, 5 min, 30 min, each
    // with up to 10 % jitter): four failed attempts of each event, logged with why.
    delivery_log(&app, &session, id, 5).await;
    for (step, attempts) in [(6, 10), (6 * 60, 15), (34 * 60, 20), (80 * 60, 20)] {
        app.clock.advance(time::Duration::seconds(step));
        let log = delivery_log(&app, &session, id, attempts).await;
        assert_eq!(log.len(), attempts, "attempts after the step of {step} s: {log:?}");
        assert!(log.iter().all(|a| a["status"].is_null() && a["error"].as_str().unwrap().contains("reach")), "{log:?}");
    }
    // Back up on the same port; the next retry (2 h after the fourth) delivers each event once.
    let receiver = Receiver::start_on(port);
    receiver.control("/secrets", json!({ "secrets": [secret] })).await;
    app.clock.advance(time::Duration::hours(1));
    let got = receiver.until(5).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let got_now = receiver.received().await;
    let mut ids: Vec<&str> = got_now.iter().map(|d| d["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((got_now.len(), ids.len()), (5, 5), "each event once: {got_now:?}");
    assert!(got.iter().all(|d| d["verified_by"] == json!([0])), "{got:?}");
    let mut types: Vec<&str> = got_now.iter().map(|d| d["type"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(types, ["key.created", "key.revoked", "webhook.test", "webhook.test", "webhook.test"]);
    let log = delivery_log(&app, &session, id, 25).await;
    let delivered: Vec<&Value> = log.iter().filter(|a| a["status"] == json!(200)).collect();
    assert_eq!(delivered.len(), 5, "{log:?}");
    assert!(delivered.iter().all(|a| a["attempt"] == json!(5)), "{delivered:?}");
    let endpoint = app.get(&format!("/v1/api/webhooks/{id}"), &session).await;
    assert_eq!(endpoint.assert_ok(200)["failing_since"], json!(null), "a delivery ends the failing streak");
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_at_delivery_is_refused_and_nothing_is_sent() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start();
    let session = app.account("rebound", true, 0).await;
    // Created while its name pointed at a public address (a literal one here)...
    let hook = json!({ "url": "https://93.184.216.34/hook", "events": ["*"] });
    let id = app.post("/v1/api/webhooks", &session, hook).await.assert_ok(201)["id"].as_i64().unwrap();
    // ...the name now resolves to loopback (DNS rebinding), where the receiver listens; then
    // the literal loopback address itself.
    for (n, url) in [format!("http://localhost:{}/hook", receiver.port), receiver.url()].iter().enumerate() {
        app.sql_execute(&format!("UPDATE webhook_endpoints SET url = '{url}' WHERE id = {id}"));
        app.post(&format!("/v1/api/webhooks/{id}/test"), &session, json!({})).await.assert_ok(200);
        let log = delivery_log(&app, &session, id, n + 1).await;
        let error = log[0]["error"].as_str().unwrap_or_default();
        assert!(log[0]["status"].is_null() && error.contains("may not reach"), "{url}: {log:?}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.received().await.is_empty(), "nothing reached loopback");
}

#[tokio::test]
async fn an_endpoint_failing_for_five_days_is_disabled_by_the_server_with_an_audit_entry() {
    let app = spawn_allowing_loopback().await;
    let receiver = Receiver::start();
    receiver.control("/answer", json!({ "status": 500 })).await;
    let session = app.account("flaky", true, 0).await;
    let (id, _) = receiver.subscribe(&app, &session, &["*"]).await;
    let path = format!("/v1/api/webhooks/{id}");
    app.post(&format!("{path}/test"), &session, json!({})).await.assert_ok(200);
    delivery_log(&app, &session, id, 1).await;
    let failing = app.get(&path, &session).await.assert_ok(200).clone();
    assert!(failing["failing_since"].is_string() && failing["enabled"] == json!(true), "{failing}");
    // Five days on, the next failure disables it: by the server, audited as such.
    app.clock.advance(time::Duration::days(5) + time::Duration::minutes(1));
    let mut endpoint = json!(null);
    for _ in 0..200 {
        endpoint = app.get(&path, &session).await.assert_ok(200).clone();
        if endpoint["enabled"] == json!(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((endpoint["enabled"].clone(), endpoint["disabled_reason"].clone()), (json!(false), json!("failing")));
    let audit = app.audit(&session, "?action=webhook.disabled").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["actor"]["type"], "system");
    assert_eq!(audit[0]["changes"]["enabled"], json!({ "before": true, "after": false }));
    // Nothing more is attempted while disabled; enabling it again resumes and delivers.
    let attempts = delivery_log(&app, &session, id, 2).await.len();
    receiver.control("/answer", json!({ "status": 200 })).await;
    app.clock.advance(time::Duration::hours(12));
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(delivery_log(&app, &session, id, attempts).await.len(), attempts);
    app.patch(&path, &session, json!({ "enabled": true })).await.assert_ok(200);
    app.clock.advance(time::Duration::hours(12));
    let log = delivery_log(&app, &session, id, attempts + 1).await;
    assert_eq!(log[0]["status"], json!(200), "{log:?}");
}

#[tokio::test]
async fn a_keys_own_cap_alert_percent_decides_when_its_threshold_alert_fires() {
    let app = spawn_allowing_loopback().await;
    let receiver = Receiver::start();
    let session = app.account("halfway", true, 1_000).await;
    receiver.subscribe(&app, &session, &["key.cap.threshold"]).await;
    for bad in [0, 101, -5] {
        let body = json!({ "label": "bad", "cap_alert_percent": bad });
        app.post("/v1/api/keys", &session, body).await.assert_error(400, "INVALID_REQUEST");
    }
    let (key_id, key) =
        app.key(&session, json!({ "label": "half", "daily_cap_cents": 10, "cap_alert_percent": 50 })).await;
    let read = app.get(&format!("/v1/api/keys/{key_id}"), &session).await;
    assert_eq!(read.assert_ok(200)["cap_alert_percent"], 50);
    // 4 cents of 10: under half. The fifth cent reaches it.
    for _ in 0..4 {
        app.execute(&key, "echo", json!({})).await.assert_ok(200);
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(receiver.received().await.is_empty());
    app.execute(&key, "echo", json!({})).await.assert_ok(200);
    let got = receiver.until(1).await;
    assert_eq!(
        (got[0]["body"]["data"]["percent"].clone(), got[0]["body"]["data"]["cap"].clone()),
        (json!(50), json!("daily"))
    );
    // Changed to 100 %: a new day's alert waits for the last cent (checked in `rules`); a PATCH
    // out of range is refused and changes nothing.
    let path = format!("/v1/api/keys/{key_id}");
    app.patch(&path, &session, json!({ "cap_alert_percent": 0 })).await.assert_error(400, "INVALID_REQUEST");
    let changed = app.patch(&path, &session, json!({ "cap_alert_percent": 100 })).await;
    assert_eq!(changed.assert_ok(200)["cap_alert_percent"], 100);
    let audit = app.audit(&session, "?action=key.updated").await;
    assert_eq!(audit[0]["changes"]["cap_alert_percent"], json!({ "before": 50, "after": 100 }));
}

/// The rows of the delivery log on the page the browser shows, reloading it (at most 10 s)
/// until `done` says they are what the test waits for (`what`).
async fn log_rows_until(
    browser: &visa_e2e::browser::Browser,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    use fantoccini::Locator;
    for _ in 0..100 {
        browser.client.refresh().await.unwrap();
        let mut rows = vec![];
        for row in browser.client.find_all(Locator::Css("table.deliveries tbody tr")).await.unwrap() {
            rows.push(row.text().await.unwrap());
        }
        if done(&rows) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the delivery log never showed {what}: {}", visa_e2e::browser::text(browser).await);
}

#[tokio::test]
async fn the_dashboard_manages_endpoints_and_shows_each_attempt_and_why_an_endpoint_was_disabled() {
    use fantoccini::Locator;
    use visa_e2e::browser::*;
    let app = spawn_allowing_loopback().await;
    let receiver = Receiver::start();
    let owner = app.account("acme", true, 1_000).await;
    app.member(&owner, "ada", "admin").await;
    app.member(&owner, "vic", "viewer").await;
    let browser = browser().await;
    sign_in(&browser, &app, "ada", "ada-password-1").await;

    // Added in the browser: the secret is shown once.
    follow(&browser, "Webhooks").await;
    assert!(text(&browser).await.contains("No endpoints."));
    fill(&browser, "#webhook-url", &receiver.url()).await;
    fill(&browser, "#webhook-description", "ops pager").await;
    click_and_wait(&browser, "Add endpoint").await;
    let secret = value_of(&browser, "#webhook-secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    receiver.control("/secrets", json!({ "secrets": [secret] })).await;
    let listed = app.get("/v1/api/webhooks", &owner).await.assert_ok(200)["webhooks"].clone();
    let id = listed[0]["id"].as_i64().unwrap();
    assert_eq!((listed[0]["events"].clone(), listed[0]["description"].clone()), (json!(["*"]), json!("ops pager")));
    follow(&browser, "The endpoint and its deliveries").await;
    assert!(!browser.client.source().await.unwrap().contains(&secret), "the secret is shown once");

    // A test event, delivered and logged; then one the receiver refuses, and its replay.
    click_and_wait(&browser, "Send test event").await;
    let rows = log_rows_until(&browser, "a delivery", |rows| rows.len() == 1).await;
    assert!(rows[0].contains("webhook.test") && rows[0].contains("HTTP 200"), "{rows:?}");
    receiver.control("/answer", json!({ "status": 500 })).await;
    click_and_wait(&browser, "Send test event").await;
    let rows = log_rows_until(&browser, "a second attempt", |rows| rows.len() == 2).await;
    assert!(rows[0].contains("HTTP 500") && rows[0].contains("\"ok\": true"), "the answer's start: {rows:?}");
    assert!(text(&browser).await.contains("Failing since"), "{}", text(&browser).await);
    let failed = receiver.received().await.last().unwrap()["id"].as_str().unwrap().to_owned();
    receiver.control("/answer", json!({ "status": 200 })).await;
    let replay = format!("//tr[contains(., '{failed}')]//button[text()='Replay']");
    navigate_by(&browser, Locator::XPath(&replay), "Replay").await;
    let rows = log_rows_until(&browser, "the replay", |rows| rows.len() == 3).await;
    assert!(rows[0].contains(&failed) && rows[0].contains("HTTP 200"), "{rows:?}");
    assert_eq!(receiver.received().await.iter().filter(|d| d["id"] == json!(failed)).count(), 2, "the same id again");
    assert!(!text(&browser).await.contains("Failing since"), "a delivery ends the failing streak");
    screenshot(&browser, "webhook-deliveries").await;

    // Disabled and enabled again; the secret rotated (the new one shown once).
    click_and_wait(&browser, "Disable").await;
    assert!(text(&browser).await.contains("Disabled (by a member)"));
    assert_eq!(app.get(&format!("/v1/api/webhooks/{id}"), &owner).await.assert_ok(200)["enabled"], false);
    click_and_wait(&browser, "Enable").await;
    click_and_wait(&browser, "Rotate secret").await;
    let rotated = value_of(&browser, "#webhook-secret").await;
    assert!(rotated.starts_with("whsec_") && rotated != secret);

    // Five days of failures: the server disabled it, and the page says why.
    receiver.control("/answer", json!({ "status": 503 })).await;
    app.post(&format!("/v1/api/webhooks/{id}/test"), &owner, json!({})).await.assert_ok(200);
    delivery_log(&app, &owner, id, 4).await;
    app.clock.advance(time::Duration::days(5) + time::Duration::minutes(1));
    follow(&browser, "The endpoint and its deliveries").await;
    for _ in 0..100 {
        if text(&browser).await.contains("every attempt failed for 5 days") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        browser.client.refresh().await.unwrap();
    }
    assert!(text(&browser).await.contains("Disabled (every attempt failed for 5 days)"), "{}", text(&browser).await);
    follow(&browser, "Webhooks").await;
    assert!(rows_text(&browser, "table.webhooks").await.contains("every attempt failed for 5 days"));
    screenshot(&browser, "webhooks").await;

    // A viewer sees the endpoints and the log, and no control.
    click_and_wait(&browser, "Sign out").await;
    sign_in(&browser, &app, "vic", "vic-password-1").await;
    follow(&browser, "Webhooks").await;
    assert!(!text(&browser).await.contains("Add an endpoint"));
    browser.client.goto(&app.url(&format!("/dashboard/webhooks/{id}"))).await.unwrap();
    let page = text(&browser).await;
    assert!(page.contains("Delivery log") && !page.contains("Send test event") && !page.contains("Replay"), "{page}");
    click_and_wait(&browser, "Sign out").await;

    // Deleted after a confirmation; every change audited with the browser's user agent.
    sign_in(&browser, &app, "ada", "ada-password-1").await;
    browser.client.goto(&app.url(&format!("/dashboard/webhooks/{id}"))).await.unwrap();
    follow(&browser, "Delete endpoint…").await;
    click_and_wait(&browser, "Delete endpoint").await;
    assert!(text(&browser).await.contains("No endpoints."));
    app.get(&format!("/v1/api/webhooks/{id}"), &owner).await.assert_error(404, "NOT_FOUND");
    let agent = browser.client.execute("return navigator.userAgent", vec![]).await.unwrap();
    for action in ["webhook.created", "webhook.updated", "webhook.secret_rotated", "webhook.deleted"] {
        let entries = app.audit(&owner, &format!("?action={action}")).await;
        let entry = entries.first().unwrap_or_else(|| panic!("no {action} entry"));
        assert_eq!(entry["user_agent"], agent, "{action}: {entry}");
    }
    browser.client.clone().close().await.unwrap();
}

/// The text of the table `css`.
async fn rows_text(browser: &visa_e2e::browser::Browser, css: &str) -> String {
    let table = browser.client.find(fantoccini::Locator::Css(css)).await.unwrap();
    table.text().await.unwrap()
}

#[tokio::test]
async fn an_old_secret_that_stops_working_is_announced_once_when_its_grace_ends_or_it_is_revoked() {
    let app = TestApp::spawn_with(|c| {
        c.webhook_allow_private = vec!["127.0.0.0/8".parse().unwrap()];
        c.sweep_interval = Duration::from_millis(100);
    })
    .await;
    let receiver = Receiver::start();
    let session = app.account("rotating", true, 100).await;
    receiver.subscribe(&app, &session, &["key.revoked"]).await;
    let (key_id, _) = app.key(&session, json!({ "label": "rotated" })).await;
    let path = format!("/v1/api/keys/{key_id}");
    let prefix_of = |key: &Value, n: usize| key["secrets"][n]["key_prefix"].as_str().unwrap().to_owned();

    // A rotation with an hour's grace: nothing until the hour has passed on the server's clock.
    let rotated = app.post(&format!("{path}/rotate"), &session, json!({ "grace_period_seconds": 3_600 })).await;
    let rotated = rotated.assert_ok(200).clone();
    let (newest, old) = (prefix_of(&rotated, 0), prefix_of(&rotated, 1));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(receiver.received().await.is_empty(), "the old secret still works");
    app.clock.advance(time::Duration::minutes(61));
    let got = receiver.until(1).await;
    let data = &got[0]["body"]["data"];
    assert_eq!((data["reason"].clone(), data["key_id"].clone()), (json!("secret_ended"), json!(key_id)));
    assert_eq!(
        (data["ended_key_prefix"].as_str(), data["key_prefix"].as_str()),
        (Some(old.as_str()), Some(newest.as_str()))
    );

    // Another rotation whose old secret is revoked early: announced by the revocation, once.
    let again = app.post(&format!("{path}/rotate"), &session, json!({ "grace_period_seconds": 86_400 })).await;
    let again = again.assert_ok(200).clone();
    let old_id = again["secrets"][1]["id"].as_i64().unwrap();
    app.post(&format!("{path}/secrets/{old_id}/revoke"), &session, json!({})).await.assert_ok(200);
    let got = receiver.until(2).await;
    assert_eq!(got[1]["body"]["data"]["ended_key_prefix"].as_str(), Some(prefix_of(&again, 1).as_str()));
    // Revoking the key is its own event; its secrets are not announced again, nor the first
    // one after its grace would have ended.
    app.delete(&path, &session).await.assert_ok(200);
    let got = receiver.until(3).await;
    assert_eq!(got[2]["body"]["data"]["reason"], "revoked");
    app.clock.advance(time::Duration::days(2));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.received().await.len(), 3, "each end once: {:?}", receiver.received().await);
    assert!(receiver.received().await.iter().all(|d| d["verified_by"] == json!([0])));
}

#[tokio::test]
async fn a_call_whose_outcome_cannot_be_recorded_is_announced_for_an_operator() {
    let app = spawn_allowing_loopback().await;
    let receiver = Receiver::start();
    let session = app.account("stuck", true, 100).await;
    receiver.subscribe(&app, &session, &["execution.reconcile_required"]).await;
    let (key_id, key) = app.key(&session, json!({ "label": "unlucky" })).await;
    // The store refuses the outcome's write: the call is left for an operator, its hold kept.
    app.fail_writes_to("execution_responses");
    let answer = app.execute(&key, "echo", json!({})).await;
    app.writes_work_again("execution_responses");
    let refused = answer.assert_error(503, "IDEMPOTENCY_UNAVAILABLE").clone();
    let got = receiver.until(1).await;
    let data = &got[0]["body"]["data"];
    assert_eq!(got[0]["type"], "execution.reconcile_required");
    assert_eq!(data["key_id"], json!(key_id));
    assert_eq!((data["tool"].as_str(), data["hold_micros"].as_i64()), (Some("echo"), Some(10_000)), "{data}");
    assert_eq!(data["execution_id"], refused["receipt"]["execution_id"], "{refused}");
    assert_eq!(data["support_id"], data["execution_id"]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.received().await.len(), 1, "once");
}

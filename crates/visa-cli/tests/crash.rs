//! `kill -9` at any instant: the real binary is killed mid-load, restarted on the same data
//! dir, and then the ledger must verify, every acknowledged charge must be on disk, and a
//! call whose outcome was lost must be `reconcile_required` until the operator settles it.

mod common;

use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const PRICE_MICROS: i64 = 10_000;

fn execute(url: &str, key: &str, tool: &str, idem: &str, input: Value) -> reqwest::Result<(u16, Value)> {
    let response = reqwest::blocking::Client::new()
        .post(format!("{url}/v1/api/tools/{tool}/execute"))
        .header("X-Api-Key", key)
        .header("Idempotency-Key", idem)
        .json(&json!({ "input": input }))
        .send()?;
    let status = response.status().as_u16();
    Ok((status, response.json()?))
}

fn get(url: &str, path: &str, bearer: &str) -> Value {
    reqwest::blocking::Client::new().get(format!("{url}{path}")).bearer_auth(bearer).send().unwrap().json().unwrap()
}

fn balance_micros(server: &ServerProcess, session: &str) -> i64 {
    get(&server.url, "/v1/api/balance", session)["balance_micros"].as_str().unwrap().parse().unwrap()
}

fn ledger_verifies(server: &ServerProcess) {
    let data_dir = server.data_dir();
    let output = server.cli(&["ledger", "verify", "--data-dir", data_dir.to_str().unwrap()], None, None);
    let out = assert_success(&output);
    assert!(out.contains("ledger ok"), "{out}");
}

/// A rolling restart: SIGTERM while a paid call runs whose client already hung up. The server
/// waits for the call (it runs on, detached from the request) before it exits, so after the restart
/// the call is settled, charged once, nothing held, and nothing needs an operator.
#[test]
fn sigterm_drains_a_call_whose_client_hung_up() {
    let mut server = ServerProcess::start(&[], Some(OPERATOR_TOKEN));
    let t = tenant(&server, "octocat", 1_000);
    let before = balance_micros(&server, &t.session);
    let impatient = reqwest::blocking::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let hung_up = impatient
        .post(format!("{}/v1/api/tools/sleep/execute", server.url))
        .header("X-Api-Key", &t.key)
        .header("Idempotency-Key", "5d0f6b2e-8c1a-4f3b-9a7e-1c2d3e4f5a6b")
        .json(&json!({ "input": { "ms": 2000 } }))
        .send();
    assert!(hung_up.is_err(), "the client gave up before the answer");
    let stopping = std::time::Instant::now();
    assert!(server.sigterm().success());
    assert!(stopping.elapsed() >= Duration::from_millis(1_200), "it waited for the call: {:?}", stopping.elapsed());
    assert!(server.log().contains("waiting for paid calls to finish"), "{}", server.log());

    let server = ServerProcess::start_in(server.dirs.clone(), &[], Some(OPERATOR_TOKEN));
    assert!(!server.log().contains("reconcile_required"), "{}", server.log());
    let newest = get(&server.url, "/v1/api/executions?limit=1", &t.session)["executions"][0].clone();
    assert_eq!(newest["state"], "succeeded", "{newest}");
    assert_eq!(get(&server.url, "/v1/api/balance", &t.session)["held_micros"], "0");
    assert_eq!(balance_micros(&server, &t.session), before - PRICE_MICROS);
    ledger_verifies(&server);
}

#[test]
fn a_call_lost_in_a_crash_is_reconciled_by_the_operator() {
    let mut server = ServerProcess::start(&[], Some(OPERATOR_TOKEN));
    let t = tenant(&server, "octocat", 1_000);
    let before = balance_micros(&server, &t.session);
    let idem = "0b7c1f6e-3d2a-4b5c-9e8f-7a6b5c4d3e2f";
    let url = server.url.clone();
    let key = t.key.clone();
    let lost = std::thread::spawn(move || execute(&url, &key, "sleep", idem, json!({ "ms": 5000 })));
    std::thread::sleep(Duration::from_millis(500));
    server.kill_9();
    assert!(lost.join().unwrap().is_err(), "the client saw the connection die");

    let server = ServerProcess::start_in(server.dirs.clone(), &[], Some(OPERATOR_TOKEN));
    assert!(server.log().contains("reconcile_required"), "{}", server.log());
    ledger_verifies(&server);

    // The same request now answers reconcile-required, not retryable, with support details.
    let (status, body) = execute(&server.url, &t.key, "sleep", idem, json!({ "ms": 5000 })).unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error_code"], "IDEMPOTENCY_UNAVAILABLE");
    assert_eq!(body["retryable"], false);
    let support_id = body["support_id"].as_str().unwrap().to_owned();
    assert_eq!(body["receipt"]["execution_id"], support_id.as_str());
    assert_eq!(body["receipt"]["held_micros"], "10000");
    // The hold is still reserved while the operator decides.
    let balance = get(&server.url, "/v1/api/balance", &t.session);
    assert_eq!(balance["held_micros"], "10000");

    let listed =
        json(&server.cli(&["executions", "list", "--operator", "--state", "reconcile_required", "--json"], None, None));
    let ids: Vec<&str> = listed["executions"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [support_id.as_str()]);

    let voided = json(&server.cli(&["executions", "reconcile", &support_id, "--void", "--json"], None, None));
    assert_eq!(voided["state"], "voided");
    assert_one_line_error(&server.cli(&["executions", "reconcile", &support_id, "--void"], None, None), "CONFLICT");
    ledger_verifies(&server);
    // The decision is in the account's audit log, once (the refused repeat left no entry).
    let audit = get(&server.url, "/v1/api/audit?action=execution.reconciled", &t.session);
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["target"], format!("execution:{support_id}"));
    assert_eq!(entries[0]["actor"]["type"], "operator");
    assert_eq!(entries[0]["changes"]["state"], json!({ "before": "reconcile_required", "after": "voided" }));

    // Voided: the Idempotency-Key is free again, and the retry runs and is charged once.
    let (status, body) = execute(&server.url, &t.key, "sleep", idem, json!({ "ms": 10 })).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(balance_micros(&server, &t.session), before - PRICE_MICROS);
    ledger_verifies(&server);
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_charge() {
    let mut server = ServerProcess::start(&[], Some(OPERATOR_TOKEN));
    let t = tenant(&server, "loaded", 100_000);
    let before = balance_micros(&server, &t.session);
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (url, key, acknowledged, stop) =
                (server.url.clone(), t.key.clone(), acknowledged.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let idem = uuid::Uuid::new_v4().to_string();
                    match execute(&url, &key, "echo", &idem, json!({ "n": 1 })) {
                        Ok((200, _)) => {
                            acknowledged.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    server.kill_9();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    let acknowledged = acknowledged.load(Ordering::SeqCst) as i64;
    assert!(acknowledged > 0, "the load produced charges before the kill");

    let mut server = ServerProcess::start_in(server.dirs.clone(), &[], Some(OPERATOR_TOKEN));
    ledger_verifies(&server);
    let succeeded = count_executions(&server, &t.session, "succeeded");
    let interrupted = get(&server.url, "/v1/operator/executions?state=reconcile_required&limit=100", OPERATOR_TOKEN);
    let interrupted: Vec<String> =
        interrupted["executions"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    assert!(succeeded >= acknowledged, "every 200 is on disk: {succeeded} succeeded, {acknowledged} acknowledged");
    assert_eq!(
        balance_micros(&server, &t.session),
        before - succeeded * PRICE_MICROS,
        "captured sum = balance decrease"
    );

    // The operator settles whatever was cut mid-flight; the books still balance.
    for (i, id) in interrupted.iter().enumerate() {
        let decision: &[&str] = if i % 2 == 0 { &["--capture", "0.01"] } else { &["--void"] };
        let mut args = vec!["executions", "reconcile", id.as_str()];
        args.extend_from_slice(decision);
        assert_success(&server.cli(&args, None, None));
    }
    ledger_verifies(&server);
    let captured = interrupted.len().div_ceil(2) as i64;
    assert_eq!(balance_micros(&server, &t.session), before - (succeeded + captured) * PRICE_MICROS);
    assert!(server.sigterm().success());

    // The audit is not a rubber stamp: a balance changed behind the ledger's back fails it.
    let db = server.data_dir().join("visa.db");
    let tamper = rusqlite::Connection::open(db).unwrap();
    tamper.execute("UPDATE accounts SET balance_micros = balance_micros + 10000 WHERE login = 'loaded'", []).unwrap();
    let data_dir = server.data_dir();
    let output = server.cli(&["ledger", "verify", "--data-dir", data_dir.to_str().unwrap()], None, None);
    assert!(!output.status.success());
    assert!(stdout(&output).contains("account balance"), "{}", stdout(&output));
}

fn count_executions(server: &ServerProcess, session: &str, state: &str) -> i64 {
    let mut count = 0;
    let mut path = format!("/v1/api/executions?limit=100&state={state}");
    loop {
        let page = get(&server.url, &path, session);
        count += page["executions"].as_array().unwrap().len() as i64;
        match page["next_cursor"].as_i64() {
            Some(cursor) => path = format!("/v1/api/executions?limit=100&state={state}&starting_after={cursor}"),
            None => return count,
        }
    }
}

/// Two fal calls lost in a `kill -9`, reconciled by the operator as captured (in micros): a
/// retry answers the operator's decision for a whole retention and never resumes the old
/// provider request; after the retention a retry is a new call that submits afresh. The
/// generations the operator was paid for are never charged again.
#[test]
fn a_reconciled_queue_call_is_never_resumed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(visa_e2e::mock_provider::MockProvider::start());
    mock.behaviour.fal_complete_after_ms.store(60_000, Ordering::SeqCst);
    let dirs = Arc::new(tempfile::tempdir().unwrap());
    let catalog = dirs.path().join("catalog.toml");
    std::fs::write(
        &catalog,
        format!(
            "[[tools]]\nid = \"images\"\nprice_micros = 20000\nmax_price_micros = 80000\ntimeout_ms = 3000\n\
             adapter = {{ type = \"fal_queue\", base_url = \"{}/fal\", app = \"test-app\", api_key_env = \"VISA_TEST_FAL_CRASH\", \
             per_output_image = true, poll_interval_ms = 20 }}\n",
            mock.base_url
        ),
    )
    .unwrap();
    let flags = ["--config", catalog.to_str().unwrap(), "--idempotency-ttl", "4s"];
    let env = [("VISA_TEST_FAL_CRASH", "fal-test-crash-0123456789")];
    let mut server = ServerProcess::start_with_env(dirs.clone(), &flags, Some(OPERATOR_TOKEN), &env);
    let t = tenant(&server, "painter", 1_000);
    let before = balance_micros(&server, &t.session);
    let idems: [&'static str; 2] = ["5a0c7a52-7b65-4d0e-9d4c-1f1e2d3c4b5a", "6b1d8b63-8c76-4e1f-8e5d-2a2f3e4d5c6b"];
    let input = json!({ "prompt": "a cat", "num_images": 2 });
    let lost: Vec<_> = idems
        .into_iter()
        .map(|idem| {
            let (url, key, input) = (server.url.clone(), t.key.clone(), input.clone());
            std::thread::spawn(move || execute(&url, &key, "images", idem, input))
        })
        .collect();
    while mock.behaviour.fal_submits.load(Ordering::SeqCst) < 2 {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    server.kill_9();
    lost.into_iter().for_each(|call| assert!(call.join().unwrap().is_err(), "the client saw the connection die"));

    let server = ServerProcess::start_with_env(dirs.clone(), &flags, Some(OPERATOR_TOKEN), &env);
    let listed = get(&server.url, "/v1/operator/executions?state=reconcile_required", OPERATOR_TOKEN);
    let ids: Vec<String> =
        listed["executions"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 2, "{listed}");
    let client = reqwest::blocking::Client::new();
    let reconcile = |id: &str| {
        let url = format!("{}/v1/operator/executions/{id}/reconcile", server.url);
        let sent = client.post(url).bearer_auth(OPERATOR_TOKEN).header("Idempotency-Key", format!("settle-{id}"));
        let response = sent.json(&json!({ "capture_micros": 40_000 })).send().unwrap();
        (response.status().as_u16(), response.json::<Value>().unwrap())
    };
    for id in &ids {
        let (status, done) = reconcile(id);
        assert_eq!((status, done["charged_micros"].as_str()), (200, Some("40000")), "{done}");
    }
    // A retry of a reconcile whose answer was lost answers the decision again, once.
    let (status, again) = reconcile(&ids[0]);
    assert_eq!((status, again["state"].as_str()), (200, Some("succeeded")), "{again}");
    assert_eq!(balance_micros(&server, &t.session), before - 80_000);

    // Within the retention: the operator's decision, and no provider contact.
    mock.behaviour.fal_complete_after_ms.store(0, Ordering::SeqCst);
    for idem in idems {
        let (status, body) = execute(&server.url, &t.key, "images", idem, input.clone()).unwrap();
        assert_eq!((status, body["error_code"].as_str()), (503, Some("IDEMPOTENCY_UNAVAILABLE")), "{body}");
        assert!(body["error"].as_str().unwrap().contains("reconciled"), "{body}");
    }
    assert_eq!(mock.behaviour.fal_submits.load(Ordering::SeqCst), 2);

    // After the retention: new calls, new submissions, never the old requests resumed.
    std::thread::sleep(Duration::from_millis(4_500));
    for idem in idems {
        let (status, body) = execute(&server.url, &t.key, "images", idem, input.clone()).unwrap();
        assert_eq!(status, 200, "{body}");
        let request = body["result"]["request_id"].as_str().unwrap();
        assert!(!["req-1", "req-2"].contains(&request), "resumed a reconciled request: {request}");
    }
    assert_eq!(mock.behaviour.fal_submits.load(Ordering::SeqCst), 4);
    assert_eq!(balance_micros(&server, &t.session), before - 160_000, "two reconciled, two new generations");
    ledger_verifies(&server);
    drop(runtime);
}

/// The outbox survives `kill -9`: an event committed with its cause, whose delivery failed
/// (nothing listened yet), is delivered by the restarted server once its retry is due.
#[test]
fn a_webhook_event_committed_before_a_kill_9_is_delivered_after_the_restart() {
    let allow = ["--webhook-allow-private", "127.0.0.0/8"];
    let mut server = ServerProcess::start(&allow, Some(OPERATOR_TOKEN));
    let t = tenant(&server, "hooked", 1_000);
    // A port nothing listens on yet: the first attempt is refused and retried 5 s later.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client = reqwest::blocking::Client::new();
    let endpoint = json!({ "url": format!("http://127.0.0.1:{port}/hook"), "events": ["key.created"] });
    let created = client.post(format!("{}/v1/api/webhooks", server.url)).bearer_auth(&t.session).json(&endpoint).send();
    assert_eq!(created.unwrap().status().as_u16(), 201);
    let key = client
        .post(format!("{}/v1/api/keys", server.url))
        .bearer_auth(&t.session)
        .json(&json!({ "label": "late" }))
        .send();
    assert_eq!(key.unwrap().status().as_u16(), 201);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let event_id = loop {
        let log = get(&server.url, "/v1/api/webhooks/1/deliveries", &t.session);
        if let Some(attempt) = log["deliveries"].as_array().and_then(|a| a.first()) {
            assert!(attempt["status"].is_null() && attempt["error"].is_string(), "{attempt}");
            break attempt["event_id"].as_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "the first attempt was never made");
        std::thread::sleep(Duration::from_millis(50));
    };
    server.kill_9();

    let receiver = WebhookReceiver::on(port);
    let server = ServerProcess::start_in(server.dirs.clone(), &allow, Some(OPERATOR_TOKEN));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while receiver.requests().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the committed event was never delivered after the restart");
        std::thread::sleep(Duration::from_millis(100));
    }
    let delivered = receiver.requests().concat();
    assert!(delivered.contains(&format!("webhook-id: {event_id}")), "{delivered}");
    assert!(delivered.contains("key.created"), "{delivered}");
    ledger_verifies(&server);
}

//! Many nodes on one PostgreSQL database, as real `visa-cli serve` processes: caps, balance,
//! Idempotency-Keys and the rate limit hold across nodes; a change on one node reaches the
//! others within a second; `kill -9` of a node and an outage of the database lose nothing
//! acknowledged. They always run on PostgreSQL (`VISA_TEST_POSTGRES_URL`; `cargo xtask test` starts one).

mod common;

use common::cluster::Cluster;
use common::*;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PRICE_MICROS: i64 = 10_000;

/// One call: status, error code (if any) and the exact body bytes.
struct Answer {
    status: u16,
    code: Option<String>,
    retryable: Option<bool>,
    body: String,
}

fn execute(url: &str, key: &str, tool: &str, idem: &str, input: Value) -> reqwest::Result<Answer> {
    execute_for(url, key, tool, idem, input, None)
}

/// A call made for an end user (`X-Visa-End-User`), if one is named.
fn execute_for(
    url: &str,
    key: &str,
    tool: &str,
    idem: &str,
    input: Value,
    end_user: Option<&str>,
) -> reqwest::Result<Answer> {
    let mut request = reqwest::blocking::Client::new()
        .post(format!("{url}/v1/api/tools/{tool}/execute"))
        .header("X-Api-Key", key)
        .header("Idempotency-Key", idem);
    if let Some(user) = end_user {
        request = request.header("X-Visa-End-User", user);
    }
    let response = request.json(&json!({ "input": input })).timeout(Duration::from_secs(30)).send()?;
    let status = response.status().as_u16();
    let body = response.text()?;
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let code = parsed["error_code"].as_str().map(str::to_owned);
    Ok(Answer { status, code, retryable: parsed["retryable"].as_bool(), body })
}

fn send(method: reqwest::Method, url: String, bearer: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::blocking::Client::new().request(method, url).bearer_auth(bearer);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().unwrap();
    (response.status().as_u16(), response.json().unwrap_or(Value::Null))
}

fn key(url: &str, session: &str, fields: Value) -> (String, i64) {
    let (status, body) = send(reqwest::Method::POST, format!("{url}/v1/api/keys"), session, Some(fields));
    assert_eq!(status, 201, "{body}");
    (body["key"].as_str().unwrap().to_owned(), body["id"].as_i64().unwrap())
}

fn balance_micros(url: &str, session: &str) -> i64 {
    let (_, body) = send(reqwest::Method::GET, format!("{url}/v1/api/balance"), session, None);
    body["balance_micros"].as_str().unwrap().parse().unwrap()
}

#[test]
fn caps_balance_and_idempotency_keys_hold_across_two_nodes() {
    let cluster = Cluster::start(2, false, 3);
    let urls: Arc<Vec<String>> = Arc::new(cluster.nodes.iter().map(|n| n.url.clone()).collect());
    let t = tenant(&cluster.nodes[0], "spread", 100_000);

    // 60 racing calls on a 10-cent daily cap, spread over both nodes: exactly 10 succeed.
    let (capped, _) = key(&urls[0], &t.session, json!({ "label": "capped", "daily_cap_cents": 10 }));
    let answers = {
        let (urls, capped) = (urls.clone(), capped.clone());
        race(60, move |i| execute(&urls[i % 2], &capped, "echo", &uuid::Uuid::new_v4().to_string(), json!({})).unwrap())
    };
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(ok, 10, "a 10-cent cap admits exactly ten 1-cent calls across nodes");
    for refused in answers.iter().filter(|a| a.status != 200) {
        assert_eq!((refused.status, refused.code.as_deref()), (429, Some("RATE_LIMITED")), "{}", refused.body);
    }

    // 32 racing duplicates over both nodes: one charge; every 200 is the same bytes, the rest
    // are told the original is in flight.
    let before = balance_micros(&urls[0], &t.session);
    let idem = uuid::Uuid::new_v4().to_string();
    let answers = {
        let (urls, k, idem) = (urls.clone(), t.key.clone(), idem.clone());
        race(32, move |i| execute(&urls[i % 2], &k, "sleep", &idem, json!({ "ms": 400 })).unwrap())
    };
    let successes: Vec<&Answer> = answers.iter().filter(|a| a.status == 200).collect();
    assert!(!successes.is_empty());
    assert!(successes.iter().all(|a| a.body == successes[0].body), "replays are byte-identical");
    for other in answers.iter().filter(|a| a.status != 200) {
        assert_eq!((other.status, other.code.as_deref()), (409, Some("IDEMPOTENCY_IN_FLIGHT")), "{}", other.body);
    }
    let replay = execute(&urls[1], &t.key, "sleep", &idem, json!({ "ms": 400 })).unwrap();
    assert_eq!(replay.body, successes[0].body, "the replay on the other node is the same bytes");
    assert_eq!(balance_micros(&urls[1], &t.session), before - PRICE_MICROS, "charged once");

    // A 5-cent balance, three keys, 30 racing calls over both nodes: exactly 5, balance 0.
    let poor = tenant(&cluster.nodes[1], "poor", 5);
    let keys: Vec<String> = (0..3)
        .map(|n| key(&urls[n % 2], &poor.session, json!({ "label": format!("k{n}"), "daily_cap_cents": 100 })).0)
        .collect();
    let _ = execute(&urls[0], &poor.key, "echo", "5a1f0c1e-0000-4000-8000-000000000000", json!({}));
    let left = balance_micros(&urls[0], &poor.session);
    let answers = {
        let (urls, keys) = (urls.clone(), Arc::new(keys));
        race(30, move |i| {
            execute(&urls[i % 2], &keys[i % 3], "echo", &uuid::Uuid::new_v4().to_string(), json!({})).unwrap()
        })
    };
    let ok = answers.iter().filter(|a| a.status == 200).count() as i64;
    assert_eq!(ok, left / PRICE_MICROS, "exactly what the balance covers");
    assert_eq!(balance_micros(&urls[1], &poor.session), 0);
    cluster.ledger_verifies();
}

/// One hot key, 64 connections over two nodes calling as fast as they can until its daily cap
/// refuses them (each node groups the calls that arrive together into one transaction): the
/// $3 cap admits exactly 300 one-cent calls, never one more, and the account pays exactly that.
#[test]
fn one_hot_key_at_64_connections_over_two_nodes_spends_exactly_its_cap() {
    let cluster = Cluster::start(2, false, 3);
    let urls: Arc<Vec<String>> = Arc::new(cluster.nodes.iter().map(|n| n.url.clone()).collect());
    let t = tenant(&cluster.nodes[0], "hot", 100_000);
    let fields = json!({ "label": "hot", "daily_cap_cents": 300, "rate_limit_per_second": 100_000 });
    let (hot, _) = key(&urls[0], &t.session, fields);
    let before = balance_micros(&urls[0], &t.session);
    let admitted = {
        let (urls, hot) = (urls.clone(), hot.clone());
        race(64, move |i| {
            let mut admitted = 0;
            loop {
                let answer = execute(&urls[i % 2], &hot, "echo", &uuid::Uuid::new_v4().to_string(), json!({})).unwrap();
                match (answer.status, answer.retryable) {
                    (200, _) => admitted += 1,
                    (429, _) if answer.body.contains("daily cap") => return admitted,
                    (503, Some(true)) => continue,
                    _ => panic!("{} {}", answer.status, answer.body),
                }
            }
        })
    };
    assert_eq!(admitted.iter().sum::<i64>(), 300, "exactly the cap's calls: {admitted:?}");
    assert_eq!(before - balance_micros(&urls[1], &t.session), 300 * PRICE_MICROS, "exactly the cap's spend");
    cluster.ledger_verifies();
}

/// One key serving three end users, with a 10-cent cap on each end user per day, over two
/// nodes: 60 racing calls of one end user are admitted exactly 10 times, refused after with
/// `limit: end_user_daily_cap`, while the other end users' calls racing beside them all spend;
/// the key then reports each end user's spend (`GET /v1/api/key?end_user=`).
#[test]
fn sixty_racing_calls_of_one_end_user_over_two_nodes_spend_exactly_its_cap() {
    let cluster = Cluster::start(2, false, 3);
    let urls: Arc<Vec<String>> = Arc::new(cluster.nodes.iter().map(|n| n.url.clone()).collect());
    let t = tenant(&cluster.nodes[0], "platform", 100_000);
    let fields = json!({ "label": "shared", "daily_cap_cents": 1000, "end_user_daily_cap_cents": 10 });
    let (shared, _) = key(&urls[0], &t.session, fields);
    let answers = {
        let (urls, shared) = (urls.clone(), shared.clone());
        // Calls 0..60 are alice's; 60..64 bob's and 64..68 carol's, racing with hers.
        race(68, move |i| {
            let user = match i {
                0..60 => "alice",
                60..64 => "bob",
                _ => "carol",
            };
            let idem = uuid::Uuid::new_v4().to_string();
            (user, execute_for(&urls[i % 2], &shared, "echo", &idem, json!({}), Some(user)).unwrap())
        })
    };
    let admitted = |who: &str| answers.iter().filter(|(user, a)| *user == who && a.status == 200).count();
    assert_eq!(admitted("alice"), 10, "a 10-cent cap on each end user admits exactly ten 1-cent calls of one");
    assert_eq!((admitted("bob"), admitted("carol")), (4, 4), "the key's other end users still spend");
    for (_, refused) in answers.iter().filter(|(_, a)| a.status != 200) {
        let body: Value = serde_json::from_str(&refused.body).unwrap();
        assert_eq!((refused.status, body["error_code"].as_str()), (429, Some("RATE_LIMITED")), "{body}");
        assert_eq!(body["limit"], "end_user_daily_cap", "{body}");
        assert!(body["resets_at"].as_str().is_some_and(|at| at.ends_with("T00:00:00Z")), "{body}");
    }
    for (user, cents, limit) in [("alice", 10, "end_user_daily_cap"), ("bob", 4, "end_user_daily_cap")] {
        let url = format!("{}/v1/api/key?end_user={user}", urls[1]);
        let (status, budget) = send(reqwest::Method::GET, url, &shared, None);
        assert_eq!(status, 200, "{budget}");
        assert_eq!(budget["end_user"]["id"], user);
        assert_eq!(budget["end_user"]["spent_today_cents"], cents, "{budget}");
        assert_eq!(budget["spendable_cents"], 10 - cents, "{budget}");
        assert_eq!(budget["limited_by"], limit, "{budget}");
    }
    cluster.ledger_verifies();
}

/// Polls `call` until it answers `expected`, and says how long that took.
fn until(expected: u16, call: impl Fn() -> Answer) -> Duration {
    let started = Instant::now();
    loop {
        let answer = call();
        if answer.status == expected {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still {} after 5 s: {}", answer.status, answer.body);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_change_on_one_node_is_enforced_by_the_other_within_a_second() {
    let cluster = Cluster::start(2, false, 3);
    let (a, b) = (cluster.url(0).to_owned(), cluster.url(1).to_owned());
    let t = tenant(&cluster.nodes[0], "changes", 10_000);
    let (raw, id) = key(&a, &t.session, json!({ "label": "moving", "daily_cap_cents": 1_000 }));
    let call = |url: &str, key: &str, tool: &str| {
        execute(url, key, tool, &uuid::Uuid::new_v4().to_string(), json!({ "ms": 1 })).unwrap()
    };
    assert_eq!(call(&b, &raw, "echo").status, 200, "B has the key cached");
    let mut seen = vec![];

    // A narrows the tools: B refuses echo.
    let (status, _) = send(
        reqwest::Method::PATCH,
        format!("{a}/v1/api/keys/{id}"),
        &t.session,
        Some(json!({ "allowed_tools": ["sleep"] })),
    );
    assert_eq!(status, 200);
    seen.push(until(403, || call(&b, &raw, "echo")));
    assert_eq!(call(&b, &raw, "sleep").status, 200);

    // A rotates with no grace: B refuses the old secret and takes the new one.
    let (status, rotated) =
        send(reqwest::Method::POST, format!("{a}/v1/api/keys/{id}/rotate"), &t.session, Some(json!({})));
    assert_eq!(status, 200, "{rotated}");
    let new_raw = rotated["key"].as_str().unwrap().to_owned();
    seen.push(until(401, || call(&b, &raw, "sleep")));
    assert_eq!(call(&b, &new_raw, "sleep").status, 200);

    // The operator unapproves the account on A: B refuses; approves it again: B serves.
    let account = format!("{a}/v1/operator/accounts/changes");
    assert_eq!(
        send(reqwest::Method::PATCH, account.clone(), OPERATOR_TOKEN, Some(json!({ "approved": false }))).0,
        200
    );
    seen.push(until(403, || call(&b, &new_raw, "sleep")));
    assert_eq!(send(reqwest::Method::PATCH, account, OPERATOR_TOKEN, Some(json!({ "approved": true }))).0, 200);
    seen.push(until(200, || call(&b, &new_raw, "sleep")));

    // A revokes the key: B refuses it.
    assert_eq!(send(reqwest::Method::DELETE, format!("{a}/v1/api/keys/{id}"), &t.session, None).0, 200);
    seen.push(until(401, || call(&b, &new_raw, "sleep")));
    eprintln!("changes on A enforced by B after {seen:?}");
    assert!(seen.iter().all(|d| *d < Duration::from_secs(1)), "every change within 1 s: {seen:?}");
}

#[test]
fn the_rate_limit_holds_with_load_spread_over_two_nodes() {
    let cluster = Cluster::start(2, false, 3);
    let urls: Arc<Vec<String>> = Arc::new(cluster.nodes.iter().map(|n| n.url.clone()).collect());
    let t = tenant(&cluster.nodes[0], "paced", 100_000);
    // A rate eight callers exceed even on a loaded 2-core runner with debug builds (CI once
    // measured 20 calls/s offered here): the test proves nothing unless some calls are limited.
    let rate = 5;
    let (raw, _) = key(&urls[0], &t.session, json!({ "label": "paced", "rate_limit_per_second": rate }));
    let (admitted, limited) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let run_for = Duration::from_secs(4);
    let started = Instant::now();
    {
        let (urls, admitted, limited) = (urls.clone(), admitted.clone(), limited.clone());
        race(8, move |i| {
            while started.elapsed() < run_for {
                let answer = execute(&urls[i % 2], &raw, "echo", &uuid::Uuid::new_v4().to_string(), json!({})).unwrap();
                match (answer.status, answer.code.as_deref()) {
                    (200, _) => admitted.fetch_add(1, Ordering::SeqCst),
                    (429, Some("RATE_LIMITED")) => limited.fetch_add(1, Ordering::SeqCst),
                    _ => panic!("{}", answer.body),
                };
            }
        });
    }
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = admitted.load(Ordering::SeqCst) as f64;
    // GCRA admits a burst of `rate`, then `rate` a second.
    let allowed = f64::from(rate) * (1.0 + elapsed);
    eprintln!(
        "{admitted} admitted ({} limited) in {elapsed:.2} s; the limit allows {allowed:.0}",
        limited.load(Ordering::SeqCst)
    );
    assert!(limited.load(Ordering::SeqCst) > 0, "the load never exceeded the rate, so nothing was tested");
    assert!(admitted <= allowed * 1.10, "{admitted} admitted over two nodes, the limit allows {allowed:.0}");
    assert!(admitted >= f64::from(rate) * elapsed * 0.90, "{admitted} admitted: the limit should not starve the key");
}

/// An acknowledged call: its Idempotency-Key, input and the exact answer.
type Acked = (String, Value, String);

/// Workers calling `echo` on `url` with fresh keys until `stop`, keeping what was acknowledged.
fn load(url: String, key: String, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<Acked>>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let (idem, input) = (uuid::Uuid::new_v4().to_string(), json!({ "n": n }));
            match execute(&url, &key, "echo", &idem, input.clone()) {
                Ok(answer) if answer.status == 200 => acked.lock().unwrap().push((idem, input, answer.body)),
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    })
}

fn executions_in_state(url: &str, state: &str) -> Vec<String> {
    let (_, body) = send(
        reqwest::Method::GET,
        format!("{url}/v1/operator/executions?state={state}&limit=100"),
        OPERATOR_TOKEN,
        None,
    );
    body["executions"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_node_killed_under_load_leaves_the_other_serving_and_loses_nothing_acknowledged() {
    let mut cluster = Cluster::start(2, false, 3);
    let (a, b) = (cluster.url(0).to_owned(), cluster.url(1).to_owned());
    let t = tenant(&cluster.nodes[0], "survivor", 100_000);
    let before = balance_micros(&b, &t.session);
    let (stop, acked) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
    let workers: Vec<_> = (0..4)
        .map(|i| load(if i % 2 == 0 { a.clone() } else { b.clone() }, t.key.clone(), stop.clone(), acked.clone()))
        .collect();
    // A long call on each node: A's is lost with A, B's must finish untouched.
    let lost = {
        let (a, k) = (a.clone(), t.key.clone());
        std::thread::spawn(move || execute(&a, &k, "sleep", &uuid::Uuid::new_v4().to_string(), json!({ "ms": 8000 })))
    };
    let survivor = {
        let (b, k) = (b.clone(), t.key.clone());
        std::thread::spawn(move || execute(&b, &k, "sleep", &uuid::Uuid::new_v4().to_string(), json!({ "ms": 6000 })))
    };
    std::thread::sleep(Duration::from_millis(1500));
    cluster.nodes[0].kill_9();
    let killed = Instant::now();
    assert!(lost.join().unwrap().is_err(), "A's client saw the connection die");
    // A's calls in flight stay running while its lease may still be live, then are reclaimed.
    let early = executions_in_state(&b, "reconcile_required");
    let early_at = killed.elapsed();
    let acked_before = acked.lock().unwrap().len();
    std::thread::sleep(Duration::from_secs(1));
    assert!(acked.lock().unwrap().len() > acked_before, "B kept serving after A died");
    let reclaimed = loop {
        let found = executions_in_state(&b, "reconcile_required");
        if !found.is_empty() {
            break killed.elapsed();
        }
        assert!(killed.elapsed() < Duration::from_secs(10), "A's lost call was never reclaimed");
        std::thread::sleep(Duration::from_millis(100));
    };
    if early_at < Duration::from_secs(2) {
        assert!(early.is_empty(), "reclaimed {early_at:?} after the kill, before a 3 s lease can expire");
    }
    assert!(
        reclaimed >= Duration::from_secs(2),
        "reclaimed after {reclaimed:?}, before the lease (3 s, renewed each 1 s) ran out"
    );

    // A comes back on its data dir; B's long call finished untouched.
    cluster.restart(0);
    let a = cluster.url(0).to_owned();
    let answer = survivor.join().unwrap().expect("B's call survived");
    assert_eq!(answer.status, 200, "{}", answer.body);
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(execute(&a, &t.key, "echo", &uuid::Uuid::new_v4().to_string(), json!({})).unwrap().status, 200);

    // Every acknowledged charge is recorded: it replays byte-identically on either node.
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 10, "the load produced charges");
    for (n, (idem, input, body)) in acked.iter().enumerate() {
        let node = if n % 2 == 0 { &a } else { &b };
        let replay = execute(node, &t.key, "echo", idem, input.clone()).unwrap();
        assert_eq!(&replay.body, body, "an acknowledged call replays the same bytes");
    }
    let succeeded = executions_in_state(&b, "succeeded").len();
    assert!(succeeded >= 1);
    let lost_calls = executions_in_state(&b, "reconcile_required");
    let balance = balance_micros(&b, &t.session);
    assert!(
        balance <= before - (acked.len() as i64 + 2) * PRICE_MICROS,
        "every acknowledged call and the two finished ones are charged"
    );
    assert!(!lost_calls.is_empty());
    cluster.ledger_verifies();
}

#[test]
fn an_outage_of_the_database_answers_retryable_loses_nothing_and_heals_without_a_restart() {
    // A lease longer than the outage: a node that cannot renew it for that long has its calls
    // reclaimed (the kill test shows it), which is not what this test is about.
    let cluster = Cluster::start(2, true, 10);
    let proxy = cluster.proxy.as_ref().unwrap();
    let (a, b) = (cluster.url(0).to_owned(), cluster.url(1).to_owned());
    let t = tenant(&cluster.nodes[0], "outage", 100_000);
    let (stop, acked) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
    let workers: Vec<_> = (0..4)
        .map(|i| load(if i % 2 == 0 { a.clone() } else { b.clone() }, t.key.clone(), stop.clone(), acked.clone()))
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    // A call whose tool ends while the database is away: its outcome cannot be recorded yet.
    let (cut_short_idem, cut_short_input) = (uuid::Uuid::new_v4().to_string(), json!({ "ms": 500 }));
    let cut_short = {
        let (a, k, idem, input) = (a.clone(), t.key.clone(), cut_short_idem.clone(), cut_short_input.clone());
        std::thread::spawn(move || execute(&a, &k, "sleep", &idem, input).unwrap())
    };
    std::thread::sleep(Duration::from_millis(200));
    proxy.cut();
    std::thread::sleep(Duration::from_millis(300));

    // While the database is away: paid calls are refused retryable with nothing charged, the
    // control plane answers 503 retryable, /healthz says not ready.
    for url in [&a, &b] {
        let answer = execute(url, &t.key, "echo", &uuid::Uuid::new_v4().to_string(), json!({})).unwrap();
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert_eq!(answer.code.as_deref(), Some("IDEMPOTENCY_UNAVAILABLE"), "{}", answer.body);
        assert_eq!(answer.retryable, Some(true), "{}", answer.body);
        let (status, body) = send(reqwest::Method::GET, format!("{url}/v1/api/keys"), &t.session, None);
        assert_eq!((status, body["retryable"].as_bool()), (503, Some(true)), "{body}");
        let health = reqwest::blocking::get(format!("{url}/healthz")).unwrap();
        assert_eq!(health.status().as_u16(), 503, "not ready without the database");
    }
    let acked_during_outage = acked.lock().unwrap().len();
    std::thread::sleep(Duration::from_secs(3));
    let cut_short = cut_short.join().unwrap();
    assert_eq!(cut_short.status, 503, "{}", cut_short.body);
    assert_eq!(cut_short.code.as_deref(), Some("IDEMPOTENCY_UNAVAILABLE"), "{}", cut_short.body);
    assert_eq!(cut_short.retryable, Some(true), "the outcome is known, only not recorded: {}", cut_short.body);
    proxy.restore();

    // Back: both nodes serve again by themselves.
    for url in [&a, &b] {
        let started = Instant::now();
        loop {
            let answer = execute(url, &t.key, "echo", &uuid::Uuid::new_v4().to_string(), json!({})).unwrap();
            if answer.status == 200 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "{url} did not recover: {}", answer.body);
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(reqwest::blocking::get(format!("{url}/healthz")).unwrap().status().as_u16(), 200);
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    // The outcome A kept in memory is recorded once the database is back: the client's retry
    // (on the other node) gets it, charged once.
    let started = Instant::now();
    let recorded = loop {
        let answer = execute(&b, &t.key, "sleep", &cut_short_idem, cut_short_input.clone()).unwrap();
        if answer.status != 409 {
            break answer;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the outcome was never recorded: {}", answer.body);
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(recorded.status, 200, "{}", recorded.body);
    assert_eq!(execute(&a, &t.key, "sleep", &cut_short_idem, cut_short_input).unwrap().body, recorded.body);
    // Nothing stays held: a hold whose COMMIT answer the cut lost is voided by its node.
    let started = Instant::now();
    while !executions_in_state(&a, "running").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "calls stuck running: {:?}",
            executions_in_state(&a, "running")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(executions_in_state(&a, "reconcile_required").is_empty(), "no live node's call needs an operator");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > acked_during_outage, "the load went on after the outage");
    for (n, (idem, input, body)) in acked.iter().enumerate() {
        let node = if n % 2 == 0 { &a } else { &b };
        let replay = execute(node, &t.key, "echo", idem, input.clone()).unwrap();
        assert_eq!(&replay.body, body, "an acknowledged call replays the same bytes");
    }
    cluster.ledger_verifies();
}

/// A node paused past its lease mid-call: the other node reclaims the call, the operator decides
/// it (a capture of nothing), and when the paused node wakes its settle is refused — its client
/// never gets a 200 for a call the operator decided, and the operator's decision stands.
#[test]
fn a_node_waking_after_an_operators_decision_never_answers_200_for_the_call() {
    let cluster = Cluster::start(2, false, 3);
    let t = tenant(&cluster.nodes[0], "paused", 1_000);
    let before = balance_micros(cluster.url(0), &t.session);
    let (url, key) = (cluster.url(0).to_owned(), t.key.clone());
    let call = std::thread::spawn(move || {
        execute(&url, &key, "sleep", "6c1e4a20-93b7-4d1f-8a5e-2f0c9b7d3e11", json!({ "ms": 2000 }))
    });
    std::thread::sleep(Duration::from_millis(500));
    cluster.nodes[0].pause();
    // Past the lease (3 s), node B turns the call into reconcile_required.
    let mut reclaimed = vec![];
    for _ in 0..100 {
        reclaimed = executions_in_state(cluster.url(1), "reconcile_required");
        if !reclaimed.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(reclaimed.len(), 1, "node B reclaimed the paused node's call");
    let decided = cluster.nodes[1].cli(
        &["--json", "executions", "reconcile", &reclaimed[0], "--capture-micros", "0"],
        None,
        None,
    );
    assert_success(&decided);
    cluster.nodes[0].resume();
    let answer = call.join().unwrap().expect("the paused node answers once it wakes");
    assert_ne!(answer.status, 200, "a 200 for a call the operator decided: {}", answer.body);
    assert_eq!(answer.retryable, Some(false), "{}", answer.body);
    let (_, execution) =
        send(reqwest::Method::GET, format!("{}/v1/api/executions/{}", cluster.url(1), reclaimed[0]), &t.session, None);
    assert_eq!(
        (execution["state"].as_str(), execution["charged_micros"].as_str()),
        (Some("succeeded"), Some("0")),
        "{execution}"
    );
    assert_eq!(balance_micros(cluster.url(1), &t.session), before, "the operator captured nothing");
    cluster.ledger_verifies();
}

/// One MCP request to a node, as a client of the 2025-06-18 revision sends it (with the session
/// header once it has one): the status, the session id answered, and the JSON-RPC answer.
fn mcp(url: &str, key: &str, session: Option<&str>, body: Value) -> (u16, Option<String>, Value) {
    let mut request = reqwest::blocking::Client::new()
        .post(format!("{url}/v1/mcp"))
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body)
        .timeout(Duration::from_secs(30));
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let session = response.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().unwrap();
    let json =
        text.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).rfind(|d| !d.is_empty()).unwrap_or(&text);
    (status, session, serde_json::from_str(json.trim()).unwrap_or(Value::Null))
}

/// An MCP session opened on one node continues on the other (its state is in the database):
/// a `tools/call` there succeeds without a new `initialize`, and the same request delivered
/// again to the first node is answered from its record — one execution, one charge.
#[test]
fn an_mcp_session_opened_on_one_node_continues_on_the_other() {
    let cluster = Cluster::start(2, false, 3);
    let t = tenant(&cluster.nodes[0], "agent", 1_000);
    let initialize = json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "nodes", "version": "1" } } });
    let (status, session, _) = mcp(cluster.url(0), &t.key, None, initialize);
    assert_eq!(status, 200);
    let session = session.expect("a session id");
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    assert!(mcp(cluster.url(0), &t.key, Some(&session), initialized).0 < 300);
    let before = balance_micros(cluster.url(0), &t.session);
    let call = json!({ "jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": { "name": "echo", "arguments": { "n": 5 } } });
    let (status, _, there) = mcp(cluster.url(1), &t.key, Some(&session), call.clone());
    assert_eq!(status, 200, "{there}");
    assert_eq!(there["result"]["structuredContent"], json!({ "n": 5 }), "{there}");
    let (_, _, again) = mcp(cluster.url(0), &t.key, Some(&session), call);
    let execution = |answer: &Value| answer["result"]["_meta"]["dev.visakeys/execution_id"].clone();
    assert_eq!(execution(&again), execution(&there), "redelivered to the first node: answered from its record");
    assert_eq!(balance_micros(cluster.url(1), &t.session), before - PRICE_MICROS, "charged once");
    cluster.ledger_verifies();
}

/// Two nodes deliver one outbox: every event reaches the receiver, none twice (each delivery
/// is leased by one node at a time), whichever node wrote it.
#[test]
fn webhook_events_written_on_two_nodes_are_each_delivered_once() {
    let cluster = Cluster::start(2, false, 3);
    let t = tenant(&cluster.nodes[0], "hooks", 1_000);
    let receiver = WebhookReceiver::start();
    let endpoint = json!({ "url": receiver.url(), "events": ["webhook.test"] });
    assert_eq!(
        send(reqwest::Method::POST, format!("{}/v1/api/webhooks", cluster.nodes[0].url), &t.session, Some(endpoint)).0,
        201
    );
    let mut sent = std::collections::BTreeSet::new();
    for i in 0..40 {
        let url = format!("{}/v1/api/webhooks/1/test", cluster.nodes[i % 2].url);
        let (status, body) = send(reqwest::Method::POST, url, &t.session, Some(json!({})));
        assert_eq!(status, 200, "{body}");
        sent.insert(body["event_id"].as_str().unwrap().to_owned());
    }
    let started = Instant::now();
    while receiver.requests().len() < sent.len() {
        assert!(started.elapsed() < Duration::from_secs(20), "{} of 40 delivered", receiver.requests().len());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1_500));
    let ids: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.lines().find_map(|l| l.strip_prefix("webhook-id: ")).unwrap_or_default().trim().to_owned())
        .collect();
    assert_eq!(ids.len(), 40, "each event once, none twice: {ids:?}");
    assert_eq!(ids.into_iter().collect::<std::collections::BTreeSet<_>>(), sent);
}

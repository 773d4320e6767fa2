//! One server per data dir: a second `visa-cli serve` on a data dir in use exits at once with
//! one line naming the dir and the holder's pid, having changed nothing (in particular, the
//! first server's calls in flight finish normally, never swept into `reconcile_required`); a
//! server whose port is taken leaves no data dir, token or database behind.

mod common;

use common::*;
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Runs `visa-cli serve` expecting it to exit with an error within 10 s; returns its stderr.
fn serve_fails(data_dir: &std::path::Path, listen: &str) -> String {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .env("VISA_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the second server started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success(), "the second server must exit with an error");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn execute(url: &str, key: &str, idem: &str, ms: u64) -> (u16, Value) {
    let response = reqwest::blocking::Client::new()
        .post(format!("{url}/v1/api/tools/sleep/execute"))
        .header("X-Api-Key", key)
        .header("Idempotency-Key", idem)
        .json(&json!({ "input": { "ms": ms } }))
        .send()
        .unwrap();
    (response.status().as_u16(), response.json().unwrap())
}

#[test]
fn a_second_server_on_a_data_dir_in_use_is_refused_and_changes_nothing() {
    let server = ServerProcess::start(&[], Some(OPERATOR_TOKEN));
    let Tenant { key, .. } = tenant(&server, "busy", 1000);
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let (url, key) = (server.url.clone(), key.clone());
            std::thread::spawn(move || execute(&url, &key, &uuid::Uuid::new_v4().to_string(), 1500))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    // Another port, the same data dir: refused by the lock, naming the holder.
    let error = serve_fails(&server.data_dir(), "127.0.0.1:0");
    let pid = server.child.id().to_string();
    assert!(error.contains(&server.data_dir().display().to_string()) && error.contains(&pid), "{error}");
    assert_eq!(error.trim().lines().count(), 1, "one line: {error}");
    // The same port too: refused (the port is taken), still nothing changed.
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let error = serve_fails(&server.data_dir(), &format!("127.0.0.1:{port}"));
    assert!(error.contains("cannot listen"), "{error}");

    for call in calls {
        let (status, body) = call.join().unwrap();
        assert_eq!(status, 200, "the first server's call finished normally: {body}");
    }
    let waiting = reqwest::blocking::Client::new()
        .get(format!("{}/v1/operator/executions?state=reconcile_required", server.url))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(waiting["executions"], json!([]), "no call was swept into reconcile_required");
}

#[test]
fn a_server_that_cannot_bind_leaves_nothing_behind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dirs = tempfile::tempdir().unwrap();
    let data_dir = dirs.path().join("never-created");
    let error = serve_fails(&data_dir, &taken.local_addr().unwrap().to_string());
    assert!(error.contains("cannot listen"), "{error}");
    assert!(!data_dir.exists(), "no data dir, token or database was created");
}

/// `threads` clients making paid calls (each must succeed) until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(server: &ServerProcess, key: &str, threads: usize) -> Self {
        let (stop, calls) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let threads = (0..threads)
            .map(|_| {
                let (url, key, stop, calls) = (server.url.clone(), key.to_owned(), stop.clone(), calls.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        assert_eq!(execute(&url, &key, &uuid::Uuid::new_v4().to_string(), 0).0, 200);
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Self { stop, calls, threads }
    }

    /// How many calls the clients made so far.
    fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// Stops the clients; how many calls they made.
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().for_each(|t| t.join().unwrap());
        self.calls.load(Ordering::Relaxed)
    }
}

/// `ledger verify` while the server is under load reads one consistent snapshot: it never
/// reports a mismatch that is only a change it saw half of, and it writes nothing.
#[test]
fn ledger_verify_during_load_never_cries_wolf() {
    let server = ServerProcess::start(&[], Some(OPERATOR_TOKEN));
    let Tenant { key, .. } = tenant(&server, "loaded", 1_000_000);
    let load = Load::start(&server, &key, 6);
    let data_dir = server.data_dir();
    // At least 15 verifies, and as many more as it takes for 50 calls to land among them (a
    // fast machine verifies quicker than the clients' first calls).
    let mut verifies = 0;
    while verifies < 15 || load.calls() <= 50 {
        let output = server.cli(&["ledger", "verify", "--data-dir", data_dir.to_str().unwrap()], None, None);
        let out = assert_success(&output);
        assert!(out.contains("ledger ok"), "{out}");
        verifies += 1;
        assert!(verifies < 1_000, "the load made {} calls in {verifies} verifies", load.calls());
    }
    let as_json =
        json(&server.cli(&["ledger", "verify", "--data-dir", data_dir.to_str().unwrap(), "--json"], None, None));
    assert_eq!(as_json, json!({ "ok": true, "problems": [] }), "--json prints JSON");
    let calls = load.stop();
    assert!(calls > 50, "the verifies ran under load ({calls} calls)");
}

/// `visa-cli backup` while the server takes paid calls writes a complete database; a server
/// started on it (the restore procedure) verifies and serves the same account and session.
#[test]
fn a_backup_taken_under_load_restores_to_a_consistent_server() {
    let server = ServerProcess::start(&[], Some(OPERATOR_TOKEN));
    let client = reqwest::blocking::Client::new();
    let Tenant { session, key } = tenant(&server, "saved", 100_000);
    let load = Load::start(&server, &key, 4);
    std::thread::sleep(Duration::from_millis(300));
    let restored = tempfile::tempdir().unwrap();
    std::fs::create_dir(restored.path().join("data")).unwrap();
    let file = restored.path().join("data").join(visa_server::DATABASE_FILE);
    let data_dir = server.data_dir();
    let out = assert_success(&server.cli(
        &["backup", "--data-dir", data_dir.to_str().unwrap(), file.to_str().unwrap()],
        None,
        None,
    ));
    assert!(out.contains("backed up"), "{out}");
    load.stop();
    assert_eq!(mode(&file) & 0o777, 0o600, "the copy is private");
    let again = server.cli(&["backup", "--data-dir", data_dir.to_str().unwrap(), file.to_str().unwrap()], None, None);
    assert_one_line_error(&again, "exists");

    let copy = ServerProcess::start_in(std::sync::Arc::new(restored), &[], Some(OPERATOR_TOKEN));
    let verified = copy.cli(&["ledger", "verify", "--data-dir", copy.data_dir().to_str().unwrap()], None, None);
    assert!(assert_success(&verified).contains("ledger ok"));
    let balance = |url: &str| -> i64 {
        let body: Value =
            client.get(format!("{url}/v1/api/balance")).bearer_auth(&session).send().unwrap().json().unwrap();
        body["balance_micros"].as_str().unwrap().parse().unwrap()
    };
    let (live, saved) = (balance(&server.url), balance(&copy.url));
    assert!(saved < 1_000_000_000 && saved >= live, "the copy holds the state at its time: {saved} vs live {live}");
}

/// The data dir is 0700 and every file in it 0600 whatever the umask (the database holds
/// password hashes and the audit log); a file loosened while the server was down is tightened
/// at the next start, with a warning.
#[test]
fn the_data_dir_and_its_files_are_private() {
    let mut server = ServerProcess::start(&[], None);
    let data_dir = server.data_dir();
    let private = |dir: &std::path::Path| {
        assert_eq!(mode(dir) & 0o777, 0o700, "{}", dir.display());
        let names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        for name in ["visa.db", "visa.db-wal", "visa.db-shm", "lock", "operator-token"] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
            assert_eq!(mode(&dir.join(name)) & 0o777, 0o600, "{name}");
        }
    };
    private(&data_dir);
    assert!(!server.log().contains("tightening"), "a fresh data dir is private from its first byte: {}", server.log());
    assert_eq!(server.sigterm().code(), Some(0));
    std::fs::set_permissions(data_dir.join("visa.db"), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&data_dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let again = ServerProcess::start_in(server.dirs.clone(), &[], None);
    std::thread::sleep(Duration::from_millis(200));
    private(&data_dir);
    assert!(again.log().contains("tightening permissions"), "{}", again.log());
}

//! Helpers shared by the binary's tests: `ServerProcess` runs the real `visa-cli serve` on
//! a random port (log line parsed for the address); `cli` runs client commands against it.
#![allow(dead_code)]

pub mod cluster;

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_visa-cli");
pub const OPERATOR_TOKEN: &str = "cli-test-operator-token-0123456789";

/// A `visa-cli serve` process; killed on drop unless stopped.
pub struct ServerProcess {
    pub child: Child,
    pub url: String,
    pub dirs: Arc<tempfile::TempDir>,
    log: Arc<Mutex<String>>,
}

impl ServerProcess {
    pub fn start(extra: &[&str], operator_token: Option<&str>) -> Self {
        Self::start_in(Arc::new(tempfile::tempdir().unwrap()), extra, operator_token)
    }

    /// Starts on the data dir of `dirs` (e.g. again after a crash).
    pub fn start_in(dirs: Arc<tempfile::TempDir>, extra: &[&str], operator_token: Option<&str>) -> Self {
        Self::start_with_env(dirs, extra, operator_token, &[])
    }

    /// Starts with extra environment variables (e.g. a provider key).
    pub fn start_with_env(
        dirs: Arc<tempfile::TempDir>,
        extra: &[&str],
        operator_token: Option<&str>,
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(BIN);
        command.envs(env.iter().copied());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dirs.path().join("data"))
            .args(extra)
            .env_remove("VISA_OPERATOR_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(token) = operator_token {
            command.env("VISA_OPERATOR_TOKEN", token);
        }
        let mut child = command.spawn().expect("spawn visa-cli serve");
        let log = Arc::new(Mutex::new(String::new()));
        let addr = wait_for_listen_line(&mut child, log.clone());
        Self { child, url: format!("http://{addr}"), dirs, log }
    }

    /// Starts as the README does: in `dirs` as its working directory, with the default data
    /// dir (`./visa-data`) and a generated operator token.
    pub fn start_as_in_the_readme(dirs: Arc<tempfile::TempDir>) -> Self {
        let mut command = Command::new(BIN);
        command
            .current_dir(dirs.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("VISA_OPERATOR_TOKEN")
            .env_remove("VISA_DATA_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn visa-cli serve");
        let log = Arc::new(Mutex::new(String::new()));
        let addr = wait_for_listen_line(&mut child, log.clone());
        Self { child, url: format!("http://{addr}"), dirs, log }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dirs.path().join("data")
    }

    /// Runs a client command against this server with its own config dir.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>, session: Option<&str>) -> Output {
        let mut child = self.cli_command(args, session).spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    /// A client command against this server with its own config dir, all streams piped.
    pub fn cli_command(&self, args: &[&str], session: Option<&str>) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("VISA_API_URL", &self.url)
            .env("VISA_CONFIG_DIR", self.dirs.path().join("config"))
            .env("VISA_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env_remove("VISA_SESSION_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(token) = session {
            command.env("VISA_SESSION_TOKEN", token);
        }
        command
    }

    /// SIGSTOP: the process freezes (a GC pause, a frozen VM, a debugger) until `resume`.
    pub fn pause(&self) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGSTOP) };
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGCONT) };
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl ServerProcess {
    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `kill -9`: no shutdown, no flush, no goodbye.
    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the server log until it says where it listens; keeps draining it afterwards.
fn wait_for_listen_line(child: &mut Child, log: Arc<Mutex<String>>) -> String {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log.lock().unwrap().push_str(&line);
            log.lock().unwrap().push('\n');
            if !sent && line.contains("listening") {
                let addr =
                    line.split("addr=").nth(1).and_then(|rest| rest.split_whitespace().next()).map(str::to_owned);
                let _ = tx.send(addr);
                sent = true;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30)).ok().flatten().expect("server logs its listen address")
}

/// No secret reached the server's log or any file of its data dir (the operator token's own
/// file aside).
pub fn assert_no_secret_kept(server: &ServerProcess, secrets: &[&str]) {
    let log = server.log();
    assert!(log.contains("created"), "the log is being captured: {log}");
    for secret in secrets {
        assert!(!log.contains(secret), "a secret is in the server log");
        for entry in std::fs::read_dir(server.data_dir()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found || path.ends_with("operator-token"), "a secret is stored in {}", path.display());
        }
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
pub fn assert_success(output: &Output) -> String {
    assert!(output.status.success(), "stdout: {}\nstderr: {}", stdout(output), stderr(output));
    stdout(output)
}

/// Fails non-zero with exactly one `error: ...` line on stderr and no panic.
#[track_caller]
pub fn assert_one_line_error(output: &Output, needle: &str) {
    assert!(!output.status.success(), "expected failure; stdout: {}", stdout(output));
    let err = stderr(output);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("error: "), "{err:?}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
    assert!(!err.contains("panicked"), "{err:?}");
}

pub fn json(output: &Output) -> Value {
    serde_json::from_str(&assert_success(output)).expect("--json prints JSON")
}

#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// An approved account with `credit_cents` and one key whose caps and rate limit do not get in
/// the way of a load: its session and raw key.
pub struct Tenant {
    pub session: String,
    pub key: String,
}

pub fn tenant(server: &ServerProcess, login: &str, credit_cents: i64) -> Tenant {
    let client = reqwest::blocking::Client::new();
    let account = post_json(
        &client,
        format!("{}/v1/operator/accounts", server.url),
        OPERATOR_TOKEN,
        serde_json::json!({ "login": login, "approved": true, "credit_cents": credit_cents }),
    );
    let session = account["session_token"].as_str().unwrap().to_owned();
    let key = post_json(
        &client,
        format!("{}/v1/api/keys", server.url),
        &session,
        serde_json::json!({ "label": "load", "daily_cap_cents": 100_000_000, "rate_limit_per_second": 100_000 }),
    );
    Tenant { session, key: key["key"].as_str().unwrap().to_owned() }
}

pub fn post_json(client: &reqwest::blocking::Client, url: String, bearer: &str, body: Value) -> Value {
    client.post(url).bearer_auth(bearer).json(&body).send().unwrap().json().unwrap()
}

/// Runs `calls` at once (a barrier releases them together); call `i` is given `i`.
pub fn race<T: Send + 'static>(calls: usize, call: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    let (barrier, call) = (Arc::new(std::sync::Barrier::new(calls)), Arc::new(call));
    let threads: Vec<_> = (0..calls)
        .map(|i| {
            let (barrier, call) = (barrier.clone(), call.clone());
            std::thread::spawn(move || {
                barrier.wait();
                call(i)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// A webhook receiver on a loopback port: it answers every request 200 and keeps each one
/// (head and body, as text). `on` binds a port chosen earlier (a receiver that comes up late).
pub struct WebhookReceiver {
    pub port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl WebhookReceiver {
    pub fn start() -> Self {
        Self::on(0)
    }

    pub fn on(port: u16) -> Self {
        use std::io::Read;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let kept = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buffer = vec![0u8; 65_536];
                let read = stream.read(&mut buffer).unwrap_or(0);
                kept.lock().unwrap().push(String::from_utf8_lossy(&buffer[..read]).into_owned());
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            }
        });
        Self { port, requests }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

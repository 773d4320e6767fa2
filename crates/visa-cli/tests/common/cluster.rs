//! Several `visa-cli serve` processes on one PostgreSQL database (each with its own data
//! dir), optionally reaching it through a TCP proxy the test can cut, as a failover or an
//! outage would.

use super::*;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};

/// libfaketime, which `add_node_with_clock` loads into a node (Debian's `faketime` package).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Nodes of one deployment, started with the same flags and operator token.
pub struct Cluster {
    pub nodes: Vec<ServerProcess>,
    pub database_url: String,
    pub proxy: Option<TcpProxy>,
    flags: Vec<String>,
}

impl Cluster {
    /// `count` nodes on a fresh PostgreSQL test database, with a node lease of `lease_s`. Several
    /// nodes always need PostgreSQL (SQLite is one node per data dir by design: tests/data_dir.rs
    /// proves a second one is refused), whichever backend the rest of the run uses: without
    /// `VISA_TEST_POSTGRES_URL` the test fails and names the command that provides one.
    pub fn start(count: usize, through_proxy: bool, lease_s: u32) -> Self {
        let admin = std::env::var("VISA_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!(
                "several nodes need PostgreSQL: run `cargo xtask test` (it starts one), or set VISA_TEST_POSTGRES_URL"
            )
        });
        let database_url = std::thread::spawn(move || visa_store::postgres::create_test_database(&admin))
            .join()
            .unwrap()
            .expect("a PostgreSQL test database");
        let proxy = through_proxy.then(|| TcpProxy::start(&database_url));
        let node_url = match &proxy {
            Some(proxy) => proxy.rewrite(&database_url),
            None => database_url.clone(),
        };
        // Webhooks may reach a receiver on this machine.
        let flags =
            ["--database", &node_url, "--node-lease", &format!("{lease_s}s"), "--webhook-allow-private", "127.0.0.0/8"]
                .map(str::to_owned)
                .to_vec();
        let mut cluster = Self { nodes: vec![], database_url, proxy, flags };
        for _ in 0..count {
            let node = cluster.spawn(Arc::new(tempfile::tempdir().unwrap()));
            cluster.nodes.push(node);
        }
        cluster
    }

    fn spawn(&self, dirs: Arc<tempfile::TempDir>) -> ServerProcess {
        self.spawn_with_env(dirs, &[])
    }

    fn spawn_with_env(&self, dirs: Arc<tempfile::TempDir>, env: &[(&str, &str)]) -> ServerProcess {
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        ServerProcess::start_with_env(dirs, &flags, Some(OPERATOR_TOKEN), env)
    }

    /// Starts node `i` again on its data dir (after `kill_9` or `sigterm`).
    pub fn restart(&mut self, i: usize) {
        let dirs = self.nodes[i].dirs.clone();
        self.nodes[i] = self.spawn(dirs);
    }

    /// Adds a node whose wall clock runs `seconds` ahead of this machine's (behind if negative):
    /// libfaketime under the real binary, the monotonic clock left alone.
    pub fn add_node_with_clock(&mut self, seconds: i64) -> usize {
        assert!(
            std::path::Path::new(LIBFAKETIME).exists(),
            "a node with its own clock needs libfaketime: apt-get install faketime (`cargo xtask test` installs it)"
        );
        let offset = format!("{seconds:+}s");
        let env = [("LD_PRELOAD", LIBFAKETIME), ("FAKETIME", offset.as_str()), ("FAKETIME_DONT_FAKE_MONOTONIC", "1")];
        let node = self.spawn_with_env(Arc::new(tempfile::tempdir().unwrap()), &env);
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// A connection to the nodes' database, for what only the database can say or do.
    pub fn database(&self) -> postgres::Client {
        let url = self.database_url.clone();
        std::thread::spawn(move || postgres::Client::connect(&url, postgres::NoTls).expect("the test database"))
            .join()
            .unwrap()
    }

    /// Waits (at most `limit`) until no execution is running or awaits an operator and nothing
    /// is held; panics with what is left otherwise.
    #[track_caller]
    pub fn settles_within(&self, limit: Duration) {
        let mut db = self.database();
        let started = std::time::Instant::now();
        loop {
            let row = db
                .query_one(
                    "SELECT count(*) FILTER (WHERE state = 'running'), \
                            count(*) FILTER (WHERE state = 'reconcile_required'), \
                            (SELECT COALESCE(sum(held_micros), 0)::BIGINT FROM accounts) \
                     FROM executions",
                    &[],
                )
                .unwrap();
            let (running, reconcile, held): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
            if (running, reconcile, held) == (0, 0, 0) {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "after {limit:?}: {running} running, {reconcile} reconcile_required, {held} micros held"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn url(&self, i: usize) -> &str {
        &self.nodes[i].url
    }

    /// `visa-cli ledger verify --database` against the database itself finds nothing wrong.
    #[track_caller]
    pub fn ledger_verifies(&self) {
        let output = self.nodes[0].cli(&["ledger", "verify", "--database", &self.database_url], None, None);
        let out = assert_success(&output);
        assert!(out.contains("ledger ok"), "{out}");
    }
}

/// Forwards loopback TCP connections to the database; `cut` breaks every connection and
/// refuses new ones until `restore`; `arm_commit` makes one COMMIT misbehave.
pub struct TcpProxy {
    port: u16,
    target: String,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    armed: Armed,
}

/// What happens to the first COMMIT sent on a connection after it sent `marker` (bytes of
/// a statement's parameters, e.g. an Idempotency-Key): the node's connection breaks at once,
/// and the COMMIT reaches the database…
#[derive(Clone, Copy, Debug)]
pub enum CommitFault {
    /// …this much later (a proxy, a slow synchronous standby): it commits then.
    Late(Duration),
    /// …at once: it commits, and only its answer is lost.
    AnswerLost,
}

/// The armed fault: the marker that picks the connection, and what its COMMIT meets.
type Armed = Arc<Mutex<Option<(Vec<u8>, CommitFault)>>>;

/// The simple-query message `COMMIT` as the driver sends it.
const COMMIT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

impl TcpProxy {
    fn start(database_url: &str) -> Self {
        let target = host_port(database_url);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy =
            Self { port, target: target.clone(), down: Arc::default(), open: Arc::default(), armed: Arc::default() };
        let (down, open, armed) = (proxy.down.clone(), proxy.open.clone(), proxy.armed.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if down.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else { continue };
                open.lock().unwrap().extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                forward_to_database(client.try_clone().unwrap(), server.try_clone().unwrap(), armed.clone());
                pipe(server, client);
            }
        });
        proxy
    }

    /// The database URL with the proxy's address in place of the database's.
    fn rewrite(&self, url: &str) -> String {
        url.replacen(&self.target, &format!("127.0.0.1:{}", self.port), 1)
    }

    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// Makes the next COMMIT after `marker` misbehave as `fault` says (once).
    pub fn arm_commit(&self, marker: &[u8], fault: CommitFault) {
        *self.armed.lock().unwrap() = Some((marker.to_vec(), fault));
    }

    /// Whether the armed fault has happened.
    pub fn commit_fault_done(&self) -> bool {
        self.armed.lock().unwrap().is_none()
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// Node → database, watching for the armed marker and the COMMIT that follows it.
fn forward_to_database(mut client: TcpStream, mut server: TcpStream, armed: Armed) {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let mut marked = false;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match client.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buffer[..n];
            let fault = {
                let mut armed = armed.lock().unwrap();
                let matches = |needle: &[u8]| chunk.windows(needle.len()).any(|w| w == needle);
                if let Some((marker, _)) = armed.as_ref() {
                    marked |= matches(marker);
                }
                if marked && matches(COMMIT) { armed.take().map(|(_, fault)| fault) } else { None }
            };
            match fault {
                None => {
                    if server.write_all(chunk).is_err() {
                        break;
                    }
                }
                Some(fault) => {
                    let _ = client.shutdown(Shutdown::Both);
                    if let CommitFault::Late(delay) = fault {
                        std::thread::sleep(delay);
                    }
                    let _ = server.write_all(chunk);
                    std::thread::sleep(Duration::from_millis(200));
                    break;
                }
            }
        }
        let _ = server.shutdown(Shutdown::Both);
    });
}

/// `host:port` of a `postgres://user@host:port/db?…` URL.
fn host_port(url: &str) -> String {
    let after_scheme = url.split("://").nth(1).expect("a URL");
    let authority = after_scheme.split(['/', '?']).next().unwrap();
    authority.rsplit('@').next().unwrap().to_owned()
}

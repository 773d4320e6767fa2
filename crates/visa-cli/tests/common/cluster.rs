//! Several `visa-cli serve` processes on one PostgreSQL database (each with its own data
//! dir), optionally reaching it through a TCP proxy the test can cut, as a failover or an
//! outage would.

use super::*;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};

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
        let flags = vec!["--database".to_owned(), node_url, "--node-lease".to_owned(), format!("{lease_s}s")];
        let mut cluster = Self { nodes: vec![], database_url, proxy, flags };
        for _ in 0..count {
            let node = cluster.spawn(Arc::new(tempfile::tempdir().unwrap()));
            cluster.nodes.push(node);
        }
        cluster
    }

    fn spawn(&self, dirs: Arc<tempfile::TempDir>) -> ServerProcess {
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        ServerProcess::start_in(dirs, &flags, Some(OPERATOR_TOKEN))
    }

    /// Starts node `i` again on its data dir (after `kill_9`).
    pub fn restart(&mut self, i: usize) {
        let dirs = self.nodes[i].dirs.clone();
        self.nodes[i] = self.spawn(dirs);
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
/// refuses new ones until `restore`.
pub struct TcpProxy {
    port: u16,
    target: String,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl TcpProxy {
    fn start(database_url: &str) -> Self {
        let target = host_port(database_url);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (down, open) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let proxy = Self { port, target: target.clone(), down: down.clone(), open: open.clone() };
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if down.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else { continue };
                let mut open = open.lock().unwrap();
                open.extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
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
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// `host:port` of a `postgres://user@host:port/db?…` URL.
fn host_port(url: &str) -> String {
    let after_scheme = url.split("://").nth(1).expect("a URL");
    let authority = after_scheme.split(['/', '?']).next().unwrap();
    authority.rsplit('@').next().unwrap().to_owned()
}

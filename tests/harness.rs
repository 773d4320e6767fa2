//! The end-to-end test harness: `TestApp::spawn()` starts the real server library on a
//! random loopback port with its own temporary data dir, on the database `VISA_TEST_DATABASE`
//! names (a real SQLite file by default, or a fresh PostgreSQL database), and speaks HTTP to it
//! with reqwest. Helpers create accounts and keys through the public API only.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use tempfile::TempDir;
use visa_core::key::Environment;
use visa_server::{ServeConfig, Server};

pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";

/// One answer: status, headers and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    /// The body's bytes as they came.
    pub raw: Vec<u8>,
}

impl Reply {
    /// Asserts the error envelope with this status and code; returns the body.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["success"], json!(false), "body: {}", self.body);
        assert_eq!(self.body["error_code"], json!(code), "body: {}", self.body);
        assert!(self.body["error"].as_str().is_some_and(|m| !m.is_empty()), "body: {}", self.body);
        assert!(self.body["retryable"].is_boolean(), "body: {}", self.body);
        &self.body
    }

    #[track_caller]
    pub fn assert_ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["success"], json!(true), "body: {}", self.body);
        &self.body
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub data_dir: TempDir,
    pub environment: Environment,
    /// The server's clock: a manual one, so a test can move time (`clock.advance`).
    pub clock: visa_server::clock::Clock,
    /// The database the server runs on (the backend `VISA_TEST_DATABASE` names).
    pub database: visa_store::Database,
    server: Option<Server>,
    http: reqwest::Client,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_preview() -> Self {
        Self::spawn_with(|c| c.environment = Environment::Preview).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut ServeConfig)) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), data_dir.path().to_owned());
        config.operator_token = Some(OPERATOR_TOKEN.to_owned());
        // The backend the environment names (`VISA_TEST_DATABASE`), so the whole suite runs on each.
        config.database = Some(visa_store::Database::for_tests(data_dir.path()).expect("VISA_TEST_DATABASE"));
        config.clock = visa_server::clock::Clock::manual();
        // Tests sign in and accept invitations far faster than people do.
        let many = visa_server::ratelimit::Rate::per_minute(600_000, 10_000);
        config.sign_in_limits = visa_server::auth::throttle::SignInLimits { per_ip: many, per_login: many };
        adjust(&mut config);
        let (environment, clock) = (config.environment, config.clock.clone());
        let database = config.database.clone().expect("the test's database");
        let server = Server::start(config).await.expect("server starts");
        Self {
            addr: server.local_addr(),
            data_dir,
            environment,
            clock,
            database,
            server: Some(server),
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Re-reads the TLS certificate files, as SIGHUP does.
    pub async fn reload_tls(&self) {
        self.server.as_ref().expect("running").reload_tls().await.expect("reload");
    }

    /// Stops the server gracefully (drains requests, flushes last-used times).
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }

    /// Any request, with an optional bearer token, JSON body and extra headers.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request reaches the server");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        Reply { status, headers, body, raw: text.into_bytes() }
    }

    pub async fn get(&self, path: &str, bearer: &str) -> Reply {
        self.call(Method::GET, path, Some(bearer), None, &[]).await
    }

    pub async fn post(&self, path: &str, bearer: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(bearer), Some(body), &[]).await
    }

    pub async fn patch(&self, path: &str, bearer: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(bearer), Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str, bearer: &str) -> Reply {
        self.call(Method::DELETE, path, Some(bearer), None, &[]).await
    }

    /// Invites `login` with `role` into the session's account and accepts the invitation;
    /// returns (member id, the new member's session token).
    pub async fn member(&self, session: &str, login: &str, role: &str) -> (i64, String) {
        let invited = self.post("/v1/api/members", session, json!({ "login": login, "role": role })).await;
        let invited = invited.assert_ok(201);
        let id = invited["member"]["id"].as_i64().expect("member id");
        let token = invited["invite_token"].as_str().expect("invite token");
        let body = json!({ "invite_token": token, "password": format!("{login}-password-1") });
        let accepted = self.call(Method::POST, "/v1/api/members/accept", None, Some(body), &[]).await;
        (id, accepted.assert_ok(201)["session_token"].as_str().expect("session token").to_owned())
    }

    /// Every page of a list, walking forward with `starting_after` from `path`, whose query
    /// string must already start (e.g. `/v1/api/keys?limit=5`).
    pub async fn walk_pages(&self, path: &str, bearer: &str) -> Vec<Value> {
        let mut pages = vec![];
        let mut next_path = path.to_owned();
        loop {
            let page = self.get(&next_path, bearer).await.assert_ok(200).clone();
            let next = page["next_cursor"].as_i64().filter(|_| page["has_more"] == json!(true));
            pages.push(page);
            match next {
                Some(cursor) => next_path = format!("{path}&starting_after={cursor}"),
                None => return pages,
            }
        }
    }

    /// The account's audit entries (newest first) for a query string such as `?action=key.created`.
    pub async fn audit(&self, session: &str, query: &str) -> Vec<Value> {
        let reply = self.get(&format!("/v1/api/audit{query}"), session).await;
        reply.assert_ok(200)["entries"].as_array().expect("entries").clone()
    }

    /// Creates an account as the operator; returns its session token.
    pub async fn account(&self, login: &str, approved: bool, credit_cents: i64) -> String {
        let body = json!({ "login": login, "approved": approved, "credit_cents": credit_cents });
        let reply = self.post("/v1/operator/accounts", OPERATOR_TOKEN, body).await;
        reply.assert_ok(201)["session_token"].as_str().expect("session token").to_owned()
    }

    /// Creates a key with the given fields; returns (id, raw key).
    pub async fn key(&self, session: &str, fields: Value) -> (i64, String) {
        let reply = self.post("/v1/api/keys", session, fields).await;
        let body = reply.assert_ok(201);
        (body["id"].as_i64().expect("id"), body["key"].as_str().expect("raw key").to_owned())
    }

    /// An approved, funded account with one all-tools key: (session, key id, raw key).
    pub async fn funded_key(&self, login: &str) -> (String, i64, String) {
        let session = self.account(login, true, 10_000).await;
        let (id, raw) = self.key(&session, json!({ "label": "test" })).await;
        (session, id, raw)
    }

    /// `POST /v1/api/tools/{tool}/execute` with `X-Api-Key` and a fresh Idempotency-Key.
    pub async fn execute(&self, key: &str, tool: &str, input: Value) -> Reply {
        let idempotency = uuid::Uuid::new_v4().to_string();
        self.execute_with(key, tool, json!({ "input": input }), &idempotency).await
    }

    pub async fn execute_with(&self, key: &str, tool: &str, body: Value, idempotency_key: &str) -> Reply {
        let path = format!("/v1/api/tools/{tool}/execute");
        self.call(Method::POST, &path, None, Some(body), &[("X-Api-Key", key), ("Idempotency-Key", idempotency_key)])
            .await
    }
}

impl TestApp {
    /// Recomputes every balance, hold and spend counter from the ledger (the same check as
    /// `visa-cli ledger verify`); returns the mismatches.
    /// `GET /metrics` with the operator token: the OpenMetrics text.
    pub async fn metrics(&self) -> String {
        let response =
            reqwest::Client::new().get(self.url("/metrics")).bearer_auth(OPERATOR_TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// The value of one series in the metrics (`name{labels}` exactly as rendered), if present.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Integer rows of `query` on the test's database, read beside the server (the one place a
    /// test looks into the tables, so each backend answers it in its own arm).
    pub fn sql_rows(&self, query: &str) -> Vec<Vec<i64>> {
        match &self.database {
            visa_store::Database::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).expect("open the test database");
                let mut stmt = conn.prepare(query).unwrap_or_else(|e| panic!("{query}: {e}"));
                let width = stmt.column_count();
                stmt.query_map([], |r| (0..width).map(|i| r.get::<_, i64>(i)).collect())
                    .and_then(|rows| rows.collect())
                    .unwrap_or_else(|e| panic!("{query}: {e}"))
            }
            // The text protocol, so that any integer type (a SUM is NUMERIC) reads alike.
            visa_store::Database::Postgres(target) => on_postgres(&target.url, |client| {
                let messages = client.simple_query(query).unwrap_or_else(|e| panic!("{query}: {e}"));
                messages
                    .iter()
                    .filter_map(|m| match m {
                        postgres::SimpleQueryMessage::Row(row) => Some(
                            (0..row.len())
                                .map(|i| {
                                    let text = row.get(i).unwrap_or_else(|| panic!("{query}: column {i} is NULL"));
                                    text.parse().unwrap_or_else(|_| panic!("{query}: column {i} is '{text}'"))
                                })
                                .collect(),
                        ),
                        _ => None,
                    })
                    .collect()
            }),
        }
    }

    /// The one integer `query` answers.
    pub fn sql_value(&self, query: &str) -> i64 {
        self.sql_rows(query)[0][0]
    }

    /// Runs `statements` on the test's database beside the server (a fault a test injects).
    pub fn sql_execute(&self, statements: &str) {
        match &self.database {
            visa_store::Database::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).expect("open the test database");
                conn.execute_batch(statements).unwrap_or_else(|e| panic!("{statements}: {e}"));
            }
            visa_store::Database::Postgres(target) => on_postgres(&target.url, |client| {
                client.batch_execute(statements).unwrap_or_else(|e| panic!("{statements}: {e}"));
            }),
        }
    }

    /// Makes every write to `table` fail until [`TestApp::writes_work_again`] (a table locked
    /// or broken beside the server), through a trigger each backend writes its own way.
    pub fn fail_writes_to(&self, table: &str) {
        let statements = match &self.database {
            visa_store::Database::Sqlite(_) => format!(
                "CREATE TRIGGER visa_test_fail_insert BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'injected'); END; \
                 CREATE TRIGGER visa_test_fail_update BEFORE UPDATE ON {table} BEGIN SELECT RAISE(ABORT, 'injected'); END;"
            ),
            visa_store::Database::Postgres(_) => format!(
                "CREATE FUNCTION visa_test_fail() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER visa_test_fail BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION visa_test_fail();"
            ),
        };
        self.sql_execute(&statements);
    }

    /// Undoes [`TestApp::fail_writes_to`].
    pub fn writes_work_again(&self, table: &str) {
        let statements = match &self.database {
            visa_store::Database::Sqlite(_) => {
                "DROP TRIGGER visa_test_fail_insert; DROP TRIGGER visa_test_fail_update;".to_owned()
            }
            visa_store::Database::Postgres(_) => {
                format!("DROP TRIGGER visa_test_fail ON {table}; DROP FUNCTION visa_test_fail();")
            }
        };
        self.sql_execute(&statements);
    }

    /// The database's refusal of `statement`, which must fail.
    pub fn sql_refusal(&self, statement: &str) -> String {
        match &self.database {
            visa_store::Database::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).expect("open the test database");
                conn.execute(statement, []).expect_err(statement).to_string()
            }
            visa_store::Database::Postgres(target) => on_postgres(&target.url, |client| {
                let refused = client.batch_execute(statement).expect_err(statement);
                refused.as_db_error().map_or_else(|| refused.to_string(), |e| e.message().to_owned())
            }),
        }
    }

    /// Takes the database's write lock from outside the server (another process holding it, a
    /// stuck migration) until the guard is released or dropped: writes wait for it and give up
    /// (SQLite's busy timeout, PostgreSQL's lock_timeout); plain reads go on.
    pub fn lock_writes(&self) -> WriteLock {
        let database = self.database.clone();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || match database {
            visa_store::Database::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
                locked_tx.send(()).unwrap();
                let _ = release_rx.recv();
                conn.execute_batch("ROLLBACK").unwrap();
            }
            visa_store::Database::Postgres(target) => {
                let mut client = postgres::Client::connect(&target.url, postgres::NoTls).unwrap();
                client
                    .batch_execute(
                        "BEGIN; LOCK TABLE accounts, keys, key_spend, key_days, key_secrets, executions, \
                         execution_responses, idempotency_records, ledger, audit_log, members, sessions, admin_keys, \
                         usage_minutes, provider_requests, operator_requests IN EXCLUSIVE MODE",
                    )
                    .unwrap();
                locked_tx.send(()).unwrap();
                let _ = release_rx.recv();
                client.batch_execute("ROLLBACK").unwrap();
            }
        });
        locked_rx.recv().expect("take the write lock");
        WriteLock { release: Some(release), holder: Some(holder) }
    }

    pub async fn verify_ledger(&self) -> Vec<String> {
        self.database.verify_offline().expect("verify the ledger")
    }

    /// The account's balance in micros, read over HTTP.
    pub async fn balance_micros(&self, session: &str) -> i64 {
        let reply = self.get("/v1/api/balance", session).await;
        reply.assert_ok(200)["balance_micros"].as_str().unwrap().parse().unwrap()
    }
}

/// The database's write lock, held from outside the server (`TestApp::lock_writes`).
pub struct WriteLock {
    release: Option<std::sync::mpsc::Sender<()>>,
    holder: Option<std::thread::JoinHandle<()>>,
}

impl WriteLock {
    pub fn release(mut self) {
        self.end();
    }

    fn end(&mut self) {
        drop(self.release.take());
        if let Some(holder) = self.holder.take() {
            holder.join().expect("the lock holder");
        }
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        self.end();
    }
}

/// Runs `work` on a connection of its own to the test's PostgreSQL database, on a thread of
/// its own (the blocking client must not run on the test's async runtime).
fn on_postgres<R: Send>(url: &str, work: impl FnOnce(&mut postgres::Client) -> R + Send) -> R {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect to the test database");
                work(&mut client)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// An RFC 3339 timestamp `seconds` from now.
pub fn rfc3339_in(seconds: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The tests' Python venv (schemathesis and the OpenAPI validator for `openapi_fuzz.rs`, the
/// official `openai` SDK for `openai_sdk.rs`), made by `cargo xtask test` from the pinned
/// versions in `tests/python/requirements.txt`: `VISA_PYTHON_VENV` if set, else the one under
/// the target dir. A venv that is missing, or made from other versions (the copy of the
/// requirements inside it says which), fails the test naming the command that makes it.
pub fn python_venv() -> std::path::PathBuf {
    use std::path::{Path, PathBuf};
    let dir = std::env::var_os("VISA_PYTHON_VENV")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/python-venv"));
    let wanted = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("python/requirements.txt"))
        .expect("tests/python/requirements.txt");
    let made = std::fs::read_to_string(dir.join("requirements.txt")).ok();
    assert!(
        made.as_deref() == Some(wanted.as_str()),
        "the Python tools these tests run are not installed at {} (or are other versions): run `cargo xtask test`, \
         which makes the venv",
        dir.display()
    );
    dir
}

/// The tests' copy of the official OpenAI Node SDK (`tests/node/package.json`, pinned by its
/// lockfile) and the scripts that drive it, under the target dir: installed with `npm ci` on
/// first use and again whenever the lockfile changes (a copy of it, beside the modules, says
/// which one is installed). Node.js and npm must be installed: the error says how.
pub fn node_sdk() -> std::path::PathBuf {
    use std::path::Path;
    use std::process::Command;
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("node");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/node-sdk");
    std::fs::create_dir_all(&dir).expect("the node SDK's dir");
    for file in ["package.json", "openai_node_client.mjs"] {
        std::fs::copy(source.join(file), dir.join(file)).expect("copy the node SDK's files");
    }
    let lock = std::fs::read_to_string(source.join("package-lock.json")).expect("tests/node/package-lock.json");
    let stamp = dir.join("node_modules/visa-installed-lock.json");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(lock.as_str()) {
        std::fs::write(dir.join("package-lock.json"), &lock).expect("copy the lockfile");
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .expect("npm is needed for the Node SDK tests: run `cargo xtask test` (it installs them), or apt-get install nodejs npm");
        assert!(out.status.success(), "npm ci: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(&stamp, lock).expect("stamp");
    }
    dir
}

/// The JSON-RPC `initialize` an MCP client opens with (as `client`, at the protocol revision
/// the tests speak), for tests that talk to `/v1/mcp` without an SDK.
pub fn mcp_initialize(client: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": client, "version": "1" } } })
}

#[path = "browser.rs"]
pub mod browser;

#[path = "catalog.rs"]
pub mod catalog;

/// A small OpenAI-compatible provider (and a plain JSON endpoint) on a random loopback port,
/// for the adapters' tests. It counts calls, remembers the last request, and answers as told.
pub mod mock_provider {
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use serde_json::{Value, json};
    use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    pub struct Behaviour {
        /// HTTP status to answer with; 0 means 200.
        pub status: AtomicU16,
        /// Answer this many calls more with a bare 500 (no Retry-After), then as usual.
        pub fail_next: AtomicUsize,
        /// Streamed chat: content chunks per answer (0 means 4), the pause before each, and
        /// whether the stream is cut after its second chunk (no usage, no `[DONE]`).
        pub stream_chunks: AtomicUsize,
        pub stream_delay_ms: AtomicU64,
        pub stream_cut: std::sync::atomic::AtomicBool,
        /// Streams that ran to their end (their usage chunk sent).
        pub streams_completed: AtomicUsize,
        /// Stream exactly these `data:` payloads instead (a provider's own stream, however odd),
        /// then `[DONE]` unless the flag says the stream is cut after them.
        pub stream_script: Mutex<Option<(Vec<String>, bool)>>,
        pub prompt_tokens: AtomicU64,
        pub completion_tokens: AtomicU64,
        pub delay_ms: AtomicU64,
        pub calls: AtomicUsize,
        pub last_body: Mutex<Value>,
        pub last_authorization: Mutex<Option<String>>,
        /// fal-style queue: submissions, how long a request takes, whether it fails.
        pub fal_submits: AtomicUsize,
        pub fal_complete_after_ms: AtomicU64,
        pub fal_fail: std::sync::atomic::AtomicBool,
        /// Bytes of padding added to each chat answer (a provider answering far too much).
        pub pad_bytes: AtomicUsize,
        /// Chat usage like a real provider's: one prompt token per request byte, and every
        /// choice using its whole output limit (`n` × `max_tokens`/`max_completion_tokens`).
        pub realistic_usage: std::sync::atomic::AtomicBool,
        /// Answer chat calls and fal results with this status and raw body instead.
        pub raw_answer: Mutex<Option<(u16, String)>>,
        /// Images a fal result has beyond the `num_images` asked for (a provider over-delivering).
        pub fal_extra_images: AtomicUsize,
        /// How long a fal submission takes to be answered, after the provider accepted it.
        pub fal_submit_delay_ms: AtomicU64,
        fal_submitted: Mutex<std::collections::HashMap<String, (std::time::Instant, Value)>>,
    }

    pub struct MockProvider {
        pub base_url: String,
        pub behaviour: Arc<Behaviour>,
    }

    impl MockProvider {
        pub async fn start() -> Self {
            let behaviour = Arc::new(Behaviour::default());
            behaviour.prompt_tokens.store(1000, Ordering::SeqCst);
            behaviour.completion_tokens.store(500, Ordering::SeqCst);
            let app = axum::Router::new()
                .route("/v1/chat/completions", post(chat))
                .route("/v1/echo", post(echo))
                .route("/v1/embeddings", post(embeddings))
                .route("/v1/fal/test-app", post(fal_submit))
                .route("/v1/fal/test-app/requests/{id}/status", axum::routing::get(fal_status))
                .route("/v1/fal/test-app/requests/{id}", axum::routing::get(fal_result))
                .with_state(behaviour.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            Self { base_url: format!("http://{addr}/v1"), behaviour }
        }

        pub fn calls(&self) -> usize {
            self.behaviour.calls.load(Ordering::SeqCst)
        }
    }

    /// The provider secret a test's catalog is built with (`Catalog::from_toml_with_secrets`):
    /// `value` for the variable `var` (none: not configured), nothing for any other (tests never
    /// write the process environment, which other threads read).
    pub fn provider_secret<'a>(var: &'a str, value: Option<&'a str>) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| value.filter(|_| name == var).map(str::to_owned)
    }

    /// The provider secret the chat tests' provider is called with.
    pub const CHAT_SECRET: &str = "sk-provider-secret-0123456789";

    /// A `chat` tool (alias `gpt-mock`) metered at $0.15 / $0.60 per million tokens over `mock`,
    /// its secret (`CHAT_SECRET`) named `key_var`, and the flat `echo`.
    pub fn chat_catalog(mock: &MockProvider, key_var: &str) -> visa_server::tools::catalog::Catalog {
        use crate::catalog::{TestTool, catalog};
        let chat = TestTool::chat("chat", mock, key_var)
            .set("aliases", r#"["gpt-mock"]"#)
            .set("max_output_tokens", 4096)
            .set("sandbox", r#"{ choices = [{ message = { content = "sandboxed" } }] }"#);
        catalog(&[chat, TestTool::builtin("echo", "echo")], key_var, Some(CHAT_SECRET))
    }

    async fn record(b: &Behaviour, headers: &HeaderMap, body: &Value) -> Option<Response> {
        b.calls.fetch_add(1, Ordering::SeqCst);
        *b.last_body.lock().unwrap() = body.clone();
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        *b.last_authorization.lock().unwrap() = auth.clone();
        let delay = b.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        let failing = b.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if failing {
            return Some(
                (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({ "error": { "message": "overloaded" } })))
                    .into_response(),
            );
        }
        let status = b.status.load(Ordering::SeqCst);
        (status != 0 && status != 200).then(|| {
            // A careless provider that echoes the credential it was sent.
            let message = format!("mock failure; you sent {}", auth.unwrap_or_default());
            let mut response =
                (StatusCode::from_u16(status).unwrap(), axum::Json(json!({ "error": { "message": message } })))
                    .into_response();
            response.headers_mut().insert("retry-after", "7".parse().unwrap());
            if (300..400).contains(&status) {
                // A moved provider: following this would count a second call.
                response.headers_mut().insert("location", "/v1/echo".parse().unwrap());
            }
            response
        })
    }

    fn raw(b: &Behaviour) -> Option<Response> {
        let (status, body) = b.raw_answer.lock().unwrap().clone()?;
        let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
        response.headers_mut().insert("content-type", "application/json".parse().unwrap());
        Some(response)
    }

    /// One embedding of three numbers per input, and `prompt_tokens` tokens of usage.
    async fn embeddings(
        State(b): State<Arc<Behaviour>>,
        headers: HeaderMap,
        axum::Json(body): axum::Json<Value>,
    ) -> Response {
        if let Some(failure) = record(&b, &headers, &body).await {
            return failure;
        }
        let inputs = body["input"].as_array().map_or(1, Vec::len);
        let data: Vec<Value> = (0..inputs)
            .map(|i| json!({ "object": "embedding", "index": i, "embedding": [0.25, -0.5, i as f64] }))
            .collect();
        let tokens = b.prompt_tokens.load(Ordering::SeqCst);
        axum::Json(json!({
            "object": "list", "data": data, "model": body["model"],
            "usage": { "prompt_tokens": tokens, "total_tokens": tokens }
        }))
        .into_response()
    }

    async fn chat(
        State(b): State<Arc<Behaviour>>,
        headers: HeaderMap,
        axum::Json(body): axum::Json<Value>,
    ) -> Response {
        if let Some(failure) = record(&b, &headers, &body).await {
            return failure;
        }
        if let Some(raw) = raw(&b) {
            return raw;
        }
        if body["stream"] == json!(true) {
            return stream(b, body);
        }
        let (mut prompt, mut completion) =
            (b.prompt_tokens.load(Ordering::SeqCst), b.completion_tokens.load(Ordering::SeqCst));
        if b.realistic_usage.load(Ordering::SeqCst) {
            prompt = serde_json::to_vec(&body).unwrap().len() as u64;
            let limit = body["max_completion_tokens"].as_u64().or(body["max_tokens"].as_u64()).unwrap_or(100_000);
            completion = body["n"].as_u64().unwrap_or(1) * limit;
        }
        axum::Json(json!({
            "id": "chatcmpl-mock",
            "padding": "x".repeat(b.pad_bytes.load(Ordering::SeqCst)),
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{ "index": 0, "finish_reason": "stop", "message": { "role": "assistant", "content": "hi from the mock" } }],
            "usage": { "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion }
        }))
        .into_response()
    }

    /// A streamed chat answer as OpenAI sends it: a role chunk, content chunks, a finish chunk,
    /// the usage chunk when asked (`stream_options.include_usage`), `[DONE]`.
    fn stream(b: Arc<Behaviour>, body: Value) -> Response {
        if let Some((payloads, cut)) = b.stream_script.lock().unwrap().clone() {
            let mut lines: Vec<String> = payloads.iter().map(|p| format!("data: {p}\n\n")).collect();
            if !cut {
                lines.push("data: [DONE]\n\n".to_owned());
            }
            let body = futures::stream::iter(lines.into_iter().map(Ok::<_, std::convert::Infallible>));
            let mut response = Response::new(axum::body::Body::from_stream(body));
            response.headers_mut().insert("content-type", "text/event-stream".parse().unwrap());
            return response;
        }
        let chunks = match b.stream_chunks.load(Ordering::SeqCst) {
            0 => 4,
            n => n,
        };
        let delay = std::time::Duration::from_millis(b.stream_delay_ms.load(Ordering::SeqCst));
        let cut = b.stream_cut.load(Ordering::SeqCst);
        let with_usage = body["stream_options"]["include_usage"] == json!(true);
        let (prompt, completion) = (b.prompt_tokens.load(Ordering::SeqCst), b.completion_tokens.load(Ordering::SeqCst));
        let chunk = |delta: Value, finish: Value| {
            json!({ "id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": body["model"],
                    "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
        };
        let mut events = vec![chunk(json!({ "role": "assistant", "content": "" }), Value::Null)];
        events.extend((0..chunks).map(|i| chunk(json!({ "content": format!("tok{i} ") }), Value::Null)));
        events.push(chunk(json!({}), json!("stop")));
        if with_usage {
            events.push(json!({ "id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": body["model"], "choices": [],
                                "usage": { "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion } }));
        }
        let mut lines: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        lines.push("data: [DONE]\n\n".to_owned());
        if cut {
            lines.truncate(3);
        }
        let total = lines.len();
        let sent = futures::stream::unfold((lines.into_iter().enumerate(), b), move |(mut rest, b)| async move {
            let (i, line) = rest.next()?;
            tokio::time::sleep(delay).await;
            if i + 1 == total && !cut {
                b.streams_completed.fetch_add(1, Ordering::SeqCst);
            }
            Some((Ok::<_, std::convert::Infallible>(line), (rest, b)))
        });
        let mut response = Response::new(axum::body::Body::from_stream(sent));
        response.headers_mut().insert("content-type", "text/event-stream".parse().unwrap());
        response
    }

    async fn fal_submit(
        State(b): State<Arc<Behaviour>>,
        headers: HeaderMap,
        axum::Json(body): axum::Json<Value>,
    ) -> Response {
        if let Some(failure) = record(&b, &headers, &body).await {
            return failure;
        }
        let id = format!("req-{}", b.fal_submits.fetch_add(1, Ordering::SeqCst) + 1);
        b.fal_submitted.lock().unwrap().insert(id.clone(), (std::time::Instant::now(), body));
        let delay = b.fal_submit_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        axum::Json(json!({ "request_id": id })).into_response()
    }

    async fn fal_status(
        State(b): State<Arc<Behaviour>>,
        axum::extract::Path(id): axum::extract::Path<String>,
    ) -> Response {
        let Some(at) = b.fal_submitted.lock().unwrap().get(&id).map(|(at, _)| *at) else {
            return (StatusCode::NOT_FOUND, axum::Json(json!({ "detail": "no such request" }))).into_response();
        };
        let status = if b.fal_fail.load(Ordering::SeqCst) {
            "FAILED"
        } else if at.elapsed().as_millis() as u64 >= b.fal_complete_after_ms.load(Ordering::SeqCst) {
            "COMPLETED"
        } else {
            "IN_PROGRESS"
        };
        axum::Json(json!({ "status": status })).into_response()
    }

    /// As many images as the submission asked for (`num_images`, 1 by default), plus any extra.
    async fn fal_result(
        State(b): State<Arc<Behaviour>>,
        axum::extract::Path(id): axum::extract::Path<String>,
    ) -> Response {
        if let Some(raw) = raw(&b) {
            return raw;
        }
        let asked = b.fal_submitted.lock().unwrap().get(&id).and_then(|(_, input)| input["num_images"].as_u64());
        let count = asked.unwrap_or(1) as usize + b.fal_extra_images.load(Ordering::SeqCst);
        let images: Vec<Value> =
            (1..=count).map(|i| json!({ "url": format!("https://img.invalid/{i}.png") })).collect();
        axum::Json(json!({ "request_id": id, "images": images })).into_response()
    }

    async fn echo(
        State(b): State<Arc<Behaviour>>,
        headers: HeaderMap,
        axum::Json(body): axum::Json<Value>,
    ) -> Response {
        if let Some(failure) = record(&b, &headers, &body).await {
            return failure;
        }
        axum::Json(json!({ "echoed": body })).into_response()
    }
}

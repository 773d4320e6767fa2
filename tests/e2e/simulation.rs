//! A deterministic, model-based simulation of the money path (in the spirit of TigerBeetle's
//! VOPR). A seeded run drives the real execution flow (`visa_server::app::paid_call`: authorize,
//! plan, hold, run, settle) in the words of execute, MCP and the Responses API, over the store contract (`visa_store::Store`, whichever backend
//! `store_for` opens) and a scripted local provider, one step at a time, through random
//! sequences of calls, retries with the same and other Idempotency-Keys, provider successes,
//! failures, timeouts, garbage, errors inside a 200 and bills past the hold, clock moves
//! forward and back across midnights and retentions, cap changes, credits, rotations,
//! revocations, approvals, key changes landing between authentication and the hold,
//! restarts (a crash between any two durable steps), reconciles and retention sweeps.
//!
//! After every step the store is compared with a small reference model: every account's
//! balance and holds, every key's counters (in total and on its latest day) and each of its end
//! users' (calls name one of three end users half the time; keys get caps on each end user
//! with their caps), no hold placed past a cap — the key's or its end user's — or the balance
//! and none refused that fitted, each Idempotency-Key started at
//! most once while its record lives, every answer as the model predicts, charge ≤ hold, and a
//! preview server never contacting the provider; the ledger is verified every few steps, and
//! at the end every hold must have ended and the webhook outbox must hold exactly the alerts
//! the model expects: one `balance.low` per crossing of an account's threshold, one
//! `key.cap.threshold` per key, cap (and day) whose alert percentage (50, 80 or 100, changed
//! with the caps) a hold passed, one `key.cap.reached` per key, cap (and day) that refused a
//! call.
//!
//! `VISA_SIM_SEEDS` (default 48) seeds of `VISA_SIM_STEPS` (default 200) steps run in CI; a
//! failure prints its seed, replayable with `VISA_SIM_SEED=<seed>` (add `VISA_SIM_TRACE=1` to
//! print every step). `bench/sim.sh` soaks more.

use axum::http::HeaderMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use time::OffsetDateTime;
use visa_core::key::{Environment, KeyMode, RawKey};
use visa_core::money::{MICROS_PER_CENT, Micros};
use visa_core::policy::{CidrAllowlist, EndUser, KeyLabel, ToolGrant, ToolScope};
use visa_e2e::catalog::TestTool;
use visa_e2e::mock_provider::MockProvider;
use visa_server::app::paid_call::{self as execution, Begun, Running};
use visa_server::clock::Clock;
use visa_server::mcp::ToolResult;
use visa_server::routes::execute::Envelope;
use visa_server::state::AppState;
use visa_server::tools::catalog::Catalog;
use visa_server::tools::{ToolOutput, UpstreamFailure};
use visa_server::{ServeConfig, auth::tool_key};
use visa_store::*;

const TTL_MINUTES: i64 = 60;
const CLIENT: [u8; 4] = [127, 0, 0, 1];
/// The cap alert percentages keys are given (and changed to).
const ALERT_PERCENTS: [u8; 3] = [50, 80, 100];

/// The store under test, on the backend `VISA_TEST_DATABASE` names (opened again after
/// every simulated crash).
fn store_for(database: &Database) -> Arc<dyn Store> {
    database.open().expect("open the store")
}

fn catalog(mock: &MockProvider) -> Catalog {
    let var = "VISA_SIM_PROVIDER_KEY";
    let tools = [
        TestTool::builtin("echo", "echo").set("timeout_ms", 1000),
        TestTool::chat("chat", mock, var)
            .set("max_price_micros", 200000)
            .set("max_output_tokens", 1000)
            .set("timeout_ms", 150)
            .adapter("model", r#""m""#),
        TestTool::fal("images", mock, var)
            .set("max_price_micros", 60000)
            .set("timeout_ms", 150)
            .adapter("poll_interval_ms", 5),
    ];
    visa_e2e::catalog::catalog(&tools, var, Some("sk-sim-0123456789abcdef"))
}

fn audit(now: OffsetDateTime) -> AuditContext {
    AuditContext { actor: Actor::Operator, ip: None, user_agent: None, now }
}

// ---------------------------------------------------------------------------------------
// The reference model.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExecState {
    Running,
    Succeeded,
    Failed,
    Reconcile,
    Voided,
}

#[derive(Debug, Clone)]
struct ExecModel {
    public_id: String,
    /// The node that began it (0, or 1 where nodes share the database).
    node: usize,
    key: usize,
    hold: i64,
    day: i64,
    sandbox: bool,
    state: ExecState,
    end_user: Option<String>,
}

#[derive(Debug, Clone)]
struct IdemRecord {
    request: u64,
    exec: usize,
    expires_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
struct SecretModel {
    raw: String,
    /// A rotation's grace end (a clock stepped back before it revives the secret).
    ends_at: Option<OffsetDateTime>,
    /// Ended at once by a rotation: for good, whatever the clock does.
    revoked: bool,
}

#[derive(Debug, Clone)]
struct KeyModel {
    id: KeyId,
    account: usize,
    secrets: Vec<SecretModel>,
    revoked: bool,
    expires_at: Option<OffsetDateTime>,
    read_only: bool,
    echo_only: bool,
    daily_cap_cents: i64,
    total_cap_cents: Option<i64>,
    /// The share of a cap whose passing sends `key.cap.threshold`.
    cap_alert_percent: u8,
    latest_day: i64,
    days: HashMap<i64, (i64, i64)>,
    spent_total: i64,
    held_total: i64,
    /// Ordered, so that a seed picks the same record on every run.
    idem: std::collections::BTreeMap<u128, IdemRecord>,
    /// The key's caps on each end user (cents), and each end user's counters.
    end_user_caps: EndUserCaps,
    users: HashMap<String, UserModel>,
}

/// One end user's counters of one key: per day (captured, held) and in total.
#[derive(Debug, Clone, Default)]
struct UserModel {
    days: HashMap<i64, (i64, i64)>,
    spent_total: i64,
    held_total: i64,
}

#[derive(Debug, Clone)]
struct AccountModel {
    id: AccountId,
    login: String,
    approved: bool,
    balance: i64,
    held: i64,
    /// Its one low-balance threshold (cents), and whether it fired since the last credit
    /// that lifted the available balance to it.
    low_threshold: i64,
    low_fired: bool,
    /// Whether `balance.depleted` fired since the last credit.
    depleted_fired: bool,
}

/// What the model predicts a `begin` answers.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Started,
    Status(u16, &'static str),
    /// 429 `RATE_LIMITED`, naming the limit that refused.
    Refused(&'static str),
    Replay,
}

/// The end user a request variant is made for: none for an even variant, one of three for an
/// odd one. A variant and the next differ in their end user alone half the time (`input` reads
/// `variant / 2`), so reusing an Idempotency-Key for another end user is exercised: it must be
/// a different request.
fn end_user(variant: u64) -> Option<EndUser> {
    (variant % 2 == 1).then(|| EndUser::parse(&format!("end user {}", variant / 2 % 3)).unwrap())
}

/// One request variant per (tool, number): the same number is the same request.
fn input(tool: &str, variant: u64) -> Value {
    let variant = variant / 2;
    match tool {
        "chat" => {
            let mut body = json!({ "messages": [{ "role": "user", "content": format!("question {variant}") }] });
            match variant % 4 {
                0 => {}
                1 => body["max_tokens"] = json!(10),
                2 => body["max_tokens"] = json!(400),
                _ => {
                    body["max_tokens"] = json!(50);
                    body["n"] = json!(3);
                }
            }
            body
        }
        "images" => json!({ "prompt": format!("picture {variant}"), "num_images": variant % 3 + 1 }),
        _ => json!({ "n": variant }),
    }
}

/// How the scripted provider answers the next run.
#[derive(Debug, Clone, Copy)]
enum Provider {
    Honest,
    /// Bills far past the hold.
    Overbills,
    Status(u16),
    Garbage,
    ErrorIn200(u16),
    Hangs,
    /// fal only: the generation fails.
    Fails,
}

fn pick_provider(rng: &mut StdRng) -> Provider {
    match rng.gen_range(0..20) {
        0..=9 => Provider::Honest,
        10 => Provider::Overbills,
        11 => Provider::Status(500),
        12 => Provider::Status(429),
        13 => Provider::Status(400),
        14 => Provider::Garbage,
        15 => Provider::ErrorIn200(503),
        16 => Provider::ErrorIn200(400),
        17 => Provider::Hangs,
        18 => Provider::Fails,
        _ => Provider::Honest,
    }
}

/// A call that began: its model index and the run's outcome once it ran.
struct Pending {
    exec: usize,
    /// The node running it.
    node: usize,
    running: Running,
    provider: Provider,
    outcome: Option<Result<ToolOutput, UpstreamFailure>>,
    tool: String,
    /// What the provider received when it ran (its bill follows from it).
    sent: Value,
}

struct Sim {
    seed: u64,
    step: usize,
    rng: StdRng,
    /// Holds the SQLite file (and the data dir) for as long as the simulation runs.
    _dir: tempfile::TempDir,
    database: Database,
    /// When the running process registered as a node (its lease runs from there).
    registered_at: OffsetDateTime,
    mock: MockProvider,
    config: ServeConfig,
    state: Option<Arc<AppState>>,
    /// A second node on the same database (its own pool, lease and credential cache), where
    /// nodes can share one (PostgreSQL); SQLite is one process per database.
    other: Option<Arc<AppState>>,
    clock: Clock,
    preview: bool,
    accounts: Vec<AccountModel>,
    keys: Vec<KeyModel>,
    execs: Vec<ExecModel>,
    pending: Vec<Pending>,
    provider_calls_at_start: usize,
    stats: HashMap<&'static str, usize>,
    /// The webhook alerts the model expects in the outbox, counted by what they name.
    alerts: std::collections::BTreeMap<String, usize>,
}

impl Sim {
    fn state(&self) -> &AppState {
        self.state.as_ref().expect("running")
    }

    /// Node `n` (0, or 1 where there is a second).
    fn node(&self, n: usize) -> Arc<AppState> {
        match n {
            0 => self.state.clone().expect("running"),
            _ => self.other.clone().expect("a second node"),
        }
    }

    /// Every node, each of which must forget what it cached about a change.
    fn nodes(&self) -> Vec<Arc<AppState>> {
        self.state.iter().chain(self.other.iter()).cloned().collect()
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!(
            "simulation seed {} failed at step {}: {what}\nreplay: VISA_SIM_SEED={} cargo test --test simulation",
            self.seed, self.step, self.seed
        )
    }

    fn count(&mut self, what: &'static str) {
        *self.stats.entry(what).or_default() += 1;
    }

    async fn new(seed: u64) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let mock = MockProvider::start().await;
        mock.behaviour.fal_complete_after_ms.store(0, Ordering::SeqCst);
        let dir = tempfile::tempdir().unwrap();
        // Noon on a fixed day, so that day boundaries fall where the model expects them.
        let clock = Clock::frozen(time::macros::datetime!(2026-06-01 12:00 UTC));
        let preview = rng.gen_bool(0.15);
        let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
        config.catalog = catalog(&mock);
        config.clock = clock.clone();
        config.idempotency_ttl = std::time::Duration::from_secs(TTL_MINUTES as u64 * 60);
        config.key_cache_ttl = std::time::Duration::from_secs(3600);
        if preview {
            config.environment = Environment::Preview;
        }
        let mut sim = Sim {
            seed,
            step: 0,
            rng,
            database: Database::for_tests(dir.path()).expect("VISA_TEST_DATABASE"),
            registered_at: clock.now(),
            _dir: dir,
            mock,
            config,
            state: None,
            other: None,
            clock,
            preview,
            accounts: vec![],
            keys: vec![],
            execs: vec![],
            pending: vec![],
            provider_calls_at_start: 0,
            stats: HashMap::new(),
            alerts: Default::default(),
        };
        let now = sim.now();
        sim.open(now).await;
        sim.provider_calls_at_start = sim.provider_calls();
        for (n, credit, low_threshold) in [(0, 30_000i64, 2), (1, 200_000, 15)] {
            let login = format!("sim{n}");
            let new = NewAccount { login: login.clone(), password_hash: None, approved: true, credit: Micros(credit) };
            let store = sim.state().store.clone();
            let (account, _) = store.create_account(new, audit(sim.now())).await.unwrap();
            store.set_low_balance_thresholds(account.id, vec![low_threshold], audit(sim.now())).await.unwrap();
            let hook = NewWebhook {
                account_id: account.id,
                url: "https://alerts.example/hook".into(),
                events: ["balance.low", "balance.depleted", "key.cap.threshold", "key.cap.reached"]
                    .map(String::from)
                    .to_vec(),
                description: String::new(),
                secret_salt: vec![n; 16],
            };
            store.create_webhook(hook, audit(sim.now())).await.unwrap();
            let model = AccountModel {
                id: account.id,
                login,
                approved: true,
                balance: credit,
                held: 0,
                low_threshold,
                low_fired: false,
                depleted_fired: false,
            };
            sim.accounts.push(model);
        }
        for (account, daily, total) in [(0, 5, Some(12)), (0, 100, None), (1, 3, Some(8))] {
            sim.create_key(account, daily, total).await;
        }
        sim
    }

    fn provider_calls(&self) -> usize {
        self.mock.calls() + self.mock.behaviour.fal_submits.load(Ordering::SeqCst)
    }

    /// Opens the store and registers this process as a node at `at`; where nodes can share
    /// the database, a second node too, on a store of its own.
    async fn open(&mut self, at: OffsetDateTime) {
        self.registered_at = at;
        self.state = Some(self.open_node(at).await);
        let shared = !matches!(self.database, Database::Sqlite(_));
        self.other = if shared { Some(self.open_node(at).await) } else { None };
    }

    async fn open_node(&self, at: OffsetDateTime) -> Arc<AppState> {
        let store = store_for(&self.database);
        let node = visa_server::lease::Node::register(store.as_ref(), at, self.config.node_lease).await.unwrap();
        Arc::new(AppState::build(&self.config, store, "sim-operator-token", node).unwrap())
    }

    fn mode(&self) -> KeyMode {
        KeyMode::tool(if self.preview { Environment::Preview } else { Environment::Production })
    }

    fn new_secret(&self) -> (String, NewSecret) {
        let raw = RawKey::generate(&self.config.brand, self.mode());
        let secret =
            NewSecret { hash: self.state().hasher.hash(raw.expose()), key_prefix: raw.prefix(), expires_at: None };
        (raw.expose().to_owned(), secret)
    }

    async fn create_key(&mut self, account: usize, daily: i64, total: Option<i64>) {
        let (raw, secret) = self.new_secret();
        let cap_alert_percent = ALERT_PERCENTS[self.rng.gen_range(0..ALERT_PERCENTS.len())];
        let policy = KeyPolicy {
            label: KeyLabel::parse("sim").unwrap(),
            grant: ToolGrant::new(None, None).unwrap(),
            allowed_cidrs: CidrAllowlist::default(),
            daily_cap_cents: daily,
            total_cap_cents: total,
            expires_at: None,
            read_only: false,
            rate_limit_per_second: 1_000_000,
            idempotency_optional: false,
            cap_alert_percent,
            end_user_required: false,
            end_user_caps: EndUserCaps::default(),
        };
        let environment = if self.preview { Environment::Preview } else { Environment::Production };
        let new = NewKey { account_id: self.accounts[account].id, environment, policy, secret };
        let key = self.state().store.create_key(new, audit(self.now())).await.unwrap();
        self.keys.push(KeyModel {
            id: key.id,
            account,
            secrets: vec![SecretModel { raw, ends_at: None, revoked: false }],
            revoked: false,
            expires_at: None,
            read_only: false,
            echo_only: false,
            daily_cap_cents: daily,
            total_cap_cents: total,
            cap_alert_percent,
            latest_day: 0,
            days: HashMap::new(),
            spent_total: 0,
            held_total: 0,
            idem: Default::default(),
            end_user_caps: EndUserCaps::default(),
            users: HashMap::new(),
        });
    }

    // -----------------------------------------------------------------------------------
    // Steps.

    async fn step_once(&mut self) {
        let roll = self.rng.gen_range(0..100);
        if std::env::var_os("VISA_SIM_TRACE").is_some() {
            eprintln!("step {} roll {roll} at {}", self.step, self.now());
        }
        match roll {
            0..=34 => self.begin_call(false).await,
            35..=39 => self.begin_call(true).await,
            40..=54 => self.run_pending().await,
            55..=66 => self.settle_pending().await,
            67..=70 => self.move_clock().await,
            71..=74 => self.change_caps().await,
            75..=76 => self.credit().await,
            77..=78 => self.rotate().await,
            79 => self.revoke().await,
            80..=81 => self.toggle_policy().await,
            82 => self.toggle_approval().await,
            89..=91 => self.approve_all().await,
            92..=93 => self.sweep().await,
            83..=86 => self.reconcile().await,
            87..=88 => self.restart().await,
            94..=95 => self.pause_past_the_lease().await,
            _ => self.begin_call(false).await,
        }
    }

    /// Which secret a caller presents: usually the newest, sometimes an older one.
    fn pick_secret(&mut self, key: usize) -> String {
        let secrets = &self.keys[key].secrets;
        let index = if secrets.len() > 1 && self.rng.gen_bool(0.3) {
            self.rng.gen_range(0..secrets.len())
        } else {
            secrets.len() - 1
        };
        self.keys[key].secrets[index].raw.clone()
    }

    /// The Idempotency-Key and request of a call: new, or one used before (same or other request).
    fn pick_request(&mut self, key: usize, tool: &str) -> (u128, u64) {
        let used: Vec<(u128, u64)> = self.keys[key].idem.iter().map(|(k, r)| (*k, r.request)).collect();
        if !used.is_empty() && self.rng.gen_bool(0.35) {
            let (idem, request) = used[self.rng.gen_range(0..used.len())];
            // Other input under the same key: only for tools without resumable provider requests.
            let other = tool != "images" && self.rng.gen_bool(0.25);
            return (idem, if other { request + 1 } else { request });
        }
        (new_idempotency_key(&mut self.rng), self.rng.gen_range(0..12))
    }

    fn request_hash(tool: &str, variant: u64) -> u64 {
        // The model's identity of a request: its tool and variant.
        (if tool == "images" {
            1 << 40
        } else if tool == "chat" {
            1 << 41
        } else {
            0
        }) + variant
    }

    async fn begin_call(&mut self, stale: bool) {
        // Mostly keys that still work; sometimes a revoked one.
        let live: Vec<usize> = (0..self.keys.len()).filter(|&k| !self.keys[k].revoked).collect();
        let key = if live.is_empty() || self.rng.gen_bool(0.1) {
            self.rng.gen_range(0..self.keys.len())
        } else {
            live[self.rng.gen_range(0..live.len())]
        };
        let tool = ["echo", "chat", "images"][self.rng.gen_range(0..3)];
        let raw = self.pick_secret(key);
        let (mut idem, variant) = self.pick_request(key, tool);
        // A reused Idempotency-Key keeps its tool: a request is a tool and an input.
        if self.keys[key].idem.get(&idem).is_some_and(|r| r.request >> 40 != Self::request_hash(tool, 0) >> 40) {
            idem = new_idempotency_key(&mut self.rng);
        }
        let variant = variant & 0xff;
        let request = Self::request_hash(tool, variant);
        if std::env::var_os("VISA_SIM_TRACE").is_some() {
            let secret = self.keys[key].secrets.iter().position(|s| s.raw == raw);
            eprintln!(
                "  call key {key} {tool} secret {secret:?} of {:?} stale {stale}",
                self.keys[key].secrets.iter().map(|s| s.ends_at).collect::<Vec<_>>()
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", raw.parse().unwrap());
        let ip = IpAddr::from(CLIENT);
        let node = if self.other.is_some() { self.rng.gen_range(0..2) } else { 0 };
        let state = self.node(node);
        // Authentication and authorization see the key as it is now.
        let at_auth = self.expect_auth(key, &raw, tool);
        let authorized = match tool_key::authenticate(&state, &headers, ip, tool_key::Audience::Api).await {
            Ok(record) => execution::authorize(&state, &record, tool, ip).map(|t| (record.clone(), t.clone())),
            Err(e) => Err(e),
        };
        // Half the Idempotency-Keys are MCP's (an odd key): its calls run the same money path in
        // MCP's words, and a reused key is a request delivered again, in the same words.
        let over_mcp = idem & 1 == 1;
        // A chat call under some of the even keys goes over the Responses API (its chat request
        // given already: the translation is the handler's), the money path in its words.
        let over_responses = !over_mcp && tool == "chat" && idem & 2 == 2;
        let surface: Arc<dyn execution::Answer> = if over_mcp {
            Arc::new(ToolResult)
        } else if over_responses {
            visa_server::openai::responses_surface("chat")
        } else {
            Arc::new(Envelope)
        };
        if over_mcp {
            self.count("calls over MCP");
        }
        if over_responses {
            self.count("calls over the Responses API");
        }
        let prepared = authorized.and_then(|(record, tool_def)| {
            execution::prepare(
                &state,
                &record,
                tool_def,
                input(tool, variant),
                (surface, idem.to_be_bytes(), end_user(variant)),
                ip,
            )
        });
        if let Some(expected) = at_auth {
            let got = match prepared {
                Ok(_) => self.fail(format!("key {key} {tool}: authenticated, the model expected {expected:?}")),
                Err(e) => answer_of(Err(e)),
            };
            return self.compare(expected, got);
        }
        let call = prepared.unwrap_or_else(|e| self.fail(format!("key {key} {tool}: refused before the hold: {e:?}")));
        if stale {
            // A change lands between authentication and the hold: the hold must see it.
            self.count("changes between authentication and hold");
            match self.rng.gen_range(0..5) {
                0 => self.revoke_key(key).await,
                1 => self.rotate_key(key, time::Duration::ZERO).await,
                2 => self.set_policy(key, |k| k.read_only = !k.read_only).await,
                3 => {
                    let account = self.keys[key].account;
                    self.set_approval(account, !self.accounts[account].approved).await
                }
                _ => self.set_caps(key, 1, Some(1)).await,
            }
        }
        let hold = call.start.hold.0;
        let prepared_at = call.start.now;
        let user = end_user(variant).map(|u| u.as_str().to_owned());
        let expected = self.expect_store(key, &raw, tool, (idem, request), hold, user.as_deref());
        let (placed_alerts, refused_alert) = self.expected_alerts(key, hold, user.as_deref());
        // A record past its retention whose execution ended is purged by this begin, whatever
        // it answers: a clock stepped back later does not revive it.
        let now = self.now();
        let purged = |r: &IdemRecord, execs: &[ExecModel]| {
            r.expires_at <= now && !matches!(execs[r.exec].state, ExecState::Running | ExecState::Reconcile)
        };
        if self.keys[key].idem.get(&idem).is_some_and(|r| purged(r, &self.execs)) {
            self.keys[key].idem.remove(&idem);
        }
        match (expected, execution::begin(&state, call).await) {
            (Expect::Started, Begun::Started(running)) => {
                self.count("holds placed");
                if running.hold.execution.end_user != end_user(variant) {
                    self.fail(format!(
                        "key {key} {tool}: the execution's end user is {:?}",
                        running.hold.execution.end_user
                    ));
                }
                if end_user(variant).is_some() {
                    self.count("holds for an end user");
                }
                for alert in placed_alerts {
                    if alert.starts_with("balance.low/") {
                        let account = self.keys[key].account;
                        self.accounts[account].low_fired = true;
                    }
                    self.alert(alert);
                }
                if node == 1 {
                    self.count("holds placed by the second node");
                }
                self.started(node, key, idem, request, hold, prepared_at, *running, tool);
            }
            (expected, Begun::Started(running)) => self.fail(format!(
                "key {key} {tool} idem {idem:x}: the model expected {expected:?}, the store started {}",
                running.hold.execution.public_id
            )),
            (expected, Begun::Answered(answer)) => {
                let got = answer_of(answer);
                if let Some(alert) =
                    refused_alert.filter(|_| matches!(expected, Expect::Refused(_)) && got.code == "RATE_LIMITED")
                {
                    if alert.starts_with("balance.depleted/") {
                        let account = self.keys[key].account;
                        self.accounts[account].depleted_fired = true;
                    }
                    self.alert(alert);
                }
                if over_mcp && got.replayed {
                    self.count("MCP requests delivered again, answered from their record");
                }
                self.compare(expected, got)
            }
        }
    }

    fn compare(&mut self, expected: Expect, got: Answer) {
        match &expected {
            Expect::Status(status, code) if got.status == *status && got.code == *code => self.count(code),
            Expect::Refused(limit)
                if (got.status, got.code, got.limit.as_deref()) == (429, "RATE_LIMITED", Some(*limit)) =>
            {
                self.count(limit)
            }
            Expect::Replay if got.replayed => self.count("replays"),
            _ => self.fail(format!("the model expected {expected:?}, the server answered {got:?}")),
        }
    }

    /// The refusal authentication and authorization must give, in the contract's order.
    fn expect_auth(&self, key: usize, raw: &str, tool: &str) -> Option<Expect> {
        let now = self.now();
        let k = &self.keys[key];
        let secret_live =
            k.secrets.iter().find(|s| s.raw == raw).is_some_and(|s| !s.revoked && s.ends_at.is_none_or(|at| at > now));
        if k.revoked || !secret_live {
            Some(Expect::Status(401, "AUTH_INVALID"))
        } else if k.expires_at.is_some_and(|at| at <= now) {
            Some(Expect::Status(403, "KEY_EXPIRED"))
        } else if k.echo_only && tool != "echo" {
            Some(Expect::Status(403, "TOOL_NOT_PERMITTED"))
        } else if !self.accounts[k.account].approved {
            Some(Expect::Status(403, "ACCOUNT_NOT_APPROVED"))
        } else if k.read_only {
            Some(Expect::Status(403, "FORBIDDEN"))
        } else {
            None
        }
    }

    /// What the hold's transaction must decide: the Idempotency-Key's record first, then the
    /// key as it is now (a change since authentication wins), then the caps and the balance.
    fn expect_store(
        &self,
        key: usize,
        raw: &str,
        tool: &str,
        (idem, request): (u128, u64),
        hold: i64,
        user: Option<&str>,
    ) -> Expect {
        let now = self.now();
        let k = &self.keys[key];
        if let Some(record) = k.idem.get(&idem) {
            let exec = &self.execs[record.exec];
            let open = matches!(exec.state, ExecState::Running | ExecState::Reconcile);
            if open || record.expires_at > now {
                return match exec.state {
                    _ if record.request != request => Expect::Status(409, "IDEMPOTENT_REPLAY"),
                    ExecState::Running => Expect::Status(409, "IDEMPOTENCY_IN_FLIGHT"),
                    ExecState::Reconcile => Expect::Status(503, "IDEMPOTENCY_UNAVAILABLE"),
                    _ => Expect::Replay,
                };
            }
        }
        if let Some(denied) = self.expect_auth(key, raw, tool) {
            return denied;
        }
        let day = rules::hold_day(rules::utc_day_number(now), k.latest_day);
        let (spent_day, held_day) = k.days.get(&day).copied().unwrap_or_default();
        let account = &self.accounts[k.account];
        let over_daily = spent_day + held_day + hold > k.daily_cap_cents * MICROS_PER_CENT;
        let over_total =
            k.total_cap_cents.is_some_and(|cap| k.spent_total + k.held_total + hold > cap * MICROS_PER_CENT);
        let over_balance = !self.preview && account.balance - account.held < hold;
        if over_daily {
            Expect::Refused("key_daily_cap")
        } else if over_total {
            Expect::Refused("key_total_cap")
        } else if let Some(limit) = self.over_end_user_cap(key, user, hold) {
            Expect::Refused(limit)
        } else if over_balance {
            Expect::Refused("account_balance")
        } else {
            Expect::Started
        }
    }

    /// The key's cap on each end user that a hold of `hold` for `user` exceeds, if any: the
    /// daily one first.
    fn over_end_user_cap(&self, key: usize, user: Option<&str>, hold: i64) -> Option<&'static str> {
        let k = &self.keys[key];
        let u = k.users.get(user?).cloned().unwrap_or_default();
        let day = rules::hold_day(rules::utc_day_number(self.now()), k.latest_day);
        let (spent_day, held_day) = u.days.get(&day).copied().unwrap_or_default();
        let over = |used: i64, cap: Option<i64>| cap.is_some_and(|cap| used + hold > cap * MICROS_PER_CENT);
        if over(spent_day + held_day, k.end_user_caps.daily_cents) {
            Some("end_user_daily_cap")
        } else if over(u.spent_total + u.held_total, k.end_user_caps.total_cents) {
            Some("end_user_total_cap")
        } else {
            None
        }
    }

    /// The alerts a hold of `hold` on `key` for `user` sends if it is placed (`.0`), and the
    /// one its refusal by a cap sends (`.1`), as `rules` says and the model counts them.
    fn expected_alerts(&self, key: usize, hold: i64, user: Option<&str>) -> (Vec<String>, Option<String>) {
        let k = &self.keys[key];
        let day = rules::hold_day(rules::utc_day_number(self.now()), k.latest_day);
        let date = time::Date::from_julian_day(2_440_588 + day as i32).unwrap();
        let (spent_day, held_day) = k.days.get(&day).copied().unwrap_or_default();
        let (day_used, total_used) = (spent_day + held_day, k.spent_total + k.held_total);
        let account = &self.accounts[k.account];
        let refused = if day_used + hold > k.daily_cap_cents * MICROS_PER_CENT {
            Some(format!("key.cap.reached/{}/daily/{date}", k.id))
        } else if k.total_cap_cents.is_some_and(|cap| total_used + hold > cap * MICROS_PER_CENT) {
            Some(format!("key.cap.reached/{}/total", k.id))
        } else if self.over_end_user_cap(key, user, hold).is_some() {
            // An end user's cap sends no alert, and the balance is not reached.
            None
        } else if !self.preview && !account.depleted_fired && account.balance - account.held < hold {
            Some(format!("balance.depleted/{}", account.id))
        } else {
            None
        };
        let passes = |used: i64, cap: i64| {
            let at = cap * MICROS_PER_CENT * i64::from(k.cap_alert_percent) / 100;
            used < at && used + hold >= at
        };
        let mut placed = vec![];
        if passes(day_used, k.daily_cap_cents) {
            placed.push(format!("key.cap.threshold/{}/daily/{date}", k.id));
        }
        if k.total_cap_cents.is_some_and(|cap| passes(total_used, cap)) {
            placed.push(format!("key.cap.threshold/{}/total", k.id));
        }
        let available = account.balance - account.held;
        let at = account.low_threshold * MICROS_PER_CENT;
        if !self.preview && !account.low_fired && available >= at && available - hold < at {
            placed.push(format!("balance.low/{}/{}", account.id, account.low_threshold));
        }
        (placed, refused)
    }

    /// Counts an alert the store must have sent: a cap alert once per what it names, a
    /// low-balance alert once per crossing.
    fn alert(&mut self, alert: String) {
        if alert.starts_with("balance.") {
            *self.alerts.entry(alert).or_default() += 1;
        } else {
            self.alerts.insert(alert, 1);
        }
    }

    /// The outbox against the model: every alert it expects, once, and nothing else.
    async fn check_alerts(&mut self) {
        let far = self.now() + time::Duration::days(3650);
        let due = self.state().store.claim_webhook_deliveries(NodeId(i64::MAX), far, far, 1_000_000).await.unwrap();
        let mut found: std::collections::BTreeMap<String, usize> = Default::default();
        for delivery in due {
            let payload: Value = serde_json::from_str(&delivery.payload).unwrap();
            let data = &payload["data"];
            let name = match delivery.event_type.as_str() {
                "balance.low" => format!("balance.low/{}/{}", delivery.endpoint.account_id, data["threshold_cents"]),
                "balance.depleted" => format!("balance.depleted/{}", delivery.endpoint.account_id),
                kind @ ("key.cap.threshold" | "key.cap.reached") => match data["cap"].as_str() {
                    Some("daily") => format!("{kind}/{}/daily/{}", data["key_id"], data["day"].as_str().unwrap_or("?")),
                    _ => format!("{kind}/{}/total", data["key_id"]),
                },
                other => format!("unexpected {other}"),
            };
            *found.entry(name).or_default() += 1;
        }
        for (name, n) in &found {
            let what = match name.split('/').next() {
                Some("balance.low") => "low-balance alerts",
                Some("balance.depleted") => "depleted-balance alerts",
                _ => "cap alerts",
            };
            *self.stats.entry(what).or_default() += n;
        }
        if found != self.alerts {
            self.fail(format!("the outbox holds {found:?}; the model expects {:?}", self.alerts));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn started(
        &mut self,
        node: usize,
        key: usize,
        idem: u128,
        request: u64,
        hold: i64,
        at: OffsetDateTime,
        running: Running,
        tool: &str,
    ) {
        let day = rules::hold_day(rules::utc_day_number(at), self.keys[key].latest_day);
        if running.hold.execution.day_number != day || running.hold.execution.hold.0 != hold {
            self.fail(format!(
                "hold on day {} of {}, the model says day {day} of {hold}",
                running.hold.execution.day_number, running.hold.execution.hold
            ));
        }
        let end_user = running.hold.execution.end_user.as_ref().map(|u| u.as_str().to_owned());
        let k = &mut self.keys[key];
        k.latest_day = day;
        k.days.entry(day).or_default().1 += hold;
        k.held_total += hold;
        if let Some(user) = &end_user {
            let u = k.users.entry(user.clone()).or_default();
            u.days.entry(day).or_default().1 += hold;
            u.held_total += hold;
        }
        if !self.preview {
            self.accounts[k.account].held += hold;
        }
        let exec = self.execs.len();
        self.execs.push(ExecModel {
            public_id: running.hold.execution.public_id.clone(),
            node,
            key,
            hold,
            day,
            sandbox: self.preview,
            state: ExecState::Running,
            end_user,
        });
        let expires_at = at + time::Duration::minutes(TTL_MINUTES);
        self.keys[key].idem.insert(idem, IdemRecord { request, exec, expires_at });
        let tool = tool.to_owned();
        self.pending.push(Pending {
            exec,
            node,
            running,
            provider: Provider::Honest,
            outcome: None,
            tool,
            sent: Value::Null,
        });
    }

    /// Sets up the scripted provider for the next call.
    fn script(&self, provider: Provider) {
        let b = &self.mock.behaviour;
        b.status.store(0, Ordering::SeqCst);
        *b.raw_answer.lock().unwrap() = None;
        b.realistic_usage.store(true, Ordering::SeqCst);
        b.delay_ms.store(0, Ordering::SeqCst);
        b.fal_fail.store(false, Ordering::SeqCst);
        b.fal_extra_images.store(0, Ordering::SeqCst);
        match provider {
            Provider::Honest => {}
            Provider::Overbills => {
                b.realistic_usage.store(false, Ordering::SeqCst);
                b.prompt_tokens.store(5_000_000, Ordering::SeqCst);
                b.fal_extra_images.store(3, Ordering::SeqCst);
            }
            Provider::Status(status) => b.status.store(status, Ordering::SeqCst),
            Provider::Garbage => *b.raw_answer.lock().unwrap() = Some((200, "<html>not json</html>".into())),
            Provider::ErrorIn200(code) => {
                *b.raw_answer.lock().unwrap() = Some((200, format!(r#"{{"error":{{"code":{code},"message":"x"}}}}"#)))
            }
            Provider::Hangs => b.delay_ms.store(400, Ordering::SeqCst),
            Provider::Fails => b.fal_fail.store(true, Ordering::SeqCst),
        }
    }

    async fn run_pending(&mut self) {
        let Some(index) = self.pick_pending(false) else { return self.begin_call(false).await };
        let provider = pick_provider(&mut self.rng);
        self.run_one(index, provider).await;
        self.count("provider calls");
    }

    async fn run_one(&mut self, index: usize, provider: Provider) {
        // Only a queue generation can fail; a chat call then answers normally.
        let provider = match (self.pending[index].tool.as_str(), provider) {
            ("images", p) | (_, p @ (Provider::Honest | Provider::Overbills)) => p,
            (_, Provider::Fails) => Provider::Honest,
            (_, p) => p,
        };
        self.script(provider);
        *self.mock.behaviour.last_body.lock().unwrap() = Value::Null;
        let state = self.node(self.pending[index].node);
        let outcome = self.pending[index].running.run(&state).await;
        if matches!(provider, Provider::Hangs) && self.pending[index].tool == "images" {
            // The submission the call gave up on still runs to its end and stores its request
            // id (a retry resumes it); wait for that, so the next step sees a settled store.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        let pending = &mut self.pending[index];
        pending.provider = provider;
        pending.outcome = Some(outcome);
        pending.sent = self.mock.behaviour.last_body.lock().unwrap().clone();
    }

    fn pick_pending(&mut self, ran: bool) -> Option<usize> {
        let candidates: Vec<usize> =
            (0..self.pending.len()).filter(|&i| self.pending[i].outcome.is_some() == ran).collect();
        (!candidates.is_empty()).then(|| candidates[self.rng.gen_range(0..candidates.len())])
    }

    /// What a run should settle as: `Ok(reported cost)`, or the failure's (status, retryable).
    fn expected_outcome(&self, p: &Pending) -> Result<i64, (u16, bool)> {
        let (exec, sent) = (&self.execs[p.exec], &p.sent);
        match (p.tool.as_str(), p.provider) {
            ("echo", _) => Ok(10_000),
            ("chat", _) if exec.sandbox => Ok(100),
            ("images", _) if exec.sandbox => Ok(20_000),
            ("chat", Provider::Honest) => {
                let prompt = serde_json::to_vec(sent).unwrap().len() as i64;
                let limit = sent["max_completion_tokens"].as_i64().or(sent["max_tokens"].as_i64()).unwrap();
                let completion = sent["n"].as_i64().unwrap_or(1) * limit;
                Ok(((prompt * 150_000 + completion * 600_000 + 999_999) / 1_000_000).max(100))
            }
            ("chat", Provider::Overbills) => Ok(i64::MAX),
            ("images", Provider::Honest) => Ok(20_000 * sent["num_images"].as_i64().unwrap()),
            ("images", Provider::Overbills) => Ok(i64::MAX),
            (_, Provider::Status(400) | Provider::ErrorIn200(400)) => Err((400, false)),
            (_, Provider::Garbage) => Err((502, false)),
            _ => Err((502, true)),
        }
    }

    async fn settle_pending(&mut self) {
        let Some(index) = self.pick_pending(true) else { return self.run_pending().await };
        let decided = !matches!(self.execs[self.pending[index].exec].state, ExecState::Running | ExecState::Reconcile);
        // (A decided call's tool may not have reached its provider: no outcome to expect.)
        let expected = if decided { Err((503, false)) } else { self.expected_outcome(&self.pending[index]) };
        let Pending { exec, node, running, outcome, provider, .. } = self.pending.swap_remove(index);
        let state = self.node(node);
        let answer = running.settle(&state, outcome.expect("ran")).await;
        let (status, body) = match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
                (status, as_envelope(serde_json::from_slice::<Value>(&bytes).unwrap()))
            }
            Err(e) => (e.0.code.status(), e.body()),
        };
        if decided {
            // Reclaimed while its node slept past its lease, and decided by an operator before
            // it woke: the operator's decision stands, the node's finish is refused — unless
            // both voided (the same outcome: nothing charged, the key free for a retry).
            let same_void = self.execs[exec].state == ExecState::Voided && body["retryable"] == json!(true);
            if !same_void && (status != 503 || body["retryable"] != json!(false)) {
                self.fail(format!("a finish after an operator's decision answered {status} {body}"));
            }
            return self.count("late finishes refused after an operator's decision");
        }
        if self.execs[exec].state == ExecState::Reconcile {
            self.count("reclaimed calls finished by their node on waking");
        }
        let hold = self.execs[exec].hold;
        match expected {
            Ok(reported) => {
                if status != 200 {
                    self.fail(format!("{provider:?}: expected a success, got {status} {body}"));
                }
                let charged: i64 = body["usage"]["charged_micros"].as_str().unwrap().parse().unwrap();
                let to_key = reported.min(hold);
                let to_account = if self.execs[exec].sandbox { 0 } else { to_key };
                if charged != to_account {
                    self.fail(format!("{provider:?}: charged {charged}, the model says {to_account} (hold {hold})"));
                }
                if matches!(provider, Provider::Honest) && reported > hold && !self.execs[exec].sandbox {
                    self.fail(format!("an honest provider billed {reported} past the hold of {hold}"));
                }
                if reported > hold {
                    self.count("overages (provider billed past the hold)");
                }
                self.end(exec, to_key, ExecState::Succeeded);
                self.count("captures");
            }
            Err((want, retryable)) => {
                if status != want || body["retryable"] != json!(retryable) {
                    self.fail(format!("{provider:?}: expected {want} retryable={retryable}, got {status} {body}"));
                }
                self.end(exec, 0, if retryable { ExecState::Voided } else { ExecState::Failed });
                self.count("voids");
            }
        }
    }

    /// Moves the model's money for an execution that ended (captured `charged`, or voided).
    fn end(&mut self, exec: usize, charged: i64, state: ExecState) {
        let e = self.execs[exec].clone();
        let k = &mut self.keys[e.key];
        let day = k.days.entry(e.day).or_default();
        day.0 += charged;
        day.1 -= e.hold;
        k.spent_total += charged;
        k.held_total -= e.hold;
        if let Some(user) = &e.end_user {
            let u = k.users.get_mut(user).expect("an end user's hold counted it");
            let day = u.days.entry(e.day).or_default();
            day.0 += charged;
            day.1 -= e.hold;
            u.spent_total += charged;
            u.held_total -= e.hold;
        }
        if !e.sandbox {
            let account = &mut self.accounts[k.account];
            account.held -= e.hold;
            account.balance -= charged;
        }
        self.execs[exec].state = state;
        if state == ExecState::Voided {
            // A retryable failure (or a voided reconcile) frees the Idempotency-Key.
            k.idem.retain(|_, r| r.exec != exec);
        }
    }

    async fn move_clock(&mut self) {
        let minutes = [5, 50, 61, 180, 24 * 60, -10, -24 * 60][self.rng.gen_range(0..7)];
        self.clock.advance(time::Duration::minutes(minutes));
        self.count("clock moves");
    }

    async fn set_caps(&mut self, key: usize, daily: i64, total: Option<i64>) {
        let k = &self.keys[key];
        let percent = ALERT_PERCENTS[self.rng.gen_range(0..ALERT_PERCENTS.len())];
        // Caps on each end user, mostly under the key's own: one end user meets them first.
        let end_user_caps = EndUserCaps {
            daily_cents: [None, Some(1), Some(2), Some(5)][self.rng.gen_range(0..4)],
            total_cents: [None, Some(3), Some(10)][self.rng.gen_range(0..3)],
        };
        let patch = KeyPatch {
            daily_cap_cents: Some(daily),
            total_cap_cents: Some(total),
            cap_alert_percent: Some(percent),
            end_user_daily_cap_cents: Some(end_user_caps.daily_cents),
            end_user_total_cap_cents: Some(end_user_caps.total_cents),
            ..Default::default()
        };
        let account = self.accounts[k.account].id;
        self.state().store.update_key(account, k.id, patch, audit(self.now())).await.unwrap();
        self.nodes().iter().for_each(|node| node.keys.invalidate_key(k.id));
        let k = &mut self.keys[key];
        (k.daily_cap_cents, k.total_cap_cents, k.cap_alert_percent) = (daily, total, percent);
        k.end_user_caps = end_user_caps;
    }

    async fn change_caps(&mut self) {
        let key = self.rng.gen_range(0..self.keys.len());
        let daily = [1, 3, 10, 100][self.rng.gen_range(0..4)];
        let total = [None, Some(5), Some(20)][self.rng.gen_range(0..3)];
        self.set_caps(key, daily, total).await;
        self.count("cap changes");
    }

    async fn credit(&mut self) {
        let account = self.rng.gen_range(0..self.accounts.len());
        let micros = self.rng.gen_range(1..20) * MICROS_PER_CENT;
        let login = self.accounts[account].login.clone();
        self.state().store.credit_account(&login, Micros(micros), audit(self.now()), None).await.unwrap();
        self.accounts[account].balance += micros;
        let a = &mut self.accounts[account];
        if a.balance - a.held >= a.low_threshold * MICROS_PER_CENT {
            a.low_fired = false;
        }
        a.depleted_fired = false;
        self.count("credits");
    }

    async fn rotate_key(&mut self, key: usize, grace: time::Duration) {
        if self.keys[key].revoked {
            return;
        }
        let (raw, secret) = self.new_secret();
        let now = self.now();
        let end = now + grace;
        let (account, id) = (self.accounts[self.keys[key].account].id, self.keys[key].id);
        let rotation = Rotation { secret, old_secrets_end: end };
        self.state().store.rotate_key(account, id, rotation, audit(now)).await.unwrap();
        self.nodes().iter().for_each(|node| node.keys.invalidate_key(id));
        for old in self.keys[key].secrets.iter_mut().filter(|s| !s.revoked) {
            if grace.is_zero() {
                old.revoked = true;
            } else {
                old.ends_at = Some(old.ends_at.map_or(end, |at| at.min(end)));
            }
        }
        self.keys[key].secrets.push(SecretModel { raw, ends_at: None, revoked: false });
    }

    async fn rotate(&mut self) {
        let key = self.rng.gen_range(0..self.keys.len());
        let grace = if self.rng.gen_bool(0.5) { time::Duration::ZERO } else { time::Duration::minutes(30) };
        self.rotate_key(key, grace).await;
        self.count("rotations");
    }

    async fn revoke_key(&mut self, key: usize) {
        let (account, id) = (self.accounts[self.keys[key].account].id, self.keys[key].id);
        self.state().store.revoke_key(account, id, RevokeCause::Requested, audit(self.now())).await.unwrap();
        self.nodes().iter().for_each(|node| node.keys.invalidate_key(id));
        self.keys[key].revoked = true;
    }

    async fn revoke(&mut self) {
        // Keep one key of each account usable most of the time: revoke rarely, then replace.
        let key = self.rng.gen_range(0..self.keys.len());
        self.revoke_key(key).await;
        let account = self.keys[key].account;
        self.create_key(account, 10, Some(30)).await;
        self.count("revocations");
    }

    async fn set_policy(&mut self, key: usize, change: impl FnOnce(&mut KeyModel)) {
        change(&mut self.keys[key]);
        let k = &self.keys[key];
        let grant = if k.echo_only {
            ToolGrant::new(Some(ToolScope::Restricted), Some(vec!["echo".into()])).unwrap()
        } else {
            ToolGrant::new(Some(ToolScope::AllSupportedTools), Some(vec![])).unwrap()
        };
        let patch = KeyPatch {
            grant: Some(grant),
            read_only: Some(k.read_only),
            expires_at: Some(k.expires_at),
            ..Default::default()
        };
        let (account, id) = (self.accounts[k.account].id, k.id);
        self.state().store.update_key(account, id, patch, audit(self.now())).await.unwrap();
        self.nodes().iter().for_each(|node| node.keys.invalidate_key(id));
    }

    async fn toggle_policy(&mut self) {
        let key = self.rng.gen_range(0..self.keys.len());
        let soon = self.now() + time::Duration::minutes(20);
        match self.rng.gen_range(0..3) {
            0 => self.set_policy(key, |k| k.read_only = !k.read_only).await,
            1 => self.set_policy(key, |k| k.echo_only = !k.echo_only).await,
            _ => self.set_policy(key, |k| k.expires_at = if k.expires_at.is_some() { None } else { Some(soon) }).await,
        }
        self.count("policy changes");
    }

    /// An operator fixing things: every account approved, every key writable and unexpired.
    async fn approve_all(&mut self) {
        for account in 0..self.accounts.len() {
            if !self.accounts[account].approved {
                self.set_approval(account, true).await;
            }
        }
        let key = self.rng.gen_range(0..self.keys.len());
        self.set_policy(key, |k| (k.read_only, k.echo_only, k.expires_at) = (false, false, None)).await;
    }

    async fn set_approval(&mut self, account: usize, approved: bool) {
        let login = self.accounts[account].login.clone();
        let changed = self.state().store.set_account_approved(&login, approved, audit(self.now())).await.unwrap();
        self.nodes().iter().for_each(|node| node.keys.invalidate_account(changed.id));
        self.accounts[account].approved = approved;
    }

    async fn toggle_approval(&mut self) {
        // Unapproved accounts are approved again soon: most of a run is spent calling.
        let account = self.rng.gen_range(0..self.accounts.len());
        let approved = !self.accounts[account].approved || self.rng.gen_bool(0.5);
        self.set_approval(account, approved).await;
        self.count("approval changes");
    }

    async fn reconcile(&mut self) {
        let waiting: Vec<usize> =
            (0..self.execs.len()).filter(|&i| self.execs[i].state == ExecState::Reconcile).collect();
        if waiting.is_empty() {
            return self.begin_call(false).await;
        }
        let exec = waiting[self.rng.gen_range(0..waiting.len())];
        let capture = self.rng.gen_bool(0.5).then(|| self.rng.gen_range(0..=self.execs[exec].hold));
        self.reconcile_one(exec, capture).await;
    }

    async fn reconcile_one(&mut self, exec: usize, capture: Option<i64>) {
        let now = self.now();
        let decision = match capture {
            Some(cost) => Reconcile::Capture {
                cost: Micros(cost),
                receipt_id: "rcpt_sim".into(),
                status: 503,
                body: b"{\"success\":false}".to_vec(),
                retain_until: now + time::Duration::minutes(TTL_MINUTES),
            },
            None => Reconcile::Void,
        };
        let public_id = self.execs[exec].public_id.clone();
        let done = self.state().store.reconcile_execution(&public_id, decision, audit(now), None).await.unwrap();
        let expected = if self.execs[exec].sandbox { 0 } else { capture.unwrap_or(0) };
        if done.charged.0 != expected {
            self.fail(format!("reconciled {public_id}: charged {}, the model says {expected}", done.charged));
        }
        match capture {
            Some(cost) => {
                self.end(exec, cost, ExecState::Succeeded);
                let key = self.execs[exec].key;
                if let Some(record) = self.keys[key].idem.values_mut().find(|r| r.exec == exec) {
                    record.expires_at = record.expires_at.max(now + time::Duration::minutes(TTL_MINUTES));
                }
            }
            None => self.end(exec, 0, ExecState::Voided),
        }
        self.count("reconciles");
    }

    /// Retention runs: every record past its window whose execution ended goes (with its
    /// stored answer); a later call with its key runs anew.
    async fn sweep(&mut self) {
        let now = self.now();
        let retention = Retention {
            operator_requests: time::Duration::minutes(TTL_MINUTES),
            usage_minutes: time::Duration::days(7),
            usage_hours: time::Duration::days(90),
            webhook_log: time::Duration::days(30),
        };
        while self.state().store.sweep_expired(now, retention, 50).await.unwrap() >= 50 {}
        let execs = &self.execs;
        for k in &mut self.keys {
            k.idem.retain(|_, r| {
                r.expires_at > now || matches!(execs[r.exec].state, ExecState::Running | ExecState::Reconcile)
            });
        }
        self.count("retention sweeps");
    }

    /// A node stalls past its lease (a pause, a frozen VM): its lease runs out (fast-forwarded
    /// by ending it: leases follow the database's clock) and a live node reclaims its running
    /// calls into `reconcile_required` (only its own: the other node's calls run on). Then it wakes: its calls in flight carry on and finish
    /// those no operator decided meanwhile; its next begin renews, or registers again.
    async fn pause_past_the_lease(&mut self) {
        let paused = if self.other.is_some() { self.rng.gen_range(0..2) } else { 0 };
        let sleeper = self.node(paused);
        // The other node reclaims, where there is one; alone, the node itself does on waking.
        let reclaimer = if self.other.is_some() { self.node(1 - paused) } else { sleeper.clone() };
        sleeper.store.release_node(sleeper.node.id()).await.unwrap();
        let marked = reclaimer.store.reclaim_expired_nodes().await.unwrap();
        let running: Vec<usize> = (0..self.execs.len())
            .filter(|&i| self.execs[i].state == ExecState::Running && self.execs[i].node == paused)
            .collect();
        if marked as usize != running.len() {
            self.fail(format!("a pause marked {marked} executions, the model has {} running", running.len()));
        }
        running.into_iter().for_each(|i| self.execs[i].state = ExecState::Reconcile);
        self.count("pauses past the lease");
    }

    /// A crash between any two durable steps: everything in flight is lost, the store reopens.
    /// The new process registers and reclaims once the dead one's lease ran out (on SQLite,
    /// registering alone proves it gone; on a shared database only the lease's end does).
    /// Leases follow the database's clock, which the simulation does not move: the dead
    /// process's lease running out is fast-forwarded by ending it.
    async fn restart(&mut self) {
        let dead: Vec<_> = self.nodes().iter().map(|node| node.node.id()).collect();
        self.pending.clear();
        self.state = None;
        self.other = None;
        let lease = time::Duration::try_from(self.config.node_lease).unwrap();
        let later = self.now().max(self.registered_at) + lease + time::Duration::seconds(1);
        self.open(later).await;
        for node in dead {
            self.state().store.release_node(node).await.unwrap();
        }
        let marked = self.state().store.reclaim_expired_nodes().await.unwrap();
        let running: Vec<usize> =
            (0..self.execs.len()).filter(|&i| self.execs[i].state == ExecState::Running).collect();
        if marked as usize != running.len() {
            self.fail(format!("restart marked {marked} executions, the model has {} running", running.len()));
        }
        running.into_iter().for_each(|i| self.execs[i].state = ExecState::Reconcile);
        self.count("restarts");
    }

    // -----------------------------------------------------------------------------------
    // Invariants.

    async fn check(&mut self) {
        let store = self.state().store.clone();
        for a in &self.accounts {
            let stored = store.account_by_id(a.id).await.unwrap().unwrap();
            if (stored.balance.0, stored.held.0) != (a.balance, a.held) {
                self.fail(format!(
                    "account {}: store balance/held {}/{}, model {}/{}",
                    a.login, stored.balance, stored.held, a.balance, a.held
                ));
            }
            if stored.balance.0 < 0 || stored.held > stored.balance {
                self.fail(format!("account {}: balance {} held {}", a.login, stored.balance, stored.held));
            }
        }
        for (index, k) in self.keys.iter().enumerate() {
            let stored = store.get_key(self.accounts[k.account].id, k.id).await.unwrap().unwrap();
            let day = k.days.get(&k.latest_day).copied().unwrap_or_default();
            let got =
                (stored.spent_total.0, stored.held_total.0, stored.latest_day, stored.spent_day.0, stored.held_day.0);
            let want = (k.spent_total, k.held_total, k.latest_day, day.0, day.1);
            if got != want {
                self.fail(format!(
                    "key {index}: store (spent, held, day, spent_day, held_day) {got:?}, model {want:?}"
                ));
            }
            for (user, u) in &k.users {
                let stored = store.end_user_spend(k.id, EndUser::parse(user).unwrap(), k.latest_day).await.unwrap();
                let day = u.days.get(&k.latest_day).copied().unwrap_or_default();
                let got = (stored.spent_total.0, stored.held_total.0, stored.spent_day.0, stored.held_day.0);
                let want = (u.spent_total, u.held_total, day.0, day.1);
                if got != want {
                    self.fail(format!(
                        "key {index}, {user}: store (spent, held, spent_day, held_day) {got:?}, model {want:?}"
                    ));
                }
            }
        }
        if self.preview && self.provider_calls() != self.provider_calls_at_start {
            self.fail("a preview server contacted the provider");
        }
        if self.step.is_multiple_of(8) {
            self.verify().await;
        }
    }

    async fn verify(&self) {
        let problems = self.state().store.verify_ledger().await.unwrap();
        if !problems.is_empty() {
            self.fail(format!("ledger verify: {problems:#?}"));
        }
    }

    /// Ends every call: runs and settles what is in flight, then a crash and a reconcile of
    /// whatever it left; no hold may remain.
    async fn drain(&mut self) {
        while let Some(index) = self.pick_pending(false) {
            self.run_one(index, Provider::Honest).await;
        }
        while !self.pending.is_empty() {
            self.settle_pending().await;
        }
        self.restart().await;
        let waiting: Vec<usize> =
            (0..self.execs.len()).filter(|&i| self.execs[i].state == ExecState::Reconcile).collect();
        for exec in waiting {
            self.reconcile_one(exec, None).await;
        }
        self.check().await;
        self.verify().await;
        self.check_alerts().await;
        for a in &self.accounts {
            if a.held != 0 {
                self.fail(format!("account {} still holds {}", a.login, a.held));
            }
        }
        for k in &self.keys {
            if k.held_total != 0 || k.days.values().any(|d| d.1 != 0) {
                self.fail(format!("key {} still holds {}", k.id, k.held_total));
            }
        }
    }
}

/// An answer that was not a new start, reduced to what the model predicts.
#[derive(Debug)]
struct Answer {
    status: u16,
    code: &'static str,
    /// The limit a refusal names.
    limit: Option<String>,
    replayed: bool,
}

fn answer_of(answer: visa_server::error::ApiResult<axum::response::Response>) -> Answer {
    match answer {
        Err(e) => {
            let limit = e.0.details.as_ref().and_then(|d| d.get("limit")).and_then(Value::as_str).map(str::to_owned);
            Answer { status: e.0.code.status(), code: e.0.code.as_str(), limit, replayed: false }
        }
        Ok(response) => {
            let replayed = response.headers().contains_key(execution::REPLAYED_HEADER);
            Answer { status: response.status().as_u16(), code: "", limit: None, replayed }
        }
    }
}

/// An answer in MCP's or the Responses API's words as the execute envelope the checks read: a
/// refusal's `structuredContent` (MCP) or `error` object (OpenAI's shape) is the envelope's
/// fields; a success's charge is in its `_meta` (MCP) or `visa` (Responses).
fn as_envelope(body: Value) -> Value {
    if body["object"] == json!("response") {
        return json!({ "success": true, "usage": { "charged_micros": body["visa"]["charged_micros"] } });
    }
    if body["error"].is_object() {
        let error = &body["error"];
        return json!({ "success": false, "error_code": error["code"], "retryable": error["retryable"] });
    }
    if body.get("structuredContent").is_none() {
        return body;
    }
    if body["isError"] == json!(true) {
        return body["structuredContent"].clone();
    }
    json!({ "success": true, "usage": { "charged_micros": body["_meta"]["dev.visakeys/charged_micros"] } })
}

/// A random UUID v4, as a client would send.
fn new_idempotency_key(rng: &mut StdRng) -> u128 {
    uuid::Builder::from_random_bytes(rng.r#gen()).into_uuid().as_u128()
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn run_seed(seed: u64, steps: usize) -> HashMap<&'static str, usize> {
    let mut sim = Sim::new(seed).await;
    for step in 1..=steps {
        sim.step = step;
        sim.step_once().await;
        sim.check().await;
    }
    sim.step = steps + 1;
    sim.drain().await;
    sim.stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_money_path_holds_under_random_histories() {
    let steps = env_number("VISA_SIM_STEPS", 200) as usize;
    let seeds: Vec<u64> = match std::env::var("VISA_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("VISA_SIM_SEED is a number")],
        Err(_) => {
            let first = env_number("VISA_SIM_FIRST_SEED", 1);
            (first..first + env_number("VISA_SIM_SEEDS", 48)).collect()
        }
    };
    let mut totals: HashMap<&'static str, usize> = HashMap::new();
    for &seed in &seeds {
        for (what, n) in run_seed(seed, steps).await {
            *totals.entry(what).or_default() += n;
        }
    }
    let mut lines: Vec<String> = totals.iter().map(|(what, n)| format!("{what}: {n}")).collect();
    lines.sort();
    println!("simulation: {} seeds x {steps} steps; {}", seeds.len(), lines.join(", "));
    // The run must have exercised what it claims to.
    let needed = [
        "holds placed",
        "captures",
        "voids",
        "restarts",
        "reconciles",
        "clock moves",
        "key_daily_cap",
        "key_total_cap",
        "account_balance",
        "calls over MCP",
        "calls over the Responses API",
        "low-balance alerts",
        "depleted-balance alerts",
        "cap alerts",
        "holds for an end user",
        "end_user_daily_cap",
        "end_user_total_cap",
        "IDEMPOTENT_REPLAY",
    ];
    for needed in needed.into_iter().chain([
        "pauses past the lease",
        "reclaimed calls finished by their node on waking",
        "MCP requests delivered again, answered from their record",
    ]) {
        assert!(
            totals.get(needed).copied().unwrap_or(0) > 0 || seeds.len() < 4,
            "no {needed} in {} seeds",
            seeds.len()
        );
    }
}

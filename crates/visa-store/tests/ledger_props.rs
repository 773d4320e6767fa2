//! Property tests of the money path on a real SQLite store: random interleavings of credits,
//! holds, captures (including over-hold costs), voids, crashes with reconciliation, cap
//! changes (lowered below what a key already spent, too), rotations and UTC day changes never
//! break the invariants, and `verify_ledger` stays green through all of them: the ledger
//! explains every counter, every hold fitted the caps in force when it was placed, no balance
//! goes negative, captured sum = balance decrease, and every hold ends captured or voided. The
//! same histories followed by one tampered row must turn `verify_ledger` red.

use proptest::prelude::*;
use std::collections::HashMap;
use time::OffsetDateTime;
use visa_core::key::Environment;
use visa_core::money::{MICROS_PER_CENT, Micros};
use visa_core::policy::{CidrAllowlist, KeyLabel, ToolGrant};
use visa_core::secret::SecretHash;
use visa_store::*;

const DAILY_CAP_CENTS: i64 = 10;
const TOTAL_CAP_CENTS: i64 = 25;

#[derive(Debug, Clone)]
enum Op {
    Credit {
        account: usize,
        cents: i64,
    },
    Begin {
        key: usize,
        hold_cents: i64,
        sandbox: bool,
        reuse_idempotency: bool,
    },
    Capture {
        pick: usize,
        cost_micros: i64,
    },
    Void {
        pick: usize,
        retryable: bool,
    },
    Crash,
    Reconcile {
        pick: usize,
        capture_micros: Option<i64>,
    },
    NextDay,
    /// An ordinary PATCH of a key's caps, possibly below what it already spent.
    SetCaps {
        key: usize,
        daily_cents: i64,
        total_cents: Option<i64>,
    },
    /// A rotation: later holds use the new secret, the old one stays in its grace period.
    Rotate {
        key: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2usize, 0..20i64).prop_map(|(account, cents)| Op::Credit { account, cents }),
        (0..3usize, 1..6i64, prop::bool::weighted(0.2), prop::bool::weighted(0.2)).prop_map(
            |(key, hold_cents, sandbox, reuse_idempotency)| Op::Begin { key, hold_cents, sandbox, reuse_idempotency }
        ),
        (any::<usize>(), 0..70_000i64).prop_map(|(pick, cost_micros)| Op::Capture { pick, cost_micros }),
        (any::<usize>(), any::<bool>()).prop_map(|(pick, retryable)| Op::Void { pick, retryable }),
        Just(Op::Crash),
        (any::<usize>(), prop::option::of(0..60_000i64))
            .prop_map(|(pick, capture_micros)| Op::Reconcile { pick, capture_micros }),
        Just(Op::NextDay),
        (0..3usize, 1..20i64, prop::option::of(1..40i64)).prop_map(|(key, daily_cents, total_cents)| Op::SetCaps {
            key,
            daily_cents,
            total_cents
        }),
        (0..3usize).prop_map(|key| Op::Rotate { key }),
    ]
}

struct World {
    store: std::sync::Arc<dyn Store>,
    database: Database,
    /// The node the calls run on; a crash is a new node taking over.
    node: NodeId,
    /// Crashes so far: each moves the clock of leases one lease (and a second) on.
    crashes: i32,
    _dir: tempfile::TempDir,
    accounts: Vec<AccountId>,
    /// (key id, account index, secret id)
    keys: Vec<(KeyId, usize, SecretId)>,
    credits: HashMap<usize, i64>,
    captured: HashMap<usize, i64>,
    running: Vec<(Hold, usize)>,
    interrupted: Vec<(ExecutionRecord, usize)>,
    day: i64,
    last_idempotency: Option<(usize, [u8; 16])>,
    counter: u64,
}

/// The operator as the actor of setup changes, as the server records them.
fn operator() -> AuditContext {
    AuditContext { actor: Actor::Operator, ip: None, user_agent: None, now: now() }
}

const LEASE: time::Duration = time::Duration::seconds(30);

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let database = Database::for_tests(dir.path()).unwrap();
    let store = database.open().unwrap();
    let mut accounts = vec![];
    for login in ["alice", "bob"] {
        let new = NewAccount { login: login.into(), password_hash: None, approved: true, credit: Micros::ZERO };
        accounts.push(store.create_account(new, operator()).await.unwrap().0.id);
    }
    let mut keys = vec![];
    for (i, account) in [0usize, 0, 1].into_iter().enumerate() {
        let policy = KeyPolicy {
            label: KeyLabel::parse("prop").unwrap(),
            grant: ToolGrant::new(None, None).unwrap(),
            allowed_cidrs: CidrAllowlist::default(),
            daily_cap_cents: DAILY_CAP_CENTS,
            total_cap_cents: (i != 1).then_some(TOTAL_CAP_CENTS),
            expires_at: None,
            read_only: false,
            rate_limit_per_second: 100,
            idempotency_optional: false,
            cap_alert_percent: 80,
            end_user_required: false,
            end_user_caps: Default::default(),
        };
        let secret =
            NewSecret { hash: SecretHash([i as u8; 32]), key_prefix: "VisaKey_live_x...".into(), expires_at: None };
        let new = NewKey { account_id: accounts[account], environment: Environment::Production, policy, secret };
        let key = store.create_key(new, operator()).await.unwrap();
        keys.push((key.id, account, key.secrets[0].id));
    }
    let node = store.register_node("props", now(), LEASE).await.unwrap();
    World {
        store,
        database,
        crashes: 0,
        node,
        _dir: dir,
        accounts,
        keys,
        credits: HashMap::new(),
        captured: HashMap::new(),
        running: vec![],
        interrupted: vec![],
        day: 20_000,
        last_idempotency: None,
        counter: 0,
    }
}

impl World {
    async fn apply(&mut self, op: Op) {
        match op {
            Op::Credit { account, cents } => {
                let login = ["alice", "bob"][account];
                self.store.credit_account(login, Micros(cents * MICROS_PER_CENT), operator(), None).await.unwrap();
                *self.credits.entry(account).or_default() += cents * MICROS_PER_CENT;
            }
            Op::Begin { key, hold_cents, sandbox, reuse_idempotency } => {
                self.begin(key, hold_cents, sandbox, reuse_idempotency).await
            }
            Op::Capture { pick, cost_micros } => {
                if self.running.is_empty() {
                    return;
                }
                let (hold, account) = self.running.remove(pick % self.running.len());
                let execution = &hold.execution;
                let finish = Finish::Capture {
                    reported: Micros(cost_micros),
                    receipt_id: "r".into(),
                    status: 200,
                    body: b"{}".to_vec(),
                };
                let done = self.store.finish_execution(&hold, finish, now()).await.unwrap();
                assert!(done.charged <= execution.hold, "never above the hold");
                if !execution.sandbox {
                    assert_eq!(done.charged, Micros(cost_micros.min(execution.hold.0)));
                    *self.captured.entry(account).or_default() += done.charged.0;
                }
            }
            Op::Void { pick, retryable } => {
                if self.running.is_empty() {
                    return;
                }
                let (hold, _) = self.running.remove(pick % self.running.len());
                let finish = if retryable {
                    Finish::VoidRetryable
                } else {
                    Finish::VoidFinal { status: 502, body: b"{}".to_vec() }
                };
                let done = self.store.finish_execution(&hold, finish, now()).await.unwrap();
                assert_eq!(done.charged, Micros::ZERO);
            }
            Op::Crash => {
                // The process died; once its lease ran out, the next one registers and reclaims
                // (on SQLite registering alone proves it gone; on a shared database only the
                // lease's end does).
                // Leases follow the database's clock: the dead node's running out is
                // fast-forwarded by ending it.
                self.crashes += 1;
                let later = now() + (LEASE + time::Duration::seconds(1)) * self.crashes;
                let dead = self.node;
                self.node = self.store.register_node("props", later, LEASE).await.unwrap();
                self.store.release_node(dead).await.unwrap();
                let marked = self.store.reclaim_expired_nodes().await.unwrap();
                assert_eq!(marked as usize, self.running.len());
                self.interrupted.extend(self.running.drain(..).map(|(hold, account)| (hold.execution, account)));
            }
            Op::Reconcile { pick, capture_micros } => {
                if self.interrupted.is_empty() {
                    return;
                }
                let (execution, account) = self.interrupted.remove(pick % self.interrupted.len());
                let cost = capture_micros.map(|c| c.min(execution.hold.0));
                let decision = match cost {
                    Some(cost) => Reconcile::Capture {
                        cost: Micros(cost),
                        receipt_id: "r".into(),
                        status: 503,
                        body: b"{}".to_vec(),
                        retain_until: now() + time::Duration::hours(24),
                    },
                    None => Reconcile::Void,
                };
                let done =
                    self.store.reconcile_execution(&execution.public_id, decision, operator(), None).await.unwrap();
                if !execution.sandbox {
                    assert_eq!(done.charged, Micros(cost.unwrap_or(0)));
                    *self.captured.entry(account).or_default() += done.charged.0;
                }
            }
            Op::NextDay => self.day += 1,
            Op::SetCaps { key, daily_cents, total_cents } => {
                let (key_id, account, _) = self.keys[key];
                let patch = KeyPatch {
                    daily_cap_cents: Some(daily_cents),
                    total_cap_cents: Some(total_cents),
                    ..KeyPatch::default()
                };
                let key = self.store.update_key(self.accounts[account], key_id, patch, operator()).await.unwrap();
                assert_eq!((key.policy.daily_cap_cents, key.policy.total_cap_cents), (daily_cents, total_cents));
            }
            Op::Rotate { key } => {
                self.counter += 1;
                let (key_id, account, _) = self.keys[key];
                let mut hash = [0xA0; 32];
                hash[..8].copy_from_slice(&self.counter.to_be_bytes());
                let rotation = Rotation {
                    secret: NewSecret {
                        hash: SecretHash(hash),
                        key_prefix: "VisaKey_live_y...".into(),
                        expires_at: None,
                    },
                    old_secrets_end: now() + time::Duration::hours(1),
                };
                let rotated =
                    self.store.rotate_key(self.accounts[account], key_id, rotation, operator()).await.unwrap();
                self.keys[key].2 = rotated.secrets[0].id;
            }
        }
    }

    async fn begin(&mut self, key: usize, hold_cents: i64, sandbox: bool, reuse_idempotency: bool) {
        let (key_id, account, secret_id) = self.keys[key];
        self.counter += 1;
        let idempotency_key = match (&self.last_idempotency, reuse_idempotency) {
            (Some((k, idem)), true) if *k == key => *idem,
            _ => u128::from(self.counter).to_be_bytes(),
        };
        let start = ExecutionStart {
            node: self.node,
            public_id: format!("exec-{}", self.counter),
            account_id: self.accounts[account],
            key_id,
            secret_id,
            client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            idempotency_key,
            request_hash: [7; 32],
            tool: "echo".into(),
            hold: Micros(hold_cents * MICROS_PER_CENT),
            rate_limit_per_second: 1_000_000,
            rate_clock: RateClock::At(time::OffsetDateTime::UNIX_EPOCH),
            sandbox,
            now: now(),
            day_number: self.day,
            idempotency_expires_at: now() + time::Duration::hours(24),
            end_user: None,
        };
        let before = self.store.get_key(self.accounts[account], key_id).await.unwrap().unwrap();
        match self.store.begin_execution(start).await.unwrap() {
            BeginOutcome::Started(hold) => {
                let execution = &hold.execution;
                assert_eq!(execution.hold, Micros(hold_cents * MICROS_PER_CENT));
                // The hold fitted the caps in force when it was placed.
                let today = if before.latest_day >= self.day { before.spent_day.0 + before.held_day.0 } else { 0 };
                assert!(today + execution.hold.0 <= before.policy.daily_cap_cents * MICROS_PER_CENT);
                if let Some(cap) = before.policy.total_cap_cents {
                    assert!(before.spent_total.0 + before.held_total.0 + execution.hold.0 <= cap * MICROS_PER_CENT);
                }
                self.running.push((hold, account));
                self.last_idempotency = Some((key, idempotency_key));
            }
            BeginOutcome::Refused(_)
            | BeginOutcome::InFlight
            | BeginOutcome::Replay { .. }
            | BeginOutcome::ReconcileRequired(_) => {}
            BeginOutcome::Mismatch => panic!("same hash cannot mismatch"),
        }
    }

    async fn check_invariants(&self) {
        let problems = self.store.verify_ledger().await.unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
        for (index, &id) in self.accounts.iter().enumerate() {
            let account = self.store.account_by_id(id).await.unwrap().unwrap();
            assert!(account.balance.0 >= 0 && account.held.0 <= account.balance.0);
            let expected =
                self.credits.get(&index).copied().unwrap_or(0) - self.captured.get(&index).copied().unwrap_or(0);
            assert_eq!(account.balance.0, expected, "captured sum = balance decrease");
        }
    }

    /// Ends every open hold (crash, then void or capture each) and checks none is left.
    async fn settle_everything(&mut self) {
        self.apply(Op::Crash).await;
        while !self.interrupted.is_empty() {
            let capture = self.interrupted.len().is_multiple_of(2).then_some(1);
            self.apply(Op::Reconcile { pick: 0, capture_micros: capture }).await;
        }
        for &id in &self.accounts {
            assert_eq!(self.store.account_by_id(id).await.unwrap().unwrap().held, Micros::ZERO, "every hold ended");
        }
        for &(key_id, account, _) in &self.keys {
            let key = self.store.get_key(self.accounts[account], key_id).await.unwrap().unwrap();
            assert_eq!(key.held_total, Micros::ZERO);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn money_invariants_hold_under_any_interleaving(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut world = world().await;
            world.apply(Op::Credit { account: 0, cents: 15 }).await;
            for op in ops {
                world.apply(op).await;
                world.check_invariants().await;
            }
            world.settle_everything().await;
            world.check_invariants().await;
        });
    }
}

/// One deliberate corruption of a stored row: each must turn `verify_ledger` red.
/// Runs `sql` (with `delta` as `?1`) on the database behind the store's back; rows changed.
fn tamper_with(database: &Database, sql: &str, delta: i64) -> u64 {
    match database {
        Database::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.pragma_update(None, "foreign_keys", false).unwrap();
            conn.execute(sql, [delta]).unwrap() as u64
        }
        // The blocking client runs on a thread of its own, away from the test's runtime.
        Database::Postgres(target) => std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut client = ::postgres::Client::connect(&target.url, ::postgres::NoTls).unwrap();
                    client.execute(&sql.replace("?1", "$1"), &[&delta]).unwrap()
                })
                .join()
                .unwrap()
        }),
    }
}

const TAMPERS: [(&str, &str); 12] = [
    ("UPDATE accounts SET balance_micros = balance_micros + ?1 WHERE login = 'alice'", "account balance"),
    (
        "DELETE FROM key_days WHERE (key_id, day_number) = \
         (SELECT key_id, day_number FROM key_days WHERE spent_micros > 0 LIMIT 1) AND CAST(?1 AS BIGINT) > 0",
        "key spent on day",
    ),
    // (raising the balance too, which the schema's `held <= balance` check demands)
    (
        "UPDATE accounts SET held_micros = held_micros + ?1, balance_micros = balance_micros + ?1 \
         WHERE login = 'alice'",
        "account held",
    ),
    ("UPDATE key_spend SET spent_total_micros = spent_total_micros + ?1", "key spent_total"),
    ("UPDATE key_spend SET held_total_micros = held_total_micros + ?1", "key held_total"),
    (
        "UPDATE key_days SET spent_micros = spent_micros + ?1 WHERE (key_id, day_number) = \
         (SELECT key_id, day_number FROM key_days LIMIT 1)",
        "key spent on day",
    ),
    (
        "UPDATE executions SET hold_micros = hold_micros + ?1 WHERE id = (SELECT MIN(id) FROM executions)",
        "execution hold",
    ),
    (
        "UPDATE executions SET state = 'running' WHERE id = (SELECT MIN(id) FROM executions) AND CAST(?1 AS BIGINT) > 0",
        "execution still held",
    ),
    (
        "INSERT INTO ledger (account_id, kind, amount_micros, created_at) \
         SELECT id, 'credit', ?1, 0 FROM accounts WHERE login = 'bob'",
        "account balance",
    ),
    // References PostgreSQL does not enforce by foreign key (SQLite's are off on this connection).
    (
        "UPDATE idempotency_records SET execution_id = execution_id + 1000000 + CAST(?1 AS BIGINT) \
         WHERE execution_id = (SELECT MIN(execution_id) FROM idempotency_records)",
        "Idempotency-Key records naming an execution that does not exist",
    ),
    (
        "INSERT INTO ledger (account_id, execution_id, kind, amount_micros, created_at) \
         SELECT id, 1000000 + CAST(?1 AS BIGINT), 'release', 0, 0 FROM accounts WHERE login = 'alice'",
        "ledger entries naming an execution that does not exist",
    ),
    (
        "UPDATE executions SET key_id = key_id + 1000000 + CAST(?1 AS BIGINT) WHERE id = (SELECT MIN(id) FROM executions)",
        "executions naming a key that does not exist",
    ),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn verify_goes_red_on_any_tampered_row(
        ops in prop::collection::vec(op(), 0..30),
        tamper in 0..TAMPERS.len(),
        delta in 1..1_000_000i64,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut world = world().await;
            // A history that leaves at least one finished paid call with a day counter.
            world.apply(Op::Credit { account: 0, cents: 15 }).await;
            world.apply(Op::Begin { key: 0, hold_cents: 2, sandbox: false, reuse_idempotency: false }).await;
            world.apply(Op::Capture { pick: 0, cost_micros: 15_000 }).await;
            for op in ops {
                world.apply(op).await;
            }
            assert!(world.store.verify_ledger().await.unwrap().is_empty(), "green before tampering");
            let (sql, expected) = TAMPERS[tamper];
            assert!(tamper_with(&world.database, sql, delta) >= 1, "{sql} changed no row");
            let problems = world.store.verify_ledger().await.unwrap();
            assert!(problems.iter().any(|p| p.starts_with(expected)), "{sql} (+{delta}): {problems:?}");
        });
    }
}

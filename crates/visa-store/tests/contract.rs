//! Rules of the store contract that every backend must keep, on the backend
//! `VISA_TEST_DATABASE` names (SQLite by default).
//!
//! Leases: a call is reclaimed (`reconcile_required`) only once its node's lease has expired,
//! never while the node renews it; a node that lost its lease learns it at its next renewal and
//! cannot settle the reclaimed call; on SQLite a node that registers proves the earlier ones
//! gone (one process per database), without touching its own.
//!
//! The race rule: concurrent begins with one Idempotency-Key yield exactly one `Started`; the
//! others see `InFlight` (or, once it has ended, the replay), never an error.
//!
//! The rate limit: one budget per key, however many nodes share the database.
//!
//! Webhooks: an event is written with its cause, only for the endpoints that want it; a
//! delivery is leased by one node at a time, and an attempt's outcome decides what follows.
//!
//! A COMMIT whose answer was lost: a finish sent again changes nothing and answers what was
//! recorded; a begin whose answer was lost is abandoned, voiding its hold and freeing its
//! Idempotency-Key, and only that one.

use time::{Duration, OffsetDateTime};
use visa_core::key::Environment;
use visa_core::money::Micros;
use visa_core::pagination::PageRequest;
use visa_core::policy::{CidrAllowlist, KeyLabel, ToolGrant};
use visa_core::secret::SecretHash;
use visa_store::*;

const LEASE: Duration = Duration::seconds(30);

fn at(t0: OffsetDateTime, seconds: i64) -> OffsetDateTime {
    t0 + Duration::seconds(seconds)
}

struct Fixture {
    store: std::sync::Arc<dyn Store>,
    database: Database,
    _dir: tempfile::TempDir,
    account: AccountId,
    key: KeyId,
    secret: SecretId,
    calls: u8,
}

async fn fixture() -> Fixture {
    fixture_with(Micros(1_000_000), 1_000).await
}

/// An account with `credit` and one key capped at `daily_cap_cents` a day.
async fn fixture_with(credit: Micros, daily_cap_cents: i64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let database = Database::for_tests(dir.path()).unwrap();
    let store = database.open().unwrap();
    let ctx = AuditContext { actor: Actor::Operator, ip: None, user_agent: None, now: OffsetDateTime::now_utc() };
    let new = NewAccount { login: "acme".into(), password_hash: None, approved: true, credit };
    let account = store.create_account(new, ctx.clone()).await.unwrap().0.id;
    let policy = KeyPolicy {
        label: KeyLabel::parse("lease").unwrap(),
        grant: ToolGrant::new(None, None).unwrap(),
        allowed_cidrs: CidrAllowlist::default(),
        daily_cap_cents,
        total_cap_cents: None,
        expires_at: None,
        read_only: false,
        rate_limit_per_second: 100,
        idempotency_optional: false,
        cap_alert_percent: 80,
        end_user_required: false,
        end_user_caps: Default::default(),
    };
    let secret = NewSecret { hash: SecretHash([1; 32]), key_prefix: "VisaKey_live_x...".into(), expires_at: None };
    let key = store
        .create_key(NewKey { account_id: account, environment: Environment::Production, policy, secret }, ctx)
        .await
        .unwrap();
    Fixture { store, database, _dir: dir, account, key: key.id, secret: key.secrets[0].id, calls: 0 }
}

impl Fixture {
    async fn begin(&mut self, node: NodeId, now: OffsetDateTime) -> Hold {
        self.calls += 1;
        let start = Self::start_of(self.account, self.key, self.secret, node, now, [self.calls; 16]);
        match self.store.begin_execution(start).await.unwrap() {
            BeginOutcome::Started(hold) => hold,
            other => panic!("not started: {other:?}"),
        }
    }

    fn start_of(
        account: AccountId,
        key: KeyId,
        secret: SecretId,
        node: NodeId,
        now: OffsetDateTime,
        idempotency_key: [u8; 16],
    ) -> ExecutionStart {
        ExecutionStart {
            node,
            public_id: format!("exec-{}", uuid_like(&idempotency_key)),
            account_id: account,
            key_id: key,
            secret_id: secret,
            client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            idempotency_key,
            request_hash: [7; 32],
            tool: "echo".into(),
            hold: Micros(10_000),
            rate_limit_per_second: 1_000_000,
            rate_clock: RateClock::At(OffsetDateTime::UNIX_EPOCH),
            sandbox: false,
            now,
            day_number: now.unix_timestamp().div_euclid(86_400),
            idempotency_expires_at: now + Duration::hours(24),
            end_user: None,
        }
    }

    async fn state(&self, hold: &Hold) -> ExecutionState {
        let filter = ExecutionFilter::default();
        self.store.get_execution(filter, &hold.execution.public_id).await.unwrap().unwrap().state
    }
}

/// Leases follow the database's clock (whatever `now` a node passes), so this one waits for
/// real: a lease of 2 s, renewed after 1 s, still holds at 2.3 s and has run out by 3.5 s.
#[tokio::test]
async fn a_call_is_reclaimed_only_after_its_nodes_lease_expires() {
    let mut f = fixture().await;
    let lease = Duration::seconds(2);
    let t0 = OffsetDateTime::now_utc();
    let pause = |ms: u64| tokio::time::sleep(std::time::Duration::from_millis(ms));
    let node = f.store.register_node("a:1", t0, lease).await.unwrap();
    let call = f.begin(node, t0).await;
    assert_eq!(f.store.reclaim_expired_nodes().await.unwrap(), 0);
    pause(1_000).await;
    assert!(f.store.renew_node(node, lease).await.unwrap(), "renewed for 2 s more");
    pause(1_300).await;
    assert_eq!(f.store.reclaim_expired_nodes().await.unwrap(), 0, "a renewing node keeps its calls");
    assert_eq!(f.state(&call).await, ExecutionState::Running);

    pause(1_200).await;
    assert_eq!(f.store.reclaim_expired_nodes().await.unwrap(), 1);
    assert_eq!(f.state(&call).await, ExecutionState::ReconcileRequired);
    assert_eq!(f.store.reclaim_expired_nodes().await.unwrap(), 0, "once");
    assert!(!f.store.renew_node(node, lease).await.unwrap(), "the node learns it lost its lease");

    // Where nodes share the database, a node whose lease ended begins nothing under it.
    if !matches!(f.database, Database::Sqlite(_)) {
        let start = Fixture::start_of(f.account, f.key, f.secret, node, at(t0, 4), [0xAB; 16]);
        let refused = f.store.begin_execution(start).await;
        assert!(matches!(refused, Err(StoreError::Refused(Refusal::NodeLeaseLost))), "{refused:?}");
    }
    // No operator decided the reclaimed call: the call that placed it (its node woke up)
    // still finishes it, once; the same finish sent again changes nothing.
    let finish = Finish::Capture { reported: Micros(7), receipt_id: "r".into(), status: 200, body: b"{}".to_vec() };
    let done = f.store.finish_execution(&call, finish.clone(), at(t0, 5)).await.unwrap();
    assert_eq!((done.state, done.charged), (ExecutionState::Succeeded, Micros(7)));
    let again = f.store.finish_execution(&call, finish, at(t0, 5)).await.unwrap();
    assert_eq!((again.state, again.charged), (ExecutionState::Succeeded, Micros(7)));
    let account = f.store.account_by_login("acme").await.unwrap().unwrap();
    assert_eq!((account.balance, account.held), (Micros(1_000_000 - 7), Micros::ZERO));
    assert!(f.store.verify_ledger().await.unwrap().is_empty());
}

/// A node that stops cleanly gives its lease up: what it left running (nothing, normally) is
/// reclaimed at once, and it cannot renew.
#[tokio::test]
async fn a_released_lease_is_reclaimed_at_once() {
    let mut f = fixture().await;
    let t0 = OffsetDateTime::now_utc();
    let node = f.store.register_node("a:1", t0, LEASE).await.unwrap();
    let call = f.begin(node, t0).await;
    f.store.release_node(node).await.unwrap();
    assert_eq!(f.store.reclaim_expired_nodes().await.unwrap(), 1);
    assert_eq!(f.state(&call).await, ExecutionState::ReconcileRequired);
    assert!(!f.store.renew_node(node, LEASE).await.unwrap());
    let clock = f.store.database_clock().await.unwrap();
    assert!((clock - OffsetDateTime::now_utc()).abs() < Duration::seconds(5), "the database's clock: {clock}");
}

/// A running call whose outcome cannot be recorded becomes `reconcile_required`, its hold
/// kept for an operator; one that ended is left alone.
#[tokio::test]
async fn a_call_whose_outcome_cannot_be_recorded_waits_for_an_operator() {
    let mut f = fixture().await;
    let t0 = OffsetDateTime::now_utc();
    let node = f.store.register_node("a:1", t0, LEASE).await.unwrap();
    let call = f.begin(node, t0).await;
    assert!(f.store.require_reconcile(&call.execution.public_id).await.unwrap());
    assert_eq!(f.state(&call).await, ExecutionState::ReconcileRequired);
    assert!(!f.store.require_reconcile(&call.execution.public_id).await.unwrap(), "once");
    let account = f.store.account_by_login("acme").await.unwrap().unwrap();
    assert_eq!(account.held, call.execution.hold, "the hold is kept");
    assert!(f.store.verify_ledger().await.unwrap().is_empty());
}

/// SQLite has one process per database (the data dir's lock), so a node that registers proves
/// every earlier one gone. On a shared database (PostgreSQL) it proves nothing: another node
/// registering leaves a live node's calls alone until its lease runs out.
#[tokio::test]
async fn a_new_node_ends_older_leases_only_where_one_process_owns_the_database() {
    let mut f = fixture().await;
    let t0 = OffsetDateTime::now_utc();
    let first = f.store.register_node("a:1", t0, LEASE).await.unwrap();
    let older = f.begin(first, t0).await;
    let second = f.store.register_node("a:2", at(t0, 1), LEASE).await.unwrap();
    assert_ne!(first, second);
    let kept = f.begin(second, at(t0, 2)).await;
    let reclaimed = f.store.reclaim_expired_nodes().await.unwrap();
    if matches!(f.database, Database::Sqlite(_)) {
        assert_eq!(reclaimed, 1, "long before the old lease ran out");
        assert_eq!(f.state(&older).await, ExecutionState::ReconcileRequired);
    } else {
        assert_eq!(reclaimed, 0, "the first node's lease still runs");
        assert_eq!(f.state(&older).await, ExecutionState::Running);
        assert!(f.store.renew_node(first, LEASE).await.unwrap(), "and it keeps renewing");
    }
    assert_eq!(f.state(&kept).await, ExecutionState::Running);
    assert!(f.store.verify_ledger().await.unwrap().is_empty());
}

fn uuid_like(bytes: &[u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_begins_with_one_idempotency_key_start_exactly_one() {
    let f = fixture().await;
    let t0 = OffsetDateTime::now_utc();
    let node = f.store.register_node("a:1", t0, LEASE).await.unwrap();
    let store = f.store;
    let racers = (0..32u8).map(|n| {
        let mut start = Fixture::start_of(f.account, f.key, f.secret, node, t0, [0xEE; 16]);
        start.public_id = format!("racer-{n}");
        let store = store.clone();
        tokio::spawn(async move { store.begin_execution(start).await })
    });
    let mut started = vec![];
    let mut in_flight = 0;
    for racer in racers.collect::<Vec<_>>() {
        match racer.await.unwrap() {
            Ok(BeginOutcome::Started(hold)) => started.push(hold),
            Ok(BeginOutcome::InFlight) => in_flight += 1,
            other => panic!("a racer got {other:?}"),
        }
    }
    assert_eq!((started.len(), in_flight), (1, 31));
    let finish =
        Finish::Capture { reported: Micros(4_000), receipt_id: "r".into(), status: 200, body: b"{\"ok\":1}".to_vec() };
    store.finish_execution(&started[0], finish, at(t0, 1)).await.unwrap();
    let late = Fixture::start_of(f.account, f.key, f.secret, node, at(t0, 2), [0xEE; 16]);
    match store.begin_execution(late).await.unwrap() {
        BeginOutcome::Replay { status, body } => assert_eq!((status, body.as_slice()), (200, &b"{\"ok\":1}"[..])),
        other => panic!("after the end, the replay: {other:?}"),
    }
    assert!(store.verify_ledger().await.unwrap().is_empty());
}

/// Holds and settlements racing on one key over two stores (PostgreSQL batches the ones that
/// arrive together into one transaction): the daily cap admits exactly its room, the balance
/// is never overdrawn, and a settlement's released room is taken again, never twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_holds_and_settlements_take_exactly_the_room_there_is() {
    // Room for 10 holds of 10_000 by the cap (10 cents), the balance for 12.
    let f = fixture_with(Micros(120_000), 10).await;
    let t0 = OffsetDateTime::now_utc();
    let mut stores = vec![f.store.clone()];
    if !matches!(f.database, Database::Sqlite(_)) {
        stores.push(f.database.open().unwrap());
    }
    let node = f.store.register_node("a:1", t0, LEASE).await.unwrap();
    let race = |from: u8, count: u8| {
        let racers: Vec<_> = (from..from + count)
            .map(|n| {
                let store = stores[usize::from(n) % stores.len()].clone();
                let start = Fixture::start_of(f.account, f.key, f.secret, node, t0, [n; 16]);
                tokio::spawn(async move { store.begin_execution(start).await.unwrap() })
            })
            .collect();
        async move {
            let (mut started, mut capped) = (vec![], 0);
            for racer in racers {
                match racer.await.unwrap() {
                    BeginOutcome::Started(hold) => started.push(hold),
                    BeginOutcome::Refused(HoldRefusal::DailyCap) => capped += 1,
                    other => panic!("a racer got {other:?}"),
                }
            }
            (started, capped)
        }
    };
    let (mut started, capped) = race(1, 64).await;
    assert_eq!((started.len(), capped), (10, 54), "exactly the cap's room");
    // Four holds end (two captures, two voids) while 30 more race for the room they free:
    // the voids free 2 holds' room; the captures keep theirs (spent).
    let kept = started.split_off(4);
    let ends: Vec<_> = started
        .into_iter()
        .enumerate()
        .map(|(i, hold)| {
            let store = stores[i % stores.len()].clone();
            let finish = if i % 2 == 0 {
                Finish::Capture {
                    reported: Micros(10_000),
                    receipt_id: format!("r{i}"),
                    status: 200,
                    body: b"{}".to_vec(),
                }
            } else {
                Finish::VoidRetryable
            };
            tokio::spawn(async move { store.finish_execution(&hold, finish, at(t0, 1)).await.unwrap() })
        })
        .collect();
    let second = race(100, 30);
    for end in ends {
        end.await.unwrap();
    }
    let (again, _) = second.await;
    assert!(again.len() <= 2, "only the voided room is taken again: {}", again.len());
    let key = f.store.get_key(f.account, f.key).await.unwrap().unwrap();
    let used = key.held_total.0 + key.spent_total.0;
    assert!(used <= 100_000, "never over the cap: {used}");
    assert_eq!(used, (kept.len() + 2 + again.len()) as i64 * 10_000, "held and spent are what was admitted");
    let account = f.store.account_by_id(f.account).await.unwrap().unwrap();
    assert!(account.held.0 <= account.balance.0, "{account:?}");
    // The room left after everything settled is taken exactly, by calls alone.
    let (last, _) = race(200, 20).await;
    assert_eq!(last.len(), 2 - again.len(), "what the voids freed and the racers left");
    assert!(f.store.verify_ledger().await.unwrap().is_empty());
}

/// The per-key rate limit is one budget however many nodes share the database: racing
/// begins at one instant, split over two stores where the backend allows several (PostgreSQL),
/// admit exactly the burst; the rest are refused with the wait, having recorded nothing; the
/// next call is admitted one interval later.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rate_limit_is_one_budget_for_every_node() {
    let f = fixture().await;
    let t0 = OffsetDateTime::now_utc();
    let mut stores = vec![f.store.clone()];
    if !matches!(f.database, Database::Sqlite(_)) {
        stores.push(f.database.open().unwrap());
    }
    let node = f.store.register_node("a:1", t0, LEASE).await.unwrap();
    let clock = OffsetDateTime::UNIX_EPOCH + Duration::days(60);
    let start = |n: u8, clock: OffsetDateTime| {
        let mut start = Fixture::start_of(f.account, f.key, f.secret, node, t0, [n; 16]);
        (start.rate_limit_per_second, start.rate_clock) = (10, RateClock::At(clock));
        start
    };
    let racers = (0..40u8).map(|n| {
        let (store, start) = (stores[usize::from(n) % stores.len()].clone(), start(n, clock));
        tokio::spawn(async move { store.begin_execution(start).await.unwrap() })
    });
    let (mut started, mut limited) = (0, 0);
    for racer in racers.collect::<Vec<_>>() {
        match racer.await.unwrap() {
            BeginOutcome::Started(_) => started += 1,
            BeginOutcome::Refused(HoldRefusal::RateLimited { retry_after: 1 }) => limited += 1,
            other => panic!("a racer got {other:?}"),
        }
    }
    assert_eq!((started, limited), (10, 30), "a burst of the rate, the rest told to wait");
    let key = f.store.get_key(f.account, f.key).await.unwrap().unwrap();
    assert_eq!(key.held_total, Micros(10 * 10_000), "refused calls hold nothing");
    match f.store.begin_execution(start(100, clock + Duration::microseconds(99_999))).await.unwrap() {
        BeginOutcome::Refused(HoldRefusal::RateLimited { .. }) => {}
        other => panic!("within the interval: {other:?}"),
    }
    match stores[stores.len() - 1].begin_execution(start(101, clock + Duration::microseconds(100_000))).await.unwrap() {
        BeginOutcome::Started(_) => {}
        other => panic!("one interval later, one more: {other:?}"),
    }
    assert!(f.store.verify_ledger().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_repaired_by_sending_it_again() {
    let mut f = fixture().await;
    let t0 = OffsetDateTime::now_utc();
    let node = f.store.register_node("a:1", t0, LEASE).await.unwrap();
    let account = |f: &Fixture| {
        let store = f.store.clone();
        async move { store.account_by_login("acme").await.unwrap().unwrap() }
    };

    // The finish committed, its answer was lost, and the node sends it again.
    let call = f.begin(node, t0).await;
    let finish =
        Finish::Capture { reported: Micros(4_000), receipt_id: "rcpt_1".into(), status: 200, body: b"{}".to_vec() };
    let first = f.store.finish_execution(&call, finish.clone(), t0).await.unwrap();
    let again = f.store.finish_execution(&call, finish, t0).await.unwrap();
    assert_eq!((again.state, again.charged, again.receipt_id.as_deref()), (first.state, Micros(4_000), Some("rcpt_1")));
    let after = account(&f).await;
    assert_eq!((after.balance, after.held), (Micros(1_000_000 - 4_000), Micros::ZERO), "charged once");
    // Another outcome, or another capture, is still refused once the call has ended.
    let other = Finish::Capture { reported: Micros(1), receipt_id: "rcpt_2".into(), status: 200, body: b"{}".to_vec() };
    for late in [Finish::VoidRetryable, other] {
        let refused = f.store.finish_execution(&call, late, t0).await;
        assert!(matches!(refused, Err(StoreError::Refused(Refusal::ExecutionState { .. }))), "{refused:?}");
    }

    // The begin committed, its answer was lost: the node abandons it by its public id.
    let lost = f.begin(node, t0).await;
    let running = f.begin(node, t0).await;
    assert_eq!(account(&f).await.held, Micros(20_000));
    assert!(f.store.abandon_execution(&lost.execution.public_id, t0).await.unwrap());
    assert_eq!(f.state(&lost).await, ExecutionState::Voided);
    assert_eq!(f.state(&running).await, ExecutionState::Running, "only the abandoned call");
    assert_eq!(account(&f).await.held, Micros(10_000));
    assert!(!f.store.abandon_execution(&lost.execution.public_id, t0).await.unwrap(), "once");
    assert!(!f.store.abandon_execution("exec-never-begun", t0).await.unwrap(), "a begin that never committed");
    assert!(!f.store.abandon_execution(&first.public_id, t0).await.unwrap(), "an ended call is left alone");
    // Its Idempotency-Key is free again: the client's retry starts the call afresh.
    let idempotency_key = [f.calls - 1; 16];
    let retry = Fixture::start_of(f.account, f.key, f.secret, node, t0, idempotency_key);
    let retry = ExecutionStart { public_id: "exec-retry".into(), ..retry };
    assert!(matches!(f.store.begin_execution(retry).await.unwrap(), BeginOutcome::Started(_)));
    assert!(f.store.verify_ledger().await.unwrap().is_empty());
}

/// A node paused past its lease wakes and settles a call an operator already decided: its
/// finish is refused whatever the operator chose, a capture of nothing included (no receipt on
/// either side, which once passed for the node's own finish sent again).
#[tokio::test]
async fn a_finish_after_an_operators_decision_is_refused_even_for_a_zero_capture() {
    let mut f = fixture().await;
    let t0 = OffsetDateTime::now_utc();
    let node = f.store.register_node("a:1", t0, LEASE).await.unwrap();
    let ctx = AuditContext { actor: Actor::Operator, ip: None, user_agent: None, now: at(t0, 31) };
    let zero = Reconcile::Capture {
        cost: Micros::ZERO,
        receipt_id: "rcpt_op".into(),
        status: 200,
        body: b"{\"operator\":true}".to_vec(),
        retain_until: at(t0, 3600),
    };
    let calls = [(f.begin(node, t0).await, zero), (f.begin(node, t0).await, Reconcile::Void)];
    // The lease's end, fast-forwarded (leases follow the database's clock).
    f.store.release_node(node).await.unwrap();
    assert_eq!(f.store.reclaim_expired_nodes().await.unwrap(), 2);
    for (call, decision) in calls {
        let decided =
            f.store.reconcile_execution(&call.execution.public_id, decision, ctx.clone(), None).await.unwrap();
        // The node's own outcomes, each of which would end the call in the operator's state.
        let late = [
            Finish::Capture {
                reported: Micros::ZERO,
                receipt_id: "rcpt_node".into(),
                status: 200,
                body: b"{}".to_vec(),
            },
            Finish::VoidFinal { status: 502, body: b"{}".to_vec() },
        ];
        for finish in late {
            let refused = f.store.finish_execution(&call, finish, at(t0, 32)).await;
            assert!(matches!(refused, Err(StoreError::Refused(Refusal::ExecutionState { .. }))), "{refused:?}");
        }
        assert_eq!(f.state(&call).await, decided.state, "the operator's decision stands");
    }
    let account = f.store.account_by_login("acme").await.unwrap().unwrap();
    assert_eq!((account.balance, account.held), (Micros(1_000_000), Micros::ZERO));
    assert!(f.store.verify_ledger().await.unwrap().is_empty());
}

/// A node's running calls, as its sweep of untracked calls reads them: only its own, only
/// those still running, only those begun before the cut-off.
#[tokio::test]
async fn a_nodes_running_calls_are_listed_for_its_sweep() {
    let mut f = fixture().await;
    let t0 = OffsetDateTime::now_utc();
    let (a, b) = (
        f.store.register_node("a:1", t0, LEASE).await.unwrap(),
        f.store.register_node("b:1", t0, LEASE).await.unwrap(),
    );
    let old = f.begin(a, t0).await;
    let ended = f.begin(a, t0).await;
    f.store.finish_execution(&ended, Finish::VoidRetryable, t0).await.unwrap();
    let recent = f.begin(a, at(t0, 10)).await;
    let _other_node = f.begin(b, t0).await;
    let listed = f.store.running_on_node(a, at(t0, 5), 100).await.unwrap();
    assert_eq!(listed, vec![old.execution.public_id.clone()]);
    assert_eq!(f.store.running_on_node(a, at(t0, 11), 1).await.unwrap().len(), 1, "at most the limit");
    assert_eq!(f.store.running_on_node(a, at(t0, 11), 100).await.unwrap().len(), 2);
    assert!(f.store.abandon_execution(&recent.execution.public_id, at(t0, 11)).await.unwrap());
}

/// Spend per key and UTC day is what the captures charged on that day (a void charges
/// nothing), for this account only, from the day asked on.
#[tokio::test]
async fn account_spend_is_the_captures_per_key_and_day() {
    let mut f = fixture().await;
    let day = 20_000i64;
    let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(day) + Duration::hours(12);
    let node = f.store.register_node("a:1", t0, LEASE).await.unwrap();
    let capture = |micros: i64| Finish::Capture {
        reported: Micros(micros),
        receipt_id: format!("r{micros}"),
        status: 200,
        body: b"{}".to_vec(),
    };
    let yesterday = f.begin(node, t0 - Duration::days(1)).await;
    f.store.finish_execution(&yesterday, capture(3_000), t0 - Duration::days(1)).await.unwrap();
    let today = f.begin(node, t0).await;
    f.store.finish_execution(&today, capture(7_000), t0).await.unwrap();
    let voided = f.begin(node, t0).await;
    f.store.finish_execution(&voided, Finish::VoidRetryable, t0).await.unwrap();

    let spend = f.store.account_spend(f.account, day - 1).await.unwrap();
    let rows: Vec<(i64, KeyId, i64)> = spend.iter().map(|s| (s.day_number, s.key_id, s.spent.0)).collect();
    assert_eq!(rows, [(day - 1, f.key, 3_000), (day, f.key, 7_000)]);
    let from_today = f.store.account_spend(f.account, day).await.unwrap();
    assert_eq!(from_today.len(), 1);
    let another = AccountId::new(f.account.get() + 1);
    assert!(f.store.account_spend(another, 0).await.unwrap().is_empty(), "another account sees nothing");
}

fn key_policy(label: &str) -> KeyPolicy {
    KeyPolicy {
        label: KeyLabel::parse(label).unwrap(),
        grant: ToolGrant::new(None, None).unwrap(),
        allowed_cidrs: CidrAllowlist::default(),
        daily_cap_cents: 100,
        total_cap_cents: None,
        expires_at: None,
        read_only: false,
        rate_limit_per_second: 100,
        idempotency_optional: false,
        cap_alert_percent: 80,
        end_user_required: false,
        end_user_caps: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_events_go_with_their_cause_to_the_endpoints_that_want_them_one_node_at_a_time() {
    let f = fixture().await;
    let now = OffsetDateTime::now_utc();
    let ctx = AuditContext { actor: Actor::Operator, ip: None, user_agent: None, now };
    let store = f.store.clone();
    let new_key = |label: &'static str, n: u8| {
        let prefix = format!("VisaKey_live_{n}...");
        let secret = NewSecret { hash: SecretHash([n + 40; 32]), key_prefix: prefix, expires_at: None };
        NewKey { account_id: f.account, environment: Environment::Production, policy: key_policy(label), secret }
    };
    let endpoint = |events: &[&str], url: &str| NewWebhook {
        account_id: f.account,
        url: url.into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        description: String::new(),
        secret_salt: vec![7; 16],
    };
    let (a, b) = (NodeId(1), NodeId(2));
    let lease = now + Duration::seconds(30);

    // The fixture's key was created before any endpoint: nothing was written for it.
    assert!(store.claim_webhook_deliveries(a, now, lease, 100).await.unwrap().is_empty());
    let created =
        store.create_webhook(endpoint(&["key.created"], "https://a.example/hook"), ctx.clone()).await.unwrap();
    let revoked_only =
        store.create_webhook(endpoint(&["key.revoked"], "https://b.example/hook"), ctx.clone()).await.unwrap();
    let all = store.create_webhook(endpoint(&["*"], "https://c.example/hook"), ctx.clone()).await.unwrap();

    let mut keys = vec![];
    for (label, n) in [("one", 1), ("two", 2), ("three", 3)] {
        keys.push(store.create_key(new_key(label, n), ctx.clone()).await.unwrap());
    }
    // Three key.created events, each to `created` and `all`: six deliveries, claimed by two
    // nodes at once, each by exactly one of them.
    let (first, second) = tokio::join!(
        store.claim_webhook_deliveries(a, now, lease, 100),
        store.claim_webhook_deliveries(b, now, lease, 100)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    let mut claimed: Vec<(i64, WebhookId, String)> =
        first.iter().chain(&second).map(|d| (d.delivery_id, d.endpoint.id, d.event_type.clone())).collect();
    claimed.sort();
    assert_eq!(claimed.len(), 6, "{claimed:?}");
    claimed.dedup_by_key(|c| c.0);
    assert_eq!(claimed.len(), 6, "a delivery was leased twice");
    assert!(claimed.iter().all(|(_, to, kind)| kind == "key.created" && (*to == created.id || *to == all.id)));
    let due = first.iter().chain(&second).find(|d| d.endpoint.id == all.id).unwrap().clone();
    let payload: serde_json::Value = serde_json::from_str(&due.payload).unwrap();
    assert_eq!(payload["type"], "key.created");
    assert!(payload["data"]["key_prefix"].as_str().unwrap().starts_with("VisaKey_live_"), "{payload}");
    assert!(due.event_id.starts_with("msg_"));
    // Leased: no one else takes them until the lease ends.
    assert!(store.claim_webhook_deliveries(a, now, lease, 100).await.unwrap().is_empty());

    // A revocation reaches `revoked_only` and `all`; revoking again fires nothing more.
    store.revoke_key(f.account, keys[0].id, RevokeCause::Leaked, ctx.clone()).await.unwrap();
    store.revoke_key(f.account, keys[0].id, RevokeCause::Requested, ctx.clone()).await.unwrap();
    let revocations = store.claim_webhook_deliveries(a, now, lease, 100).await.unwrap();
    let mut to: Vec<WebhookId> = revocations.iter().map(|d| d.endpoint.id).collect();
    to.sort();
    assert_eq!(to, [revoked_only.id, all.id]);
    let payload: serde_json::Value = serde_json::from_str(&revocations[0].payload).unwrap();
    assert_eq!((payload["type"].as_str(), payload["data"]["reason"].as_str()), (Some("key.revoked"), Some("leaked")));

    // A failed attempt comes due again at its retry; a delivered one never; a 410 disables.
    let log = |status: u16| AttemptLog { status: Some(status), error: None, latency_ms: 3, response: "no".into() };
    let later = now + Duration::seconds(5);
    store.record_webhook_attempt(&due, log(500), AttemptNext::RetryAt(later), now).await.unwrap();
    assert!(store.claim_webhook_deliveries(a, now, lease, 100).await.unwrap().is_empty());
    let again = store.claim_webhook_deliveries(b, later, later + Duration::seconds(30), 100).await.unwrap();
    assert_eq!(again.iter().map(|d| (d.delivery_id, d.attempts)).collect::<Vec<_>>(), [(due.delivery_id, 1)]);
    store.record_webhook_attempt(&again[0], log(200), AttemptNext::Delivered, later).await.unwrap();
    let attempts = store.list_webhook_attempts(f.account, all.id, 10).await.unwrap();
    assert_eq!(
        attempts.iter().map(|a| (a.attempt, a.log.status)).collect::<Vec<_>>(),
        [(2, Some(200)), (1, Some(500))]
    );
    assert_eq!(attempts[0].event_id, due.event_id);

    let gone = revocations.iter().find(|d| d.endpoint.id == revoked_only.id).unwrap();
    store.record_webhook_attempt(gone, log(410), AttemptNext::Gone, now).await.unwrap();
    let disabled = store.get_webhook(f.account, revoked_only.id).await.unwrap();
    assert_eq!((disabled.enabled, disabled.disabled_reason.as_deref()), (false, Some("gone")));
    store.revoke_key(f.account, keys[1].id, RevokeCause::Requested, ctx.clone()).await.unwrap();
    let after = store
        .claim_webhook_deliveries(a, later + Duration::minutes(1), lease + Duration::minutes(1), 100)
        .await
        .unwrap();
    assert!(after.iter().all(|d| d.endpoint.id != revoked_only.id), "a disabled endpoint gets nothing: {after:?}");
    assert!(after.iter().any(|d| d.event_type == "key.revoked" && d.endpoint.id == all.id), "{after:?}");
    // The first claims' leases ended unrecorded (their node died): another node takes them.
    let handed_on = after.iter().filter(|d| d.event_type == "key.created").count();
    assert_eq!(handed_on, 5, "{after:?}");

    // Replaying the delivered event sends it again, with the same id.
    let replayed = store.replay_webhook(f.account, all.id, Replay::Event(due.event_id.clone()), later).await.unwrap();
    assert_eq!(replayed, 1);
    let resent =
        store.claim_webhook_deliveries(b, later + Duration::hours(1), lease + Duration::hours(1), 100).await.unwrap();
    assert!(resent.iter().any(|d| d.event_id == due.event_id), "{resent:?}");
}

/// An endpoint whose every attempt failed for five days in a row is disabled by the server,
/// audited as its own act; a delivery in between starts the count again.
#[tokio::test]
async fn an_endpoint_failing_for_five_days_in_a_row_is_disabled_with_an_audit_entry() {
    let f = fixture().await;
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let ctx = AuditContext { actor: Actor::Operator, ip: None, user_agent: None, now: t0 };
    let store = f.store.clone();
    let new = NewWebhook {
        account_id: f.account,
        url: "https://down.example/hook".into(),
        events: vec!["*".into()],
        description: String::new(),
        secret_salt: vec![9; 16],
    };
    let hook = store.create_webhook(new, ctx).await.unwrap();
    let log = |status: u16| AttemptLog { status: Some(status), error: None, latency_ms: 1, response: String::new() };
    // One attempt at `at`, of a test event sent then, answered `status`.
    let attempt = |at: OffsetDateTime, status: u16| {
        let store = store.clone();
        async move {
            store.send_webhook_event(f.account, hook.id, "webhook.test", serde_json::json!({}), at).await.unwrap();
            let due = store.claim_webhook_deliveries(NodeId(1), at, at + Duration::minutes(1), 100).await.unwrap();
            for delivery in &due {
                let next =
                    if status == 200 { AttemptNext::Delivered } else { AttemptNext::RetryAt(at + Duration::days(30)) };
                store.record_webhook_attempt(delivery, log(status), next, at).await.unwrap();
            }
            store.get_webhook(f.account, hook.id).await.unwrap()
        }
    };
    let failing = attempt(t0, 500).await;
    assert_eq!((failing.enabled, failing.failing_since), (true, Some(t0)));
    // A delivery after four days of failures starts the count again.
    assert!(attempt(t0 + Duration::days(4), 500).await.enabled);
    let delivered = attempt(t0 + Duration::days(4) + Duration::hours(1), 200).await;
    assert_eq!(delivered.failing_since, None);
    let since = t0 + Duration::days(5);
    assert!(attempt(since, 500).await.enabled);
    let still = attempt(since + Duration::days(5) - Duration::seconds(1), 503).await;
    assert!(still.enabled, "five days less a second");
    let disabled = attempt(since + Duration::days(5), 503).await;
    assert_eq!((disabled.enabled, disabled.disabled_reason.as_deref()), (false, Some("failing")));
    let filter = AuditFilter { action: Some("webhook.disabled".into()), ..Default::default() };
    let audit = store.list_audit(f.account, filter, PageRequest::parse(None, None, None).unwrap()).await.unwrap();
    assert_eq!(audit.items.len(), 1, "{:?}", audit.items);
    assert_eq!(audit.items[0].actor, Actor::System);
    assert_eq!(audit.items[0].changes["disabled_reason"]["after"], "failing");
    // Disabled: nothing more is leased to it until an owner enables it again.
    let later = since + Duration::days(6);
    store.send_webhook_event(f.account, hook.id, "webhook.test", serde_json::json!({}), later).await.unwrap();
    assert!(store.claim_webhook_deliveries(NodeId(1), later, later, 100).await.unwrap().is_empty());

    // The log is kept for its retention: 30 days on, the attempts older than that are gone.
    let retention = Retention {
        operator_requests: Duration::days(1),
        usage_minutes: Duration::days(7),
        usage_hours: Duration::days(90),
        webhook_log: Duration::days(30),
    };
    assert_eq!(store.list_webhook_attempts(f.account, hook.id, 100).await.unwrap().len(), 6);
    store.sweep_expired(t0 + Duration::days(36), retention, 1_000).await.unwrap();
    let kept = store.list_webhook_attempts(f.account, hook.id, 100).await.unwrap();
    let newest = since + Duration::days(5);
    let kept_at: Vec<OffsetDateTime> = kept.iter().map(|a| a.created_at).collect();
    assert_eq!(kept_at, [newest, newest - Duration::seconds(1)]);
    store.sweep_expired(t0 + Duration::days(41), retention, 1_000).await.unwrap();
    assert!(store.list_webhook_attempts(f.account, hook.id, 100).await.unwrap().is_empty());
}

/// Both ways a call comes to wait for an operator send `execution.reconcile_required` with it,
/// once: its node's lease ended (a bulk reclaim), or its outcome could not be recorded.
#[tokio::test]
async fn a_call_left_for_an_operator_is_announced_once_in_the_same_transaction() {
    let mut f = fixture().await;
    let t0 = OffsetDateTime::now_utc();
    let ctx = AuditContext { actor: Actor::Operator, ip: None, user_agent: None, now: t0 };
    let hook = NewWebhook {
        account_id: f.account,
        url: "https://ops.example/hook".into(),
        events: vec!["execution.reconcile_required".into()],
        description: String::new(),
        secret_salt: vec![1; 16],
    };
    f.store.create_webhook(hook, ctx).await.unwrap();
    let node = f.store.register_node("a:1", t0, LEASE).await.unwrap();
    let unrecorded = f.begin(node, t0).await;
    let lost = f.begin(node, t0).await;
    assert!(f.store.require_reconcile(&unrecorded.execution.public_id).await.unwrap());
    assert!(!f.store.require_reconcile(&unrecorded.execution.public_id).await.unwrap());
    f.store.release_node(node).await.unwrap();
    assert_eq!(f.store.reclaim_expired_nodes().await.unwrap(), 1, "the other call");
    assert_eq!(f.store.reclaim_expired_nodes().await.unwrap(), 0);
    let due = f
        .store
        .claim_webhook_deliveries(NodeId(9), t0 + Duration::hours(1), t0 + Duration::hours(2), 10)
        .await
        .unwrap();
    let mut announced: Vec<String> = due
        .iter()
        .map(|d| {
            let payload: serde_json::Value = serde_json::from_str(&d.payload).unwrap();
            assert_eq!(payload["type"], "execution.reconcile_required");
            assert_eq!(payload["data"]["hold_micros"], 10_000);
            payload["data"]["support_id"].as_str().unwrap().to_owned()
        })
        .collect();
    announced.sort();
    let mut expected = vec![unrecorded.execution.public_id.clone(), lost.execution.public_id.clone()];
    expected.sort();
    assert_eq!(announced, expected);
}

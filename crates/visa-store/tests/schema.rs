//! Migrations, on the backend `VISA_TEST_DATABASE` names: nodes that start together on one
//! database migrate it once and all work; a node refuses a schema newer than it knows,
//! changing nothing.

use visa_core::money::Micros;
use visa_store::*;

fn operator() -> AuditContext {
    AuditContext { actor: Actor::Operator, ip: None, user_agent: None, now: time::OffsetDateTime::now_utc() }
}

#[test]
fn nodes_starting_together_migrate_once_and_all_work() {
    let dir = tempfile::tempdir().unwrap();
    let database = Database::for_tests(dir.path()).unwrap();
    // SQLite nodes never start together (the data dir's lock lets one process in), so they
    // open one after another; nodes on a shared database open at once.
    let stores: Vec<_> = if matches!(database, Database::Sqlite(_)) {
        (0..8).map(|_| database.open().expect("every node opens")).collect()
    } else {
        std::thread::scope(|scope| {
            let opening: Vec<_> = (0..8).map(|_| scope.spawn(|| database.open())).collect();
            opening.into_iter().map(|node| node.join().unwrap().expect("every node opens")).collect()
        })
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        for (n, store) in stores.iter().enumerate() {
            let new =
                NewAccount { login: format!("acct{n}"), password_hash: None, approved: true, credit: Micros(n as i64) };
            store.create_account(new, operator()).await.expect("each node writes");
        }
        for store in &stores {
            assert!(store.account_by_login("acct7").await.unwrap().is_some(), "one database, seen by every node");
            assert!(store.verify_ledger().await.unwrap().is_empty());
        }
    });
    drop(runtime);
    drop(stores);
}

#[test]
fn a_schema_newer_than_this_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let database = Database::for_tests(dir.path()).unwrap();
    drop(database.open().unwrap());
    let bump = "a future release's migration";
    match &database {
        Database::Sqlite(path) => {
            rusqlite::Connection::open(path).unwrap().pragma_update(None, "user_version", 999).expect(bump);
        }
        Database::Postgres(target) => std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut client = ::postgres::Client::connect(&target.url, ::postgres::NoTls).unwrap();
                    client.batch_execute("UPDATE visa_schema SET version = 999").expect(bump);
                })
                .join()
                .unwrap()
        }),
    }
    let refused = database.open().err().expect("a newer schema is refused").to_string();
    assert!(refused.contains("version 999, newer than this build knows"), "{refused}");
}

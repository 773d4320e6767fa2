//! Migrations, on the backend `VISA_TEST_DATABASE` names: nodes that start together on one
//! database migrate it once and all work; a node refuses a schema newer than it knows,
//! changing nothing. And on both backends at once: the two lists of migrations, kept by hand,
//! end on the same schema but for the differences listed with their reasons.

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

/// One backend's final schema, in words both spell alike: per table, its columns (name, type
/// class, nullable), its indexes (name or, for a constraint's own index, its columns; unique;
/// partial) and its foreign keys (column → table).
#[derive(Debug, Default, PartialEq)]
struct Shape {
    tables: std::collections::BTreeMap<String, Table>,
}

#[derive(Debug, Default, PartialEq)]
struct Table {
    columns: std::collections::BTreeSet<String>,
    indexes: std::collections::BTreeSet<String>,
    foreign_keys: std::collections::BTreeSet<String>,
}

/// The class of a column's type: both backends store every integer as 64 bits, hashes and
/// bodies as bytes, flags as booleans (SQLite: `INTEGER` holding 0 or 1, its CHECK says so).
fn type_class(declared: &str) -> &'static str {
    match declared.to_ascii_lowercase().as_str() {
        "integer" | "bigint" | "boolean" => "int or bool",
        "text" => "text",
        "blob" | "bytea" => "bytes",
        other => panic!("a column type this comparison does not know: {other}"),
    }
}

/// An index as both backends are compared on: its name (`None` for a key's or a constraint's
/// own index, whose name each backend makes up: then named by its columns), its columns, and
/// whether it is unique or partial.
fn index_entry(name: Option<String>, columns: &[String], unique: bool, partial: bool) -> String {
    let columns = columns.join(", ");
    let name = name.unwrap_or_else(|| format!("({columns})"));
    format!("{name} on ({columns}){}{}", if unique { " unique" } else { "" }, if partial { " partial" } else { "" })
}

fn sqlite_shape(path: &std::path::Path) -> Shape {
    let conn = rusqlite::Connection::open(path).unwrap();
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut shape = Shape::default();
    for name in names {
        let mut table = Table::default();
        let mut columns = conn.prepare(&format!("PRAGMA table_info({name})")).unwrap();
        let rows = columns.query_map([], |r| {
            Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, bool>(3)?, r.get::<_, i64>(5)?))
        });
        for (column, declared, not_null, pk) in rows.unwrap().map(Result::unwrap) {
            let nullable = !not_null && pk == 0;
            table.columns.insert(format!(
                "{column} {} {}",
                type_class(&declared),
                if nullable { "null" } else { "not null" }
            ));
        }
        let mut indexes = conn.prepare(&format!("PRAGMA index_list({name})")).unwrap();
        let rows = indexes.query_map([], |r| {
            Ok((r.get::<_, String>(1)?, r.get::<_, bool>(2)?, r.get::<_, String>(3)?, r.get::<_, bool>(4)?))
        });
        for (index, unique, origin, partial) in rows.unwrap().map(Result::unwrap) {
            let columns: Vec<String> = conn
                .prepare(&format!("PRAGMA index_info({index})"))
                .unwrap()
                .query_map([], |r| r.get(2))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            // ("c": made by CREATE INDEX; else a key's or a UNIQUE constraint's own)
            table.indexes.insert(index_entry((origin == "c").then_some(index), &columns, unique, partial));
        }
        // An INTEGER PRIMARY KEY is the rowid, with no index of its own; PostgreSQL's has one.
        let rowid_key: Option<String> = conn
            .query_row(&format!("SELECT name FROM pragma_table_info('{name}') WHERE pk = 1 AND lower(type) = 'integer' AND (SELECT COUNT(*) FROM pragma_table_info('{name}') WHERE pk > 0) = 1"), [], |r| r.get(0))
            .ok();
        if let Some(column) = rowid_key {
            table.indexes.insert(index_entry(None, &[column], true, false));
        }
        let mut keys = conn.prepare(&format!("PRAGMA foreign_key_list({name})")).unwrap();
        let rows = keys.query_map([], |r| Ok((r.get::<_, String>(2)?, r.get::<_, String>(3)?)));
        for (target, column) in rows.unwrap().map(Result::unwrap) {
            table.foreign_keys.insert(format!("{column} → {target}"));
        }
        shape.tables.insert(name, table);
    }
    shape
}

fn postgres_shape(url: &str) -> Shape {
    let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
    let mut shape = Shape::default();
    let columns = "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
                   FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'visa_schema'";
    for row in client.query(columns, &[]).unwrap() {
        let (table, column, declared, nullable): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let nullable = if nullable == "YES" { "null" } else { "not null" };
        shape.tables.entry(table).or_default().columns.insert(format!("{column} {} {nullable}", type_class(&declared)));
    }
    let indexes = "SELECT t.relname::text, i.relname::text, x.indisunique, x.indpred IS NOT NULL, \
                          EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid), \
                          ARRAY(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY k(n, o) \
                                JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n ORDER BY k.o) \
                   FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
                   JOIN pg_namespace s ON s.oid = t.relnamespace WHERE s.nspname = 'public' AND t.relname <> 'visa_schema'";
    for row in client.query(indexes, &[]).unwrap() {
        let (table, index, unique, partial, constraint, columns): (String, String, bool, bool, bool, Vec<String>) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
        let entry = index_entry((!constraint).then_some(index), &columns, unique, partial);
        shape.tables.entry(table).or_default().indexes.insert(entry);
    }
    let keys = "SELECT t.relname::text, a.attname::text, f.relname::text FROM pg_constraint c \
                JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class f ON f.oid = c.confrelid \
                JOIN pg_namespace s ON s.oid = t.relnamespace \
                JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = c.conkey[1] \
                WHERE c.contype = 'f' AND s.nspname = 'public'";
    for row in client.query(keys, &[]).unwrap() {
        let (table, column, target): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        shape.tables.entry(table).or_default().foreign_keys.insert(format!("{column} → {target}"));
    }
    shape
}

/// Where the two schemas differ on purpose, each with its reason; anything else is drift.
const DIFFERENCES: &[(&str, &str, &str)] = &[
    // PostgreSQL dropped the money path's foreign keys for speed (its migration 4, docs/postgres.md).
    ("executions", "foreign key", "account_id → accounts"),
    ("executions", "foreign key", "key_id → keys"),
    ("executions", "foreign key", "node_id → nodes"),
    ("ledger", "foreign key", "account_id → accounts"),
    ("idempotency_records", "foreign key", "execution_id → executions"),
    ("execution_responses", "foreign key", "execution_id → executions"),
];

/// The SQLite and PostgreSQL migrations end on the same tables, columns (type and
/// nullability), indexes and foreign keys, but for the differences listed above. (CHECK
/// constraints are spelt in each dialect and are proven by the contract suite instead.)
#[test]
fn both_backends_migrate_to_the_same_schema() {
    let admin = std::env::var("VISA_TEST_POSTGRES_URL").expect(
        "this test compares the SQLite and PostgreSQL schemas: set VISA_TEST_POSTGRES_URL to a PostgreSQL \
         server's administrative URL (`cargo xtask test` starts one and sets it)",
    );
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Database::Sqlite(dir.path().join("visa.db"));
    let url = visa_store::postgres::create_test_database(&admin).unwrap();
    let postgres = Database::Postgres(PostgresTarget::new(url.clone()));
    let shapes = std::thread::spawn(move || {
        drop(sqlite.open().unwrap());
        drop(postgres.open().unwrap());
        (sqlite_shape(&dir.path().join("visa.db")), postgres_shape(&url))
    });
    let (mut sqlite, postgres) = shapes.join().unwrap();
    for (table, what, item) in DIFFERENCES {
        let kept = sqlite.tables.get_mut(*table).map(|t| t.foreign_keys.remove(*item));
        assert_eq!(kept, Some(true), "{table}: the {what} {item} is listed as a difference but SQLite has none");
    }
    let names = |shape: &Shape| shape.tables.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&sqlite), names(&postgres), "the same tables");
    for (name, table) in &sqlite.tables {
        assert_eq!(table, &postgres.tables[name], "table {name}: SQLite (left) and PostgreSQL (right)");
    }
}

//! The retention benchmark (`bench/retention.sh`): the real server library on a loopback port,
//! with a clock this program moves, takes CALLS paid echo calls over HTTP spread evenly over
//! DAYS simulated days, while the retention sweep runs as in production. It prints, at every
//! tenth of the run and at the end, the database's size by table and index (SQLite's `dbstat`),
//! so the part retention bounds and the part kept for good can be read apart.
//!
//! Each call is made for one of 1,000 end users (each always through the same key), so the
//! end users' rollups grow as a platform's would. With `--overview` (bench/overview.sh) it
//! then times the dashboard's overview page on the account it filled, against a reference
//! read of the same server (`GET /v1/api/balance`).
//!
//! Usage: visa-bench-retention DATA_DIR [CALLS] [DAYS] [CONNECTIONS] [--overview]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use visa_server::clock::Clock;
use visa_server::{DATABASE_FILE, ServeConfig, Server};

const OPERATOR_TOKEN: &str = "bench-operator-token-0123456789";
const KEYS: usize = 64;
const PASSWORD: &str = "bench-password-0123";
/// The end users calls are made for; each always goes through the same key.
const END_USERS: u64 = 1_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let data_dir = std::path::PathBuf::from(
        args.get(1).ok_or_else(|| anyhow::anyhow!("usage: DATA_DIR [CALLS] [DAYS] [CONNECTIONS]"))?,
    );
    let calls: u64 = args.get(2).map_or(Ok(1_000_000), |a| a.parse())?;
    let days: u64 = args.get(3).map_or(Ok(3), |a| a.parse())?;
    let connections: usize = args.get(4).map_or(Ok(64), |a| a.parse())?;
    let overview = args.iter().any(|a| a == "--overview");

    let clock = Clock::manual();
    let mut config = ServeConfig::new("127.0.0.1:0".parse()?, data_dir.clone());
    config.operator_token = Some(OPERATOR_TOKEN.into());
    config.clock = clock.clone();
    // Simulated time runs ~3,000x faster than real time here, so the sweep ticks often.
    config.sweep_interval = Duration::from_millis(200);
    config.usage_minute_retention = Duration::from_secs(24 * 3600);
    config.usage_hour_retention = Duration::from_secs(2 * 24 * 3600);
    let server = Server::start(config).await?;
    let api = format!("http://{}", server.local_addr());
    let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build()?;
    let keys = Arc::new(create_keys(&client, &api).await?);

    let step_micros = (days * 86_400 * 1_000_000 / calls.max(1)) as i64;
    let started_at = clock.now();
    let done = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    println!(
        "retention bench: {calls} paid calls over {days} simulated days, {connections} connections, {KEYS} keys; \
         Idempotency-Key retention 24 h, usage per minute 1 d then per hour 2 d then per day"
    );
    println!(
        "{:>9} {:>7} {:>9} {:>9} {:>11} {:>11} {:>9}",
        "calls", "day", "db_MB", "wal_MB", "idem_rows", "answers", "usage"
    );
    let ticker = {
        let (clock, done) = (clock.clone(), done.clone());
        tokio::spawn(async move {
            loop {
                // The simulated time follows the calls made: start + done * step.
                let target =
                    started_at + time::Duration::microseconds(done.load(Ordering::Relaxed) as i64 * step_micros);
                let lag = target - clock.now();
                if lag.is_positive() {
                    clock.advance(lag);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let began = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, api, keys, done, next, failures) =
                (client.clone(), api.clone(), keys.clone(), done.clone(), next.clone(), failures.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= calls {
                        return;
                    }
                    let end_user = i % END_USERS;
                    let answer = client
                        .post(format!("{api}/v1/api/tools/echo/execute"))
                        .header("X-Api-Key", &keys[end_user as usize % KEYS])
                        .header("X-Visa-End-User", format!("customer-{end_user}"))
                        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                        .header("Content-Type", "application/json")
                        .body(r#"{"input":{"hello":"world"}}"#)
                        .send()
                        .await;
                    if !matches!(&answer, Ok(r) if r.status().is_success()) {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let db = data_dir.join(DATABASE_FILE);
    let mut reported = 0;
    while reported < 10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let finished = done.load(Ordering::Relaxed);
        if finished >= (reported + 1) * calls / 10 {
            reported += 1;
            report(&db, finished, (clock.now() - started_at).as_seconds_f64() / 86_400.0)?;
        }
    }
    for worker in workers {
        worker.await?;
    }
    let elapsed = began.elapsed();
    // Let the last sweeps run at the final simulated instant, then stop cleanly.
    tokio::time::sleep(Duration::from_secs(2)).await;
    ticker.abort();
    if overview {
        // A fresh session: the first one ended days ago on the simulated clock.
        let signed_in: serde_json::Value = client
            .post(format!("{api}/v1/api/sessions"))
            .json(&serde_json::json!({ "login": "bench", "password": PASSWORD }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let fresh = signed_in["session_token"].as_str().ok_or_else(|| anyhow::anyhow!("no session: {signed_in}"))?;
        time_overview(&client, &api, fresh).await?;
    }
    server.shutdown().await?;
    println!(
        "{calls} calls in {:.0} s ({:.0} req/s), {} failed",
        elapsed.as_secs_f64(),
        calls as f64 / elapsed.as_secs_f64(),
        failures.load(Ordering::Relaxed)
    );
    breakdown(&db, calls)?;
    Ok(())
}

/// Times the dashboard's overview (signed in with the account's session cookie) and, as the
/// reference, `GET /v1/api/balance` (one small read through the same stack), 30 times each
/// after a warm-up, one request at a time.
async fn time_overview(client: &reqwest::Client, api: &str, session: &str) -> anyhow::Result<()> {
    let cookie = format!("visa_session={session}");
    let mut timings = vec![];
    for (name, path, cookie) in [
        ("overview", "/dashboard/overview", Some(cookie.as_str())),
        ("reference (GET /v1/api/balance)", "/v1/api/balance", None),
    ] {
        let mut took = vec![];
        for round in 0..35 {
            let mut request = client.get(format!("{api}{path}"));
            request = match cookie {
                Some(cookie) => request.header("Cookie", cookie),
                None => request.bearer_auth(session),
            };
            let started = Instant::now();
            let page = request.send().await?.error_for_status()?.text().await?;
            if round >= 5 {
                took.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            if name == "overview" && round == 0 && !page.contains("Top end users") {
                anyhow::bail!("the overview did not render: {page}");
            }
        }
        took.sort_by(f64::total_cmp);
        let (median, p95, max) = (took[took.len() / 2], took[took.len() * 95 / 100], took[took.len() - 1]);
        println!("{name}: median {median:.1} ms, p95 {p95:.1} ms, max {max:.1} ms ({} requests)", took.len());
        timings.push(median);
    }
    println!("overview / reference (medians): {:.1}x", timings[0] / timings[1].max(0.001));
    Ok(())
}

async fn create_keys(client: &reqwest::Client, api: &str) -> anyhow::Result<Vec<String>> {
    let account: serde_json::Value = client
        .post(format!("{api}/v1/operator/accounts"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&serde_json::json!({ "login": "bench", "password": PASSWORD, "approved": true, "credit_cents": 1_000_000_000 }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let session = account["session_token"].as_str().ok_or_else(|| anyhow::anyhow!("no session: {account}"))?.to_owned();
    let mut keys = vec![];
    for _ in 0..KEYS {
        let key: serde_json::Value = client
            .post(format!("{api}/v1/api/keys"))
            .bearer_auth(&session)
            .json(&serde_json::json!({ "label": "bench", "allowed_tools": ["echo"], "daily_cap_cents": 100_000_000, "rate_limit_per_second": 100_000 }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        keys.push(key["key"].as_str().ok_or_else(|| anyhow::anyhow!("no key: {key}"))?.to_owned());
    }
    Ok(keys)
}

fn megabytes(path: &std::path::Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1_048_576.0)
}

fn count(conn: &rusqlite::Connection, table: &str) -> anyhow::Result<i64> {
    Ok(conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
}

fn report(db: &std::path::Path, calls: u64, day: f64) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let wal = db.with_extension("db-wal");
    println!(
        "{calls:>9} {day:>7.2} {:>9.1} {:>9.1} {:>11} {:>11} {:>9}",
        megabytes(db),
        megabytes(&wal),
        count(&conn, "idempotency_records")?,
        count(&conn, "execution_responses")?,
        count(&conn, "usage_minutes")?
    );
    Ok(())
}

/// Bytes by table and index at the end, split into what retention bounds and what is kept.
fn breakdown(db: &std::path::Path, calls: u64) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare(
        "SELECT d.name, COALESCE(m.tbl_name, d.name), SUM(d.pgsize) FROM dbstat d \
         LEFT JOIN sqlite_schema m ON m.name = d.name GROUP BY d.name ORDER BY 3 DESC",
    )?;
    let rows: Vec<(String, String, i64)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
    let bounded =
        ["idempotency_records", "execution_responses", "provider_requests", "operator_requests", "usage_minutes"];
    let (mut kept, mut windowed) = (0i64, 0i64);
    println!("{:<40} {:>10}", "table or index", "MB");
    for (name, table, bytes) in &rows {
        println!("{name:<40} {:>10.1}", *bytes as f64 / 1_048_576.0);
        if bounded.contains(&table.as_str()) { windowed += bytes } else { kept += bytes }
    }
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    println!(
        "database {:.1} MB: kept for good (executions, ledger, keys, audit) {:.1} MB = {:.0} bytes per call; \
         bounded by retention {:.1} MB; free pages {:.1} MB",
        megabytes(db),
        kept as f64 / 1_048_576.0,
        kept as f64 / calls as f64,
        windowed as f64 / 1_048_576.0,
        (free * page) as f64 / 1_048_576.0
    );
    println!(
        "rows: idempotency records {}, stored answers {}, executions {}, ledger {}, usage {}",
        count(&conn, "idempotency_records")?,
        count(&conn, "execution_responses")?,
        count(&conn, "executions")?,
        count(&conn, "ledger")?,
        count(&conn, "usage_minutes")?
    );
    Ok(())
}

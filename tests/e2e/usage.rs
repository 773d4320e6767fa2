//! Usage retention: minutes older than the per-minute window roll up into their hour, hours
//! older than the per-hour window into their day, and the counts an hour or day query answers
//! do not change when they do; the table shrinks to one row per secret and bucket.

use serde_json::{Value, json};
use std::time::Duration;
use visa_e2e::TestApp;

fn rows(app: &TestApp) -> Vec<i64> {
    app.sql_rows("SELECT minute FROM usage_minutes ORDER BY minute").into_iter().map(|r| r[0]).collect()
}

async fn totals(app: &TestApp, session: &str, id: i64, granularity: &str, since: &str) -> Value {
    let until = visa_server::wire::rfc3339(app.clock.now());
    let path = format!("/v1/api/keys/{id}/usage?granularity={granularity}&since={since}&until={until}");
    let reply = app.get(&path.replace('+', "%2B"), session).await;
    reply.assert_ok(200)["secrets"][0]["totals"].clone()
}

#[tokio::test]
async fn old_usage_rolls_up_into_hours_then_days_and_keeps_its_counts() {
    let app = TestApp::spawn_with(|c| {
        c.usage_minute_retention = Duration::from_secs(24 * 3600);
        c.usage_hour_retention = Duration::from_secs(2 * 24 * 3600);
        c.sweep_interval = Duration::from_millis(50);
    })
    .await;
    let (session, id, key) = app.funded_key("octocat").await;
    // Start the story at a known place in its day: 00:07 UTC, the day after the clock's today.
    let now = app.clock.now();
    let next_midnight = (now.unix_timestamp().div_euclid(86_400) + 1) * 86_400;
    app.clock.advance(time::Duration::seconds(next_midnight + 7 * 60 - now.unix_timestamp()));
    let since = visa_server::wire::rfc3339(app.clock.now() - time::Duration::hours(1));
    // Traffic in five minutes over three hours: successes, a provider failure, a refusal.
    for (minutes_later, tool, input) in [
        (0, "echo", json!({})),
        (0, "echo", json!({ "n": 2 })),
        (5, "fail", json!({ "status": 503 })),
        (30, "echo", json!({})),
        (70, "echo", json!({})),
        (150, "nope", json!({})),
    ] {
        app.clock.advance(time::Duration::minutes(minutes_later));
        app.execute(&key, tool, input).await;
        app.clock.advance(time::Duration::minutes(-minutes_later));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await; // the per-second usage flush
    let minutes = rows(&app);
    assert_eq!(minutes.len(), 5, "one row per minute with traffic: {minutes:?}");
    app.clock.advance(time::Duration::hours(3));
    let by_minute = totals(&app, &session, id, "minute", &since).await;
    let by_hour = totals(&app, &session, id, "hour", &since).await;
    assert_eq!(by_minute, by_hour);
    assert_eq!(by_hour["requests"], 6);
    assert_eq!(by_hour["errors"]["UPSTREAM_ERROR"], 1);
    assert_eq!(by_hour["charged_micros"], "40000");

    // A day and a half later the minutes are older than a day: one row per hour with traffic.
    app.clock.advance(time::Duration::hours(33));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hours = rows(&app);
    assert_eq!(hours.len(), 3, "00:00, 01:00 and 02:00: {hours:?}");
    assert!(hours.iter().all(|m| m % 60 == 0), "{hours:?}");
    assert_eq!(totals(&app, &session, id, "hour", &since).await, by_hour);

    // Past two days the hours become their day.
    app.clock.advance(time::Duration::hours(24));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let days = rows(&app);
    assert_eq!(days.len(), 1, "{days:?}");
    assert_eq!(days[0] % 1440, 0);
    assert_eq!(totals(&app, &session, id, "day", &since).await, by_hour);
    assert!(app.verify_ledger().await.is_empty());
}

/// A flush the database refuses (here every write to `usage_minutes` fails for a while) loses
/// no count: the batch waits for the next flush, and the usage API shows every request once
/// the table takes writes again.
#[tokio::test]
async fn counts_survive_a_flush_the_database_refuses() {
    let app = TestApp::spawn().await;
    let (session, id, key) = app.funded_key("octocat").await;
    let since = visa_server::wire::rfc3339(app.clock.now() - time::Duration::hours(1));
    app.fail_writes_to("usage_minutes");
    for n in 0..10 {
        app.execute(&key, "echo", json!({ "n": n })).await.assert_ok(200);
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await; // two refused flushes
    assert!(rows(&app).is_empty(), "nothing could be written");
    app.writes_work_again("usage_minutes");
    app.execute(&key, "echo", json!({ "n": 10 })).await.assert_ok(200);
    let mut requests = Value::Null;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        requests = totals(&app, &session, id, "minute", &since).await["requests"].clone();
        if requests == json!(11) {
            break;
        }
    }
    assert_eq!(requests, json!(11), "the ten refused and the one after");
}

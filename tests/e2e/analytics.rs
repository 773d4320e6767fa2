//! Spend analytics (docs/analytics.md): `GET /v1/api/spend/series` counts the calls that ended
//! (with their charges) and the calls each limit refused, per hour or day, split by key, tool
//! or end user, from the rollups the money path writes — equal to the executions themselves.

use reqwest::Method;
use serde_json::{Value, json};
use visa_e2e::TestApp;

/// An echo call for `end_user` (none if empty).
async fn echo(app: &TestApp, key: &str, end_user: &str) -> visa_e2e::Reply {
    let idempotency_key = uuid::Uuid::new_v4().to_string();
    let mut headers = vec![("X-Api-Key", key), ("Idempotency-Key", idempotency_key.as_str())];
    if !end_user.is_empty() {
        headers.push(("X-Visa-End-User", end_user));
    }
    app.call(Method::POST, "/v1/api/tools/echo/execute", None, Some(json!({ "input": {} })), &headers).await
}

/// The series' buckets as (start's hour, group, calls, charged micros, refusals).
fn rows(series: &Value) -> Vec<(String, Value, i64, String, Value)> {
    series["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let hour = b["start"].as_str().unwrap()[11..13].to_owned();
            (
                hour,
                b["group"].clone(),
                b["calls"].as_i64().unwrap(),
                b["charged_micros"].as_str().unwrap().to_owned(),
                b["refusals"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_spend_series_counts_calls_charges_and_refusals_by_key_tool_and_end_user() {
    let app = TestApp::spawn().await;
    let session = app.account("analyst", true, 10_000).await;
    // 10:00 UTC on the server's clock.
    let now = app.clock.now().unix_timestamp();
    app.clock.advance(time::Duration::seconds(36_000 - now.rem_euclid(86_400)));
    let (a_id, a) = app.key(&session, json!({ "label": "a" })).await;
    let (b_id, b) = app.key(&session, json!({ "label": "b", "daily_cap_cents": 2 })).await;
    // 10:00: a makes three calls (one for u1, two for u2) and one that fails; b two, then its
    // cap refuses one.
    echo(&app, &a, "u1").await.assert_ok(200);
    echo(&app, &a, "u2").await.assert_ok(200);
    echo(&app, &a, "u2").await.assert_ok(200);
    app.execute(&a, "fail", json!({ "status": 503 })).await;
    echo(&app, &b, "").await.assert_ok(200);
    echo(&app, &b, "u1").await.assert_ok(200);
    assert_eq!(echo(&app, &b, "u1").await.assert_error(429, "RATE_LIMITED")["limit"], "key_daily_cap");
    // 11:00: one more call of a.
    app.clock.advance(time::Duration::hours(1));
    echo(&app, &a, "").await.assert_ok(200);

    let series = |query: &str, bearer: &str| {
        let (app, path, bearer) = (&app, format!("/v1/api/spend/series?{query}"), bearer.to_owned());
        async move { app.get(&path, &bearer).await }
    };
    let today = app.clock.now().date().to_string();
    let hours = series(&format!("granularity=hour&from={today}T00:00:00Z"), &session).await.assert_ok(200).clone();
    assert_eq!(
        (&hours["object"], &hours["granularity"], &hours["group_by"]),
        (&json!("spend_series"), &json!("hour"), &json!("none"))
    );
    assert_eq!(
        rows(&hours),
        [
            ("10".to_owned(), json!(null), 6, "50000".to_owned(), json!({ "key_daily_cap": 1 })),
            ("11".to_owned(), json!(null), 1, "10000".to_owned(), json!({})),
        ],
        "6 calls ended at 10:00 (the failed one charged nothing), 1 refused; 1 at 11:00: {hours}"
    );
    let by_key = series("group_by=key", &session).await.assert_ok(200).clone();
    assert_eq!(
        rows(&by_key).into_iter().map(|r| (r.1, r.2, r.3, r.4)).collect::<Vec<_>>(),
        [
            (json!(a_id.to_string()), 5, "40000".to_owned(), json!({})),
            (json!(b_id.to_string()), 2, "20000".to_owned(), json!({ "key_daily_cap": 1 })),
        ],
        "{by_key}"
    );
    let by_tool = series("group_by=tool", &session).await.assert_ok(200).clone();
    assert_eq!(
        rows(&by_tool).into_iter().map(|r| (r.1, r.2, r.3)).collect::<Vec<_>>(),
        [(json!("echo"), 6, "60000".to_owned()), (json!("fail"), 1, "0".to_owned())],
        "{by_tool}"
    );
    let by_user = series("group_by=end_user", &session).await.assert_ok(200).clone();
    assert_eq!(
        rows(&by_user).into_iter().map(|r| (r.1, r.2, r.4)).collect::<Vec<_>>(),
        [(json!("u1"), 2, json!({ "key_daily_cap": 1 })), (json!("u2"), 2, json!({}))],
        "the calls that named an end user, per day: {by_user}"
    );
    // A key reads only its own calls.
    let own = series("group_by=key", &b).await.assert_ok(200).clone();
    assert_eq!(rows(&own).len(), 1, "{own}");
    assert_eq!(own["buckets"][0]["group"], json!(b_id.to_string()));
    // What the series says was charged is what the executions were charged.
    let text = reqwest::Client::new()
        .get(app.url("/v1/api/spend/export.csv"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let charged: i64 = text.lines().skip(1).map(|line| line.split(',').nth(9).unwrap().parse::<i64>().unwrap()).sum();
    let series_charged: i64 = by_tool["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["charged_micros"].as_str().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!((charged, text.lines().count() - 1), (series_charged, 7), "{text}");

    for (query, why) in [
        ("granularity=hour&group_by=end_user", "per UTC day"),
        ("granularity=week", "hour or day"),
        ("group_by=account", "none, key, tool or end_user"),
        ("granularity=hour&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", "at most 744"),
        ("from=2026-03-01T00:00:00Z&to=2026-01-01T00:00:00Z", "before"),
    ] {
        let refused = series(query, &session).await;
        let error = refused.assert_error(400, "INVALID_REQUEST")["error"].as_str().unwrap().to_owned();
        assert!(error.contains(why), "{query}: {error}");
    }
    assert!(app.verify_ledger().await.is_empty(), "the rollups agree with the executions");
}

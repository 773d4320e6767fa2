//! The seed's key lifecycle over HTTP: create, list (cursor walk), get, update, revoke,
//! rotate, and isolation between accounts.

use reqwest::Method;
use serde_json::{Value, json};
use visa_e2e::{TestApp, rfc3339_in};

const KEY_FIELDS: [&str; 20] = [
    "id",
    "label",
    "owner",
    "key_prefix",
    "environment",
    "tool_scope",
    "allowed_tools",
    "allowed_cidrs",
    "daily_cap_cents",
    "total_cap_cents",
    "expires_at",
    "read_only",
    "status",
    "created_at",
    "revoked_at",
    "last_used_at",
    "last_used_ip",
    "spent_today_cents",
    "spent_total_cents",
    "secrets",
];

fn assert_key_object(key: &Value) {
    for field in KEY_FIELDS {
        assert!(key.get(field).is_some(), "missing {field} in {key}");
    }
    let text = key.to_string();
    assert!(!text.contains("hash"), "no hash in {text}");
}

#[tokio::test]
async fn create_returns_the_seed_shape_and_the_raw_key_once() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 0).await;
    let body = json!({
        "label": "my-demo-app",
        "allowed_tools": ["builtin-echo", "or-gpt-4o-mini"],
        "daily_cap_cents": 500,
        "total_cap_cents": 20000,
        "tool_scope": "restricted"
    });
    let reply = app.post("/v1/api/keys", &session, body).await;
    let key = reply.assert_ok(201).clone();
    assert_key_object(&key);
    let raw = key["key"].as_str().unwrap();
    assert!(raw.starts_with("VisaKey_live_"), "{raw}");
    assert!(key["key_prefix"].as_str().unwrap().ends_with("..."));
    assert!(raw.starts_with(key["key_prefix"].as_str().unwrap().trim_end_matches("...")));
    assert_eq!(key["label"], "my-demo-app");
    assert_eq!(key["owner"], "octocat");
    assert_eq!(key["allowed_tools"], json!(["echo", "or-gpt-4o-mini"]), "aliases resolve to canonical ids");
    assert_eq!(key["tool_scope"], "restricted");
    assert_eq!(key["daily_cap_cents"], 500);
    assert_eq!(key["total_cap_cents"], 20000);
    assert_eq!(key["environment"], "production");
    assert_eq!(key["status"], "active");
    assert_eq!(key["read_only"], false);
    assert_eq!(key["spent_today_cents"], 0);

    // The raw key never comes back.
    let id = key["id"].as_i64().unwrap();
    let fetched = app.get(&format!("/v1/api/keys/{id}"), &session).await;
    let fetched = fetched.assert_ok(200);
    assert_key_object(fetched);
    assert!(fetched.get("key").is_none());
    assert!(!fetched.to_string().contains(raw));
    let listed = app.get("/v1/api/keys", &session).await;
    assert!(!listed.body.to_string().contains(raw));
}

#[tokio::test]
async fn defaults_and_clamping() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 0).await;
    let reply = app.post("/v1/api/keys", &session, json!({ "label": "defaults" })).await;
    let key = reply.assert_ok(201);
    assert_eq!(key["daily_cap_cents"], 1000);
    assert_eq!(key["total_cap_cents"], Value::Null);
    assert_eq!(key["tool_scope"], "all_supported_tools");
    assert_eq!(key["allowed_tools"], json!([]));
    assert_eq!(key["allowed_cidrs"], json!([]));
    assert_eq!(key["expires_at"], Value::Null);

    let reply = app
        .post(
            "/v1/api/keys",
            &session,
            json!({ "label": "big", "daily_cap_cents": 1_000_000_000_000i64, "total_cap_cents": -5 }),
        )
        .await;
    let key = reply.assert_ok(201);
    assert_eq!(key["daily_cap_cents"], 100_000_000);
    assert_eq!(key["total_cap_cents"], 1);
    let reply = app
        .post("/v1/api/keys", &session, json!({ "label": "zero", "daily_cap_cents": 0, "total_cap_cents": null }))
        .await;
    let key = reply.assert_ok(201);
    assert_eq!(key["daily_cap_cents"], 1);
    assert_eq!(key["total_cap_cents"], Value::Null);
}

#[tokio::test]
async fn create_validation_fails_closed() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 0).await;
    let bad = [
        json!({}),
        json!({ "label": "" }),
        json!({ "label": "x".repeat(101) }),
        json!({ "label": "a", "allowed_tools": ["no-such-tool"] }),
        json!({ "label": "a", "tool_scope": "restricted" }),
        json!({ "label": "a", "tool_scope": "restricted", "allowed_tools": [] }),
        json!({ "label": "a", "tool_scope": "all_supported_tools", "allowed_tools": ["echo"] }),
        json!({ "label": "a", "tool_scope": "everything" }),
        json!({ "label": "a", "allowed_cidrs": ["10.0.0.0/8", "10.0.0.0/99"] }),
        json!({ "label": "a", "allowed_cidrs": ["not-a-cidr"] }),
        json!({ "label": "a", "expires_at": "2999-01-01T00:00:00" }),
        json!({ "label": "a", "expires_at": "2001-01-01T00:00:00Z" }),
        json!({ "label": "a", "read_only": "yes" }),
        json!({ "label": "a", "daily_cap_cents": 1.5 }),
        json!({ "label": "a", "surprise": true }),
    ];
    for body in bad {
        app.post("/v1/api/keys", &session, body.clone()).await.assert_error(400, "INVALID_REQUEST");
    }
    let listed = app.get("/v1/api/keys", &session).await;
    assert_eq!(listed.body["keys"], json!([]), "no rejected create left a key behind");

    let ok = json!({ "label": "a", "allowed_cidrs": ["10.0.0.0/8", "2001:db8::/32", "192.168.1.7"], "expires_at": rfc3339_in(3600), "read_only": true });
    let key = app.post("/v1/api/keys", &session, ok).await;
    let key = key.assert_ok(201);
    assert_eq!(key["allowed_cidrs"], json!(["10.0.0.0/8", "2001:db8::/32", "192.168.1.7/32"]));
    assert_eq!(key["read_only"], true);
}

#[tokio::test]
async fn list_walks_every_key_once_in_both_directions() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 0).await;
    let mut ids = vec![];
    for i in 0..12 {
        ids.push(app.key(&session, json!({ "label": format!("k{i}") })).await.0);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");

    let pages = app.walk_pages("/v1/api/keys?limit=5", &session).await;
    for page in &pages {
        assert_eq!(page["object"], "list");
        assert_eq!(page["limit"], 5);
        assert_eq!(page["has_more"], json!(page["next_cursor"].is_i64()));
    }
    let seen: Vec<i64> =
        pages.iter().flat_map(|p| p["keys"].as_array().unwrap().iter().map(|k| k["id"].as_i64().unwrap())).collect();
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected, "newest first, each once");
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0]["previous_cursor"], Value::Null);

    // Back from the last page with its previous_cursor gives the middle page again.
    let previous = pages[2]["previous_cursor"].as_i64().unwrap();
    let back = app.get(&format!("/v1/api/keys?limit=5&ending_before={previous}"), &session).await;
    assert_eq!(back.assert_ok(200)["keys"], pages[1]["keys"]);

    for bad in ["limit=0", "limit=101", "limit=ten", "starting_after=1&ending_before=2", "starting_after=abc"] {
        app.get(&format!("/v1/api/keys?{bad}"), &session).await.assert_error(400, "INVALID_REQUEST");
    }
    let default_page = app.get("/v1/api/keys", &session).await;
    assert_eq!(default_page.body["limit"], 25);
}

#[tokio::test]
async fn another_accounts_keys_are_invisible() {
    let app = TestApp::spawn().await;
    let alice = app.account("alice", true, 0).await;
    let bob = app.account("bob", true, 0).await;
    let (id, _) = app.key(&alice, json!({ "label": "alice-key" })).await;

    let path = format!("/v1/api/keys/{id}");
    app.get(&path, &bob).await.assert_error(404, "KEY_NOT_FOUND");
    app.patch(&path, &bob, json!({ "label": "pwned" })).await.assert_error(404, "KEY_NOT_FOUND");
    app.call(Method::DELETE, &path, Some(&bob), None, &[]).await.assert_error(404, "KEY_NOT_FOUND");
    app.post(&format!("{path}/rotate"), &bob, json!({})).await.assert_error(404, "KEY_NOT_FOUND");
    assert_eq!(app.get("/v1/api/keys", &bob).await.body["keys"], json!([]));
    app.get("/v1/api/keys/999999", &alice).await.assert_error(404, "KEY_NOT_FOUND");
    app.get("/v1/api/keys/abc", &alice).await.assert_error(404, "KEY_NOT_FOUND");
    // Alice's key is untouched.
    assert_eq!(app.get(&path, &alice).await.body["label"], "alice-key");
}

#[tokio::test]
async fn update_changes_only_what_is_sent() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 0).await;
    let (id, _) = app.key(&session, json!({ "label": "app", "allowed_tools": ["echo"], "total_cap_cents": 500, "expires_at": rfc3339_in(3600) })).await;
    let path = format!("/v1/api/keys/{id}");

    let reply = app
        .patch(&path, &session, json!({ "label": "renamed", "daily_cap_cents": 250, "allowed_cidrs": ["10.0.0.0/8"] }))
        .await;
    let key = reply.assert_ok(200);
    assert_key_object(key);
    assert_eq!(key["label"], "renamed");
    assert_eq!(key["daily_cap_cents"], 250);
    assert_eq!(key["allowed_tools"], json!(["echo"]));
    assert_eq!(key["total_cap_cents"], 500);
    assert_eq!(key["allowed_cidrs"], json!(["10.0.0.0/8"]));

    let key = app
        .patch(
            &path,
            &session,
            json!({ "total_cap_cents": null, "expires_at": null, "allowed_tools": ["sleep", "fail"] }),
        )
        .await;
    let key = key.assert_ok(200);
    assert_eq!(key["total_cap_cents"], Value::Null);
    assert_eq!(key["expires_at"], Value::Null);
    assert_eq!(key["allowed_tools"], json!(["sleep", "fail"]));
    assert_eq!(key["tool_scope"], "restricted");

    let key = app.patch(&path, &session, json!({ "tool_scope": "all_supported_tools" })).await;
    assert_eq!(key.assert_ok(200)["allowed_tools"], json!([]));

    for bad in [
        json!({ "label": "" }),
        json!({ "tool_scope": "restricted" }),
        json!({ "allowed_tools": ["nope"] }),
        json!({ "allowed_cidrs": ["x"] }),
        json!({ "expires_at": "2001-01-01T00:00:00Z" }),
        json!({ "daily_cap_cents": null }),
        json!({ "key": "VisaKey_live_x" }),
    ] {
        app.patch(&path, &session, bad).await.assert_error(400, "INVALID_REQUEST");
    }
    assert_eq!(app.get(&path, &session).await.body["label"], "renamed", "failed updates change nothing");
}

#[tokio::test]
async fn revoke_is_idempotent() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 0).await;
    let (id, _) = app.key(&session, json!({ "label": "app" })).await;
    let path = format!("/v1/api/keys/{id}");
    for _ in 0..2 {
        let reply = app.call(Method::DELETE, &path, Some(&session), None, &[]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, json!({ "success": true, "revoked": id }));
    }
    let key = app.get(&path, &session).await;
    assert_eq!(key.body["status"], "revoked");
    assert!(key.body["revoked_at"].is_string());
    app.post(&format!("{path}/rotate"), &session, json!({})).await.assert_error(409, "CONFLICT");
}

#[tokio::test]
async fn rotate_mints_a_new_secret_on_the_same_key() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 0).await;
    let (id, old) = app.key(&session, json!({ "label": "app" })).await;
    let path = format!("/v1/api/keys/{id}/rotate");

    // An empty body means grace 0.
    let reply = app.call(Method::POST, &path, Some(&session), None, &[]).await;
    let rotated = reply.assert_ok(200).clone();
    assert_key_object(&rotated);
    assert_eq!(rotated["id"], id);
    let new = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(rotated["secrets"].as_array().unwrap().len(), 2);
    assert_eq!(rotated["secrets"][0]["status"], "active");
    assert_eq!(rotated["secrets"][1]["status"], "revoked");

    app.post(&path, &session, json!({ "grace_period_seconds": 604801 })).await.assert_error(400, "INVALID_REQUEST");
    app.post(&path, &session, json!({ "grace_period_seconds": -1 })).await.assert_error(400, "INVALID_REQUEST");
    let graced = app.post(&path, &session, json!({ "grace_period_seconds": 600 })).await;
    let graced = graced.assert_ok(200);
    assert_eq!(graced["secrets"][0]["status"], "active");
    assert_eq!(graced["secrets"][1]["status"], "expiring");
    assert!(graced["secrets"][1]["expires_at"].is_string());
}

#[tokio::test]
async fn update_refuses_null_for_required_fields() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 0).await;
    let (id, _) = app.key(&session, json!({ "label": "app" })).await;
    for field in ["label", "tool_scope", "allowed_tools", "allowed_cidrs", "read_only", "daily_cap_cents"] {
        let reply = app.patch(&format!("/v1/api/keys/{id}"), &session, json!({ field: null })).await;
        assert!(reply.assert_error(400, "INVALID_REQUEST")["error"].as_str().unwrap().contains(field));
    }
}

#[tokio::test]
async fn leaked_keys_are_revoked_by_their_raw_value() {
    let app = TestApp::spawn().await;
    let (alice, alice_id, alice_key) = app.funded_key("alice").await;
    let (bob, bob_id, bob_key) = app.funded_key("bob").await;
    // Bob's session can revoke only Bob's keys; Alice's key counts as unmatched, untouched.
    let reply = app.post("/v1/api/keys/revoke-leaked", &bob, json!({ "keys": [bob_key, alice_key, "garbage"] })).await;
    let body = reply.assert_ok(200);
    assert_eq!(body["revoked"], json!([bob_id]));
    assert_eq!(body["unmatched"], 2);
    assert!(!body.to_string().contains(&bob_key[..20]), "keys are never echoed");
    app.execute(&bob_key, "echo", json!({})).await.assert_error(401, "AUTH_INVALID");
    app.execute(&alice_key, "echo", json!({})).await.assert_ok(200);
    // The operator (e.g. a secret-scanning integration) can revoke any account's key.
    let reply = app.post("/v1/api/keys/revoke-leaked", visa_e2e::OPERATOR_TOKEN, json!({ "keys": [alice_key] })).await;
    assert_eq!(reply.assert_ok(200)["revoked"], json!([alice_id]));
    app.execute(&alice_key, "echo", json!({})).await.assert_error(401, "AUTH_INVALID");
    assert_eq!(app.get(&format!("/v1/api/keys/{alice_id}"), &alice).await.body["status"], "revoked");
    // Again: nothing more to revoke, still a success.
    let again = app.post("/v1/api/keys/revoke-leaked", visa_e2e::OPERATOR_TOKEN, json!({ "keys": [alice_key] })).await;
    assert_eq!(again.assert_ok(200)["revoked"], json!([]));
    app.post("/v1/api/keys/revoke-leaked", &alice, json!({ "keys": [] })).await.assert_error(400, "INVALID_REQUEST");
    app.call(Method::POST, "/v1/api/keys/revoke-leaked", None, Some(json!({ "keys": ["x"] })), &[])
        .await
        .assert_error(401, "AUTH_REQUIRED");
}

/// A leaked admin key matches the scanner's pattern too: revoke-leaked revokes it (with the
/// operator token for any account, an owner's session for its own), and it stops working.
#[tokio::test]
async fn leaked_admin_keys_are_revoked_by_their_raw_value() {
    let app = TestApp::spawn().await;
    let owner = app.account("octocat", true, 100).await;
    let other = app.account("mallory", true, 100).await;
    let mint = |session: String| {
        let app = &app;
        async move {
            let minted = app.post("/v1/api/admin-keys", &session, json!({ "label": "ci" })).await;
            let minted = minted.assert_ok(201).clone();
            (minted["id"].as_i64().unwrap(), minted["key"].as_str().unwrap().to_owned())
        }
    };
    let (id, admin_key) = mint(owner.clone()).await;
    let (_, foreign) = mint(other.clone()).await;
    app.get("/v1/api/keys", &admin_key).await.assert_ok(200);
    // An owner's session revokes its own account's admin key, not another account's.
    let reply = app.post("/v1/api/keys/revoke-leaked", &owner, json!({ "keys": [admin_key, foreign] })).await;
    let body = reply.assert_ok(200);
    assert_eq!((body["revoked_admin_keys"].clone(), body["unmatched"].clone()), (json!([id]), json!(1)));
    assert!(!body.to_string().contains(&admin_key[..24]), "keys are never echoed");
    app.get("/v1/api/keys", &admin_key).await.assert_error(401, "AUTH_INVALID");
    app.get("/v1/api/keys", &foreign).await.assert_ok(200);
    // The operator's scanner integration revokes any account's.
    let reply = app.post("/v1/api/keys/revoke-leaked", visa_e2e::OPERATOR_TOKEN, json!({ "keys": [foreign] })).await;
    assert_eq!(reply.assert_ok(200)["revoked_admin_keys"].as_array().unwrap().len(), 1);
    app.get("/v1/api/keys", &foreign).await.assert_error(401, "AUTH_INVALID");
    assert_eq!(app.audit(&owner, "?action=admin_key.revoked").await.len(), 1);
}

#[tokio::test]
async fn admin_keys_automate_the_control_plane_but_never_execute() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 1_000).await;
    let reply = app.post("/v1/api/admin-keys", &session, json!({ "label": "ci-pipeline" })).await;
    let created = reply.assert_ok(201).clone();
    let admin = created["key"].as_str().unwrap().to_owned();
    assert!(admin.starts_with("VisaKey_admin_live_"), "{admin}");
    let admin_id = created["id"].as_i64().unwrap();

    // Wherever a session works, the admin key works: create and rotate a tool key, read balance.
    let (key_id, tool_key) = app.key(&admin, json!({ "label": "made-by-ci" })).await;
    let rotated = app.post(&format!("/v1/api/keys/{key_id}/rotate"), &admin, json!({})).await;
    let tool_key_rotated = rotated.assert_ok(200)["key"].as_str().unwrap().to_owned();
    assert_ne!(tool_key, tool_key_rotated);
    app.get("/v1/api/balance", &admin).await.assert_ok(200);
    app.get("/v1/api/executions", &admin).await.assert_ok(200);

    // It never executes tools, and cannot mint more admin keys.
    app.execute(&admin, "echo", json!({})).await.assert_error(403, "FORBIDDEN");
    app.post("/v1/api/admin-keys", &admin, json!({ "label": "more" })).await.assert_error(403, "FORBIDDEN");

    // Listed without the secret; revoked, it stops working at once.
    let list = app.get("/v1/api/admin-keys", &session).await;
    assert_eq!(list.assert_ok(200)["admin_keys"][0]["id"], admin_id);
    assert!(!list.body.to_string().contains(&admin));
    app.call(Method::DELETE, &format!("/v1/api/admin-keys/{admin_id}"), Some(&session), None, &[]).await.assert_ok(200);
    app.get("/v1/api/keys", &admin).await.assert_error(401, "AUTH_INVALID");
    // A tool key is not a session credential.
    app.get("/v1/api/keys", &tool_key_rotated).await.assert_error(401, "AUTH_INVALID");
    let other = app.account("mallory", true, 0).await;
    app.call(Method::DELETE, &format!("/v1/api/admin-keys/{admin_id}"), Some(&other), None, &[])
        .await
        .assert_error(404, "KEY_NOT_FOUND");
}

#[tokio::test]
async fn an_admin_key_of_the_other_environment_is_refused() {
    let production = TestApp::spawn().await;
    let preview = TestApp::spawn_preview().await;
    let session = preview.account("octocat", true, 0).await;
    let created = preview.post("/v1/api/admin-keys", &session, json!({ "label": "ci" })).await;
    let admin = created.body["key"].as_str().unwrap().to_owned();
    assert!(admin.starts_with("VisaKey_admin_test_"));
    production.get("/v1/api/keys", &admin).await.assert_error(401, "KEY_ENVIRONMENT_MISMATCH");
    preview.get("/v1/api/keys", &admin).await.assert_ok(200);
}

/// Instants at the edge of the calendar are answered, never a dropped connection: an offset
/// pushing `expires_at` into year 10000 is a 400 naming the field (it used to be stored and read
/// back as 1970), and the usage query that used to panic the handler answers.
#[tokio::test]
async fn instants_at_the_edge_of_the_calendar_are_refused_or_answered_never_a_panic() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 100).await;
    let reply =
        app.post("/v1/api/keys", &session, json!({ "label": "edge", "expires_at": "9999-12-31T23:59:59-23:59" })).await;
    let message = reply.assert_error(400, "INVALID_REQUEST")["error"].as_str().unwrap().to_owned();
    assert!(message.contains("expires_at"), "{message}");
    let (id, _) = app.key(&session, json!({ "label": "edge", "expires_at": "9999-12-31T00:00:00Z" })).await;
    let view = app.get(&format!("/v1/api/keys/{id}"), &session).await;
    assert_eq!(view.body["expires_at"], "9999-12-31T00:00:00Z", "stored and read back as sent");
    let path = format!("/v1/api/keys/{id}/usage?since=9999-12-30T23:59:59-23:59&until=9999-12-31T23:59:59-23:59");
    let usage = app.get(&path, &session).await;
    assert!(matches!(usage.status.as_u16(), 200 | 400), "{}: {}", usage.status, usage.body);
}

/// `GET /v1/api/key`: a key asks what it may still spend, and the answer is exactly what the
/// next call's hold may take, whichever limit bounds it; the balance itself is not shown.
#[tokio::test]
async fn a_key_asks_its_own_budget_and_it_is_what_the_next_call_may_take() {
    let app = TestApp::spawn().await;
    let session = app.account("asker", true, 1_000).await;
    let budget = |key: String| {
        let app = &app;
        async move { app.get("/v1/api/key", &key).await.assert_ok(200).clone() }
    };
    // The daily cap bounds it: 10 cents, 3 spent.
    let (daily_id, daily) =
        app.key(&session, json!({ "label": "daily", "daily_cap_cents": 10, "allowed_tools": ["echo"] })).await;
    for _ in 0..3 {
        app.execute(&daily, "echo", json!({})).await.assert_ok(200);
    }
    let b = budget(daily.clone()).await;
    assert_eq!((b["object"].as_str(), b["key_id"].as_i64()), (Some("key_budget"), Some(daily_id)), "{b}");
    assert_eq!((b["label"].as_str(), b["allowed_tools"].clone()), (Some("daily"), json!(["echo"])));
    assert_eq!((b["spent_today_cents"].as_i64(), b["spent_total_micros"].as_str()), (Some(3), Some("30000")));
    assert_eq!((b["spendable_micros"].as_str(), b["spendable_cents"].as_i64()), (Some("70000"), Some(7)), "{b}");
    assert_eq!(b["limited_by"], "key_daily_cap");
    assert!(b["resets_at"].as_str().unwrap().ends_with("T00:00:00Z"), "{b}");
    assert!(b.get("balance_micros").is_none() && !b.to_string().contains("1000000"), "no balance shown: {b}");
    // Spent to exactly what it said: the next call is refused by that limit, and it says zero.
    for _ in 0..7 {
        app.execute(&daily, "echo", json!({})).await.assert_ok(200);
    }
    assert_eq!(
        app.execute(&daily, "echo", json!({})).await.assert_error(429, "RATE_LIMITED")["limit"],
        "key_daily_cap"
    );
    assert_eq!(budget(daily).await["spendable_micros"], "0");

    // The total cap bounds it, and does not reset.
    let (_, total) = app.key(&session, json!({ "label": "total", "daily_cap_cents": 100, "total_cap_cents": 5 })).await;
    for _ in 0..3 {
        app.execute(&total, "echo", json!({})).await.assert_ok(200);
    }
    let b = budget(total).await;
    assert_eq!(
        (b["spendable_cents"].as_i64(), b["limited_by"].as_str(), b["resets_at"].clone()),
        (Some(2), Some("key_total_cap"), json!(null))
    );

    // The account's balance bounds it: 4 cents left on an account of its own.
    let poor = app.account("poor", true, 4).await;
    let (_, key) = app.key(&poor, json!({ "label": "big", "daily_cap_cents": 1_000 })).await;
    let b = budget(key.clone()).await;
    assert_eq!((b["spendable_cents"].as_i64(), b["limited_by"].as_str()), (Some(4), Some("account_balance")), "{b}");
    for _ in 0..4 {
        app.execute(&key, "echo", json!({})).await.assert_ok(200);
    }
    assert_eq!(
        app.execute(&key, "echo", json!({})).await.assert_error(429, "RATE_LIMITED")["limit"],
        "account_balance"
    );

    // A session is told where to look instead; no credential is 401.
    let refused = app.get("/v1/api/key", &session).await;
    assert!(refused.assert_error(403, "FORBIDDEN")["error"].as_str().unwrap().contains("/v1/api/keys/{id}"));
    app.call(Method::GET, "/v1/api/key", None, None, &[]).await.assert_error(401, "AUTH_REQUIRED");
}

/// On a preview server no account money moves: only the key's caps bound it.
#[tokio::test]
async fn a_preview_keys_budget_is_its_caps_alone() {
    let app = TestApp::spawn_preview().await;
    let session = app.account("tester", true, 0).await;
    let (_, key) = app.key(&session, json!({ "label": "sandbox", "daily_cap_cents": 10 })).await;
    let b = app.get("/v1/api/key", &key).await.assert_ok(200).clone();
    assert_eq!(
        (b["spendable_cents"].as_i64(), b["limited_by"].as_str(), b["environment"].as_str()),
        (Some(10), Some("key_daily_cap"), Some("preview")),
        "{b}"
    );
}

//! The audit log over HTTP: every control-plane change leaves exactly one entry with its
//! actor, source IP, user agent and the changed fields; a failed change leaves none; the log
//! filters and pages like keys; nothing can change or delete an entry.

use reqwest::Method;
use serde_json::{Value, json};
use visa_e2e::{OPERATOR_TOKEN, TestApp, rfc3339_in};

const AGENT: &str = "audit-test/1.0";

/// A call as a browser or CLI would make it, with a user agent.
async fn send(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
    let reply = app.call(method, path, Some(token), body, &[("User-Agent", AGENT)]).await;
    assert!(reply.status.is_success(), "{path}: {}", reply.body);
    reply.body
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries.iter().rev().map(|e| e["action"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn every_change_is_audited_once_with_actor_origin_and_changed_fields() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", false, 0).await;

    let key = send(&app, Method::POST, "/v1/api/keys", &owner, Some(json!({ "label": "ci" }))).await;
    let id = key["id"].as_i64().unwrap();
    let key_path = format!("/v1/api/keys/{id}");
    send(&app, Method::PATCH, &key_path, &owner, Some(json!({ "label": "ci-2", "daily_cap_cents": 500 }))).await;
    let rotated =
        send(&app, Method::POST, &format!("{key_path}/rotate"), &owner, Some(json!({ "grace_period_seconds": 60 })))
            .await;
    let old_secret = rotated["secrets"][1]["id"].as_i64().unwrap();
    send(&app, Method::POST, &format!("{key_path}/secrets/{old_secret}/revoke"), &owner, None).await;
    send(&app, Method::DELETE, &key_path, &owner, None).await;
    send(&app, Method::DELETE, &key_path, &owner, None).await; // a repeat changes nothing

    let admin_key = send(&app, Method::POST, "/v1/api/admin-keys", &owner, Some(json!({ "label": "deploy" }))).await;
    let raw_admin_key = admin_key["key"].as_str().unwrap();
    let by_admin_key = send(&app, Method::POST, "/v1/api/keys", raw_admin_key, Some(json!({ "label": "bot" }))).await;
    send(&app, Method::DELETE, &format!("/v1/api/admin-keys/{}", admin_key["id"]), &owner, None).await;

    let (member_id, _) = app.member(&owner, "vic", "viewer").await;
    send(&app, Method::PATCH, &format!("/v1/api/members/{member_id}"), &owner, Some(json!({ "role": "developer" })))
        .await;
    send(&app, Method::DELETE, &format!("/v1/api/members/{member_id}"), &owner, None).await;

    send(&app, Method::PATCH, "/v1/operator/accounts/acme", OPERATOR_TOKEN, Some(json!({ "approved": true }))).await;
    let credit = json!({ "amount_cents": 250 });
    send(&app, Method::POST, "/v1/operator/accounts/acme/credits", OPERATOR_TOKEN, Some(credit)).await;
    let leaked = app.key(&owner, json!({ "label": "leaky" })).await;
    let body = json!({ "keys": [leaked.1] });
    send(&app, Method::POST, "/v1/api/keys/revoke-leaked", OPERATOR_TOKEN, Some(body)).await;

    let entries = app.audit(&owner, "?limit=100").await;
    assert_eq!(
        actions(&entries),
        [
            "account.created",
            "session.created",
            "key.created",
            "key.updated",
            "key.rotated",
            "key.secret_revoked",
            "key.revoked",
            "admin_key.created",
            "key.created",
            "admin_key.revoked",
            "member.invited",
            "member.joined",
            "session.created",
            "member.role_changed",
            "member.removed",
            "account.approval_changed",
            "account.credited",
            "key.created",
            "key.revoked_leaked",
        ]
    );
    let by_action = |action: &str| entries.iter().find(|e| e["action"] == action).unwrap().clone();

    // Only the changed fields, with before and after.
    let updated = by_action("key.updated");
    assert_eq!(
        updated["changes"],
        json!({
            "label": { "before": "ci", "after": "ci-2" },
            "daily_cap_cents": { "before": 1000, "after": 500 },
        })
    );
    assert_eq!(updated["target"], format!("key:{id}"));
    assert_eq!(updated["actor"], json!({ "type": "member", "id": updated["actor"]["id"], "name": "acme" }));
    assert_eq!(updated["ip"], "127.0.0.1");
    assert_eq!(updated["user_agent"], AGENT);
    assert!(updated["created_at"].as_str().unwrap().ends_with('Z'));

    let revoked = by_action("key.revoked");
    assert!(revoked["changes"]["revoked_at"]["before"].is_null());
    assert!(revoked["changes"]["revoked_at"]["after"].is_string());
    let rotated = by_action("key.rotated");
    assert_eq!(rotated["changes"]["secrets"]["after"].as_array().unwrap().len(), 2);
    // Audited secrets are prefixes, never raw keys.
    let first_raw_key = key["key"].as_str().unwrap();
    assert!(!entries.iter().any(|e| e.to_string().contains(first_raw_key)));

    // The admin key is the actor of what it did.
    let bot_entry = entries.iter().find(|e| e["target"] == format!("key:{}", by_admin_key["id"])).unwrap();
    assert_eq!(bot_entry["actor"]["type"], "admin_key");
    assert_eq!(bot_entry["actor"]["name"], "deploy");

    let role = by_action("member.role_changed");
    assert_eq!(role["changes"], json!({ "role": { "before": "viewer", "after": "developer" } }));
    assert_eq!(by_action("member.joined")["actor"]["name"], "vic");

    let credited = by_action("account.credited");
    assert_eq!(credited["actor"], json!({ "type": "operator", "id": null, "name": null }));
    assert_eq!(credited["changes"], json!({ "balance_micros": { "before": 0, "after": 2_500_000 } }));
    assert_eq!(by_action("account.approval_changed")["changes"]["approved"], json!({ "before": false, "after": true }));
    assert_eq!(by_action("key.revoked_leaked")["target"], format!("key:{}", leaked.0));
}

#[tokio::test]
async fn a_change_that_fails_leaves_no_entry() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", true, 0).await;
    let other = app.account("globex", true, 0).await;
    let (id, _) = app.key(&owner, json!({ "label": "k" })).await;
    let (foreign, _) = app.key(&other, json!({ "label": "theirs" })).await;
    let before = app.audit(&owner, "").await.len();

    let key = format!("/v1/api/keys/{id}");
    app.patch(&key, &owner, json!({ "daily_cap_cents": "lots" })).await.assert_error(400, "INVALID_REQUEST");
    app.patch(&key, &owner, json!({ "allowed_cidrs": ["not-a-cidr"] })).await.assert_error(400, "INVALID_REQUEST");
    app.patch(&format!("/v1/api/keys/{foreign}"), &owner, json!({ "label": "mine" }))
        .await
        .assert_error(404, "KEY_NOT_FOUND");
    app.delete(&key, &owner).await.assert_ok(200);
    let after_revoke = app.audit(&owner, "").await.len();
    assert_eq!(after_revoke, before + 1);
    // Refused inside the store's transaction: the rollback takes any entry with it.
    app.post(&format!("{key}/rotate"), &owner, json!({})).await.assert_error(409, "CONFLICT");
    let members = app.get("/v1/api/members", &owner).await;
    let owner_id = members.assert_ok(200)["members"][0]["id"].as_i64().unwrap();
    app.delete(&format!("/v1/api/members/{owner_id}"), &owner).await.assert_error(409, "LAST_OWNER");
    assert_eq!(app.audit(&owner, "").await.len(), after_revoke);
    // Another account's log is its own.
    assert!(app.audit(&other, "").await.iter().all(|e| e["target"] != format!("key:{id}")));
}

#[tokio::test]
async fn the_log_filters_and_pages_like_keys() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", true, 0).await;
    let mut ids = vec![];
    for n in 0..5 {
        ids.push(app.key(&owner, json!({ "label": format!("k{n}") })).await.0);
    }
    app.patch(&format!("/v1/api/keys/{}", ids[2]), &owner, json!({ "read_only": true })).await.assert_ok(200);

    assert_eq!(app.audit(&owner, "?action=key.created").await.len(), 5);
    let on_key = app.audit(&owner, &format!("?target=key:{}", ids[2])).await;
    assert_eq!(actions(&on_key), ["key.created", "key.updated"]);
    let both = app.audit(&owner, &format!("?target=key:{}&action=key.updated", ids[2])).await;
    assert_eq!(both.len(), 1);
    assert_eq!(app.audit(&owner, &format!("?since={}", rfc3339_in(-60).replace('+', "%2B"))).await.len(), 8);
    assert!(app.audit(&owner, &format!("?since={}", rfc3339_in(60))).await.is_empty());
    app.get("/v1/api/audit?since=yesterday", &owner).await.assert_error(400, "INVALID_REQUEST");
    app.get("/v1/api/audit?limit=0", &owner).await.assert_error(400, "INVALID_REQUEST");

    // Walk forward two at a time, then back.
    let pages = app.walk_pages("/v1/api/audit?limit=2", &owner).await;
    let seen: Vec<i64> =
        pages.iter().flat_map(|p| p["entries"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap())).collect();
    let last_page = pages.last().unwrap();
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, no repeats");
    assert_eq!(seen.len(), 8, "the account, its first session, five keys, one update");
    let back = last_page["previous_cursor"].as_i64().unwrap();
    let previous = app.get(&format!("/v1/api/audit?limit=2&ending_before={back}"), &owner).await;
    let previous: Vec<i64> =
        previous.assert_ok(200)["entries"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
    let penultimate: Vec<i64> =
        pages[pages.len() - 2]["entries"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(previous, penultimate, "the page before the last");
}

#[tokio::test]
async fn no_one_can_change_or_delete_an_entry() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", true, 0).await;
    app.key(&owner, json!({ "label": "k" })).await;
    app.call(Method::DELETE, "/v1/api/audit", Some(&owner), None, &[]).await.assert_error(405, "METHOD_NOT_ALLOWED");
    app.call(Method::PATCH, "/v1/api/audit", Some(&owner), Some(json!({})), &[])
        .await
        .assert_error(405, "METHOD_NOT_ALLOWED");

    // Not even with the database file in hand: the table's triggers refuse.
    for sql in ["UPDATE audit_log SET action = 'nothing'", "DELETE FROM audit_log"] {
        let err = app.sql_refusal(sql);
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(app.audit(&owner, "").await.len(), 3, "account, first session, key");
}

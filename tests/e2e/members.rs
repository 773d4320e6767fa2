//! Members and roles over HTTP: the role × route permission table (every control-plane route
//! against owner, admin, developer, viewer and an admin key), the last-owner rule, invitations,
//! and that role changes and removals take effect on the very next request.

use reqwest::Method;
use serde_json::{Value, json};
use visa_e2e::{OPERATOR_TOKEN, TestApp};

/// The least role a route needs. An admin key acts as an admin, except that it may never mint
/// admin keys.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
enum Least {
    Owner,
    Admin,
    Developer,
    Viewer,
}

fn rank(principal: &str) -> Least {
    match principal {
        "owner" => Least::Owner,
        "admin" | "admin_key" => Least::Admin,
        "developer" => Least::Developer,
        _ => Least::Viewer,
    }
}

#[derive(Clone, Copy, Debug)]
enum Route {
    ListKeys,
    GetKey,
    KeyUsage,
    Balance,
    Executions,
    ListMembers,
    Audit,
    ListAdminKeys,
    CreateKey,
    UpdateKey,
    RotateKey,
    RevokeSecret,
    RevokeKey,
    InviteDeveloper,
    ChangeRole,
    RemoveMember,
    CreateAdminKey,
    RevokeAdminKey,
    InviteOwner,
    RevokeLeaked,
}

const TABLE: [(Route, Least, bool); 20] = [
    // (route, least role, whether it changes something and so must be audited)
    (Route::ListKeys, Least::Viewer, false),
    (Route::GetKey, Least::Viewer, false),
    (Route::KeyUsage, Least::Viewer, false),
    (Route::Balance, Least::Viewer, false),
    (Route::Executions, Least::Viewer, false),
    (Route::ListMembers, Least::Viewer, false),
    (Route::Audit, Least::Viewer, false),
    (Route::ListAdminKeys, Least::Viewer, false),
    (Route::CreateKey, Least::Developer, true),
    (Route::UpdateKey, Least::Developer, true),
    (Route::RotateKey, Least::Developer, true),
    (Route::RevokeSecret, Least::Developer, true),
    (Route::RevokeKey, Least::Developer, true),
    (Route::InviteDeveloper, Least::Admin, true),
    (Route::ChangeRole, Least::Admin, true),
    (Route::RemoveMember, Least::Admin, true),
    (Route::CreateAdminKey, Least::Admin, true),
    (Route::RevokeAdminKey, Least::Admin, true),
    (Route::InviteOwner, Least::Owner, true),
    (Route::RevokeLeaked, Least::Owner, true),
];

struct Account {
    owner: String,
    tokens: Vec<(&'static str, String)>,
    counter: std::cell::Cell<u32>,
}

impl Account {
    async fn new(app: &TestApp) -> Self {
        let owner = app.account("acme", true, 1_000).await;
        let mut tokens = vec![("owner", owner.clone())];
        for role in ["admin", "developer", "viewer"] {
            tokens.push((role, app.member(&owner, &format!("the-{role}"), role).await.1));
        }
        let admin_key = app.post("/v1/api/admin-keys", &owner, json!({ "label": "ci" })).await;
        tokens.push(("admin_key", admin_key.assert_ok(201)["key"].as_str().unwrap().to_owned()));
        Self { owner, tokens, counter: Default::default() }
    }

    fn unique(&self, prefix: &str) -> String {
        self.counter.set(self.counter.get() + 1);
        format!("{prefix}-{}", self.counter.get())
    }

    /// Builds a fresh request for `route` (creating whatever it acts on, as the owner), so an
    /// allowed call always has something valid to change.
    async fn request(&self, app: &TestApp, route: Route) -> (Method, String, Option<Value>) {
        let owner = &self.owner;
        let fresh_key = || app.key(owner, json!({ "label": "target" }));
        match route {
            Route::ListKeys => (Method::GET, "/v1/api/keys".into(), None),
            Route::GetKey => (Method::GET, format!("/v1/api/keys/{}", fresh_key().await.0), None),
            Route::KeyUsage => (Method::GET, format!("/v1/api/keys/{}/usage", fresh_key().await.0), None),
            Route::Balance => (Method::GET, "/v1/api/balance".into(), None),
            Route::Executions => (Method::GET, "/v1/api/executions".into(), None),
            Route::ListMembers => (Method::GET, "/v1/api/members".into(), None),
            Route::Audit => (Method::GET, "/v1/api/audit".into(), None),
            Route::ListAdminKeys => (Method::GET, "/v1/api/admin-keys".into(), None),
            Route::CreateKey => (Method::POST, "/v1/api/keys".into(), Some(json!({ "label": "new" }))),
            Route::UpdateKey => {
                let id = fresh_key().await.0;
                (Method::PATCH, format!("/v1/api/keys/{id}"), Some(json!({ "daily_cap_cents": 5 })))
            }
            Route::RotateKey => (Method::POST, format!("/v1/api/keys/{}/rotate", fresh_key().await.0), None),
            Route::RevokeSecret => {
                let id = fresh_key().await.0;
                let rotate = format!("/v1/api/keys/{id}/rotate");
                let rotated = app.post(&rotate, owner, json!({ "grace_period_seconds": 60 })).await;
                let old = rotated.assert_ok(200)["secrets"][1]["id"].as_i64().unwrap();
                (Method::POST, format!("/v1/api/keys/{id}/secrets/{old}/revoke"), None)
            }
            Route::RevokeKey => (Method::DELETE, format!("/v1/api/keys/{}", fresh_key().await.0), None),
            Route::InviteDeveloper => (
                Method::POST,
                "/v1/api/members".into(),
                Some(json!({ "login": self.unique("dev"), "role": "developer" })),
            ),
            Route::ChangeRole => {
                let id = app.member(owner, &self.unique("viewer"), "viewer").await.0;
                (Method::PATCH, format!("/v1/api/members/{id}"), Some(json!({ "role": "developer" })))
            }
            Route::RemoveMember => {
                let id = app.member(owner, &self.unique("leaver"), "viewer").await.0;
                (Method::DELETE, format!("/v1/api/members/{id}"), None)
            }
            Route::CreateAdminKey => (Method::POST, "/v1/api/admin-keys".into(), Some(json!({ "label": "deploy" }))),
            Route::RevokeAdminKey => {
                let created = app.post("/v1/api/admin-keys", owner, json!({ "label": "old" })).await;
                (Method::DELETE, format!("/v1/api/admin-keys/{}", created.assert_ok(201)["id"]), None)
            }
            Route::InviteOwner => {
                (Method::POST, "/v1/api/members".into(), Some(json!({ "login": self.unique("boss"), "role": "owner" })))
            }
            Route::RevokeLeaked => {
                let raw = fresh_key().await.1;
                (Method::POST, "/v1/api/keys/revoke-leaked".into(), Some(json!({ "keys": [raw] })))
            }
        }
    }

    async fn audit_count(&self, app: &TestApp) -> usize {
        let pages = app.walk_pages("/v1/api/audit?limit=100", &self.owner).await;
        pages.iter().map(|p| p["entries"].as_array().unwrap().len()).sum()
    }
}

#[tokio::test]
async fn every_route_admits_exactly_the_roles_of_the_permission_table() {
    let app = TestApp::spawn().await;
    let account = Account::new(&app).await;
    for (route, least, changes) in TABLE {
        for (principal, token) in &account.tokens {
            let (method, path, body) = account.request(&app, route).await;
            let audited_before = account.audit_count(&app).await;
            let reply = app.call(method.clone(), &path, Some(token), body, &[]).await;
            // An admin key mints no credential that would outlive it: no admin key, no
            // invitation, no role change.
            let minting = matches!(
                route,
                Route::CreateAdminKey | Route::InviteDeveloper | Route::InviteOwner | Route::ChangeRole
            );
            let allowed = rank(principal) <= least && !(minting && *principal == "admin_key");
            let context = format!("{principal} → {method} {path}: {}", reply.body);
            if allowed {
                assert!(reply.status.is_success(), "{context}");
            } else {
                reply.assert_error(403, "FORBIDDEN");
            }
            let audited = account.audit_count(&app).await - audited_before;
            let expected = usize::from(allowed && changes);
            assert_eq!(audited, expected, "audit entries written by {context}");
        }
    }
}

#[tokio::test]
async fn the_last_owner_can_be_neither_demoted_nor_removed() {
    let app = TestApp::spawn().await;
    let owner = app.account("solo", true, 0).await;
    let members = app.get("/v1/api/members", &owner).await;
    let owner_id = members.assert_ok(200)["members"][0]["id"].as_i64().unwrap();
    let me = format!("/v1/api/members/{owner_id}");

    app.patch(&me, &owner, json!({ "role": "admin" })).await.assert_error(409, "LAST_OWNER");
    app.delete(&me, &owner).await.assert_error(409, "LAST_OWNER");
    // An invitation to the owner role is not an owner until accepted (it may never be).
    app.post("/v1/api/members", &owner, json!({ "login": "invited", "role": "owner" })).await.assert_ok(201);
    app.patch(&me, &owner, json!({ "role": "developer" })).await.assert_error(409, "LAST_OWNER");

    // With a second owner, the first may step down; then the second is the last one.
    let (second_id, second) = app.member(&owner, "second", "owner").await;
    let demoted = app.patch(&me, &owner, json!({ "role": "admin" })).await;
    assert_eq!(demoted.assert_ok(200)["member"]["role"], "admin");
    let second_path = format!("/v1/api/members/{second_id}");
    app.delete(&second_path, &second).await.assert_error(409, "LAST_OWNER");
    // An admin cannot touch an owner, nor make anyone an owner.
    app.patch(&second_path, &owner, json!({ "role": "viewer" })).await.assert_error(403, "FORBIDDEN");
    app.patch(&me, &owner, json!({ "role": "owner" })).await.assert_error(403, "FORBIDDEN");
    // Refusals change nothing and audit nothing.
    assert!(app.audit(&second, "?action=member.removed").await.is_empty());
    assert_eq!(app.audit(&second, "?action=member.role_changed").await.len(), 1);
}

#[tokio::test]
async fn a_role_change_or_removal_applies_to_the_next_request() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", true, 0).await;
    let (dev_id, dev) = app.member(&owner, "dana", "developer").await;
    app.post("/v1/api/keys", &dev, json!({ "label": "mine" })).await.assert_ok(201);

    app.patch(&format!("/v1/api/members/{dev_id}"), &owner, json!({ "role": "viewer" })).await.assert_ok(200);
    app.post("/v1/api/keys", &dev, json!({ "label": "again" })).await.assert_error(403, "FORBIDDEN");
    app.get("/v1/api/keys", &dev).await.assert_ok(200);

    app.delete(&format!("/v1/api/members/{dev_id}"), &owner).await.assert_ok(200);
    app.get("/v1/api/keys", &dev).await.assert_error(401, "AUTH_INVALID");
    let sign_in = json!({ "login": "dana", "password": "dana-password-1" });
    let reply = app.call(Method::POST, "/v1/api/sessions", None, Some(sign_in), &[]).await;
    reply.assert_error(401, "AUTH_INVALID");
}

#[tokio::test]
async fn invitations_work_once_and_logins_are_unique() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", true, 0).await;
    let invited = app.post("/v1/api/members", &owner, json!({ "login": "ivy", "role": "viewer" })).await;
    let invited = invited.assert_ok(201);
    assert_eq!(invited["member"]["status"], "invited");
    let token = invited["invite_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("visa_invite_"), "{token}");

    // Before accepting, the invitee has no password to sign in with.
    let sign_in = json!({ "login": "ivy", "password": "ivy-password-1" });
    let reply = app.call(Method::POST, "/v1/api/sessions", None, Some(sign_in.clone()), &[]).await;
    reply.assert_error(401, "AUTH_INVALID");

    let accept = json!({ "invite_token": token, "password": "ivy-password-1" });
    let session = app.call(Method::POST, "/v1/api/members/accept", None, Some(accept.clone()), &[]).await;
    let session = session.assert_ok(201)["session_token"].as_str().unwrap().to_owned();
    app.get("/v1/api/balance", &session).await.assert_ok(200);
    let again = app.call(Method::POST, "/v1/api/members/accept", None, Some(accept), &[]).await;
    again.assert_error(401, "AUTH_INVALID");
    app.call(Method::POST, "/v1/api/sessions", None, Some(sign_in), &[]).await.assert_ok(201);

    let members = app.get("/v1/api/members", &owner).await;
    let statuses: Vec<_> =
        members.assert_ok(200)["members"].as_array().unwrap().iter().map(|m| m["status"].clone()).collect();
    assert_eq!(statuses, [json!("active"), json!("active")]);

    // A login is invited once per account; server-wide it is unique among members who signed
    // in. Inviting another account's login tells the inviter nothing: the invitation simply
    // cannot be accepted (its holder is told why).
    app.post("/v1/api/members", &owner, json!({ "login": "ivy", "role": "viewer" }))
        .await
        .assert_error(409, "MEMBER_EXISTS");
    let other = app.account("globex", true, 0).await;
    let probe = app.post("/v1/api/members", &other, json!({ "login": "acme", "role": "admin" })).await;
    let probe_token = probe.assert_ok(201)["invite_token"].as_str().unwrap().to_owned();
    let accept = json!({ "invite_token": probe_token, "password": "probe-password-1" });
    let taken_login = app.call(Method::POST, "/v1/api/members/accept", None, Some(accept), &[]).await;
    taken_login.assert_error(409, "MEMBER_EXISTS");
    let taken = app.post("/v1/operator/accounts", OPERATOR_TOKEN, json!({ "login": "ivy" })).await;
    taken.assert_error(409, "ACCOUNT_EXISTS");
    app.post("/v1/api/members", &owner, json!({ "login": "Bad Login", "role": "viewer" }))
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.post("/v1/api/members", &owner, json!({ "login": "ok", "role": "root" }))
        .await
        .assert_error(400, "INVALID_REQUEST");
    // Another account's member is not found, never forbidden.
    let ivy_id = invited["member"]["id"].as_i64().unwrap();
    app.delete(&format!("/v1/api/members/{ivy_id}"), &other).await.assert_error(404, "MEMBER_NOT_FOUND");
}

/// A leaked admin key cannot multiply: it can neither invite a member (whose session, or as an
/// admin whose new admin keys, would survive the key's revocation) nor promote one.
#[tokio::test]
async fn a_leaked_admin_key_cannot_mint_credentials_that_outlive_it() {
    let app = TestApp::spawn().await;
    let owner = app.account("octocat", true, 100).await;
    let admin_key = app.post("/v1/api/admin-keys", &owner, json!({ "label": "ci" })).await;
    let admin_key = admin_key.assert_ok(201)["key"].as_str().unwrap().to_owned();
    let (dev, _) = app.member(&owner, "dana", "developer").await;
    for role in ["admin", "developer", "viewer", "owner"] {
        let invite =
            app.post("/v1/api/members", &admin_key, json!({ "login": format!("x-{role}"), "role": role })).await;
        let message = invite.assert_error(403, "FORBIDDEN")["error"].as_str().unwrap().to_owned();
        assert!(!invite.body.to_string().contains("invite_token"), "no token handed out");
        assert!(message.contains("admin keys"), "{message}");
    }
    let promote = app.patch(&format!("/v1/api/members/{dev}"), &admin_key, json!({ "role": "admin" })).await;
    promote.assert_error(403, "FORBIDDEN");
    let members = app.get("/v1/api/members", &owner).await;
    assert_eq!(members.body["members"].as_array().unwrap().len(), 2, "nobody was added");
}

//! Operator bootstrap and sign-in, over HTTP.

use reqwest::Method;
use serde_json::json;
use visa_e2e::{OPERATOR_TOKEN, TestApp};

#[tokio::test]
async fn healthz_answers_ok() {
    let app = TestApp::spawn().await;
    let reply = app.call(Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, json!({ "ok": true }));
}

#[tokio::test]
async fn operator_creates_an_account_with_credit_and_a_session() {
    let app = TestApp::spawn().await;
    let body = json!({ "login": "octocat", "approved": true, "credit_cents": 10000, "password": "correct horse" });
    let reply = app.post("/v1/operator/accounts", OPERATOR_TOKEN, body).await;
    let body = reply.assert_ok(201);
    assert_eq!(body["account"]["login"], "octocat");
    assert_eq!(body["account"]["approved"], true);
    assert_eq!(body["account"]["balance_cents"], 10000);
    assert_eq!(body["account"]["balance_micros"], "100000000");
    let session = body["session_token"].as_str().unwrap();
    // The session works on the control plane.
    app.get("/v1/api/keys", session).await.assert_ok(200);
}

#[tokio::test]
async fn account_defaults_duplicates_and_validation() {
    let app = TestApp::spawn().await;
    let reply = app.post("/v1/operator/accounts", OPERATOR_TOKEN, json!({ "login": "newbie" })).await;
    let body = reply.assert_ok(201);
    assert_eq!(body["account"]["approved"], false);
    assert_eq!(body["account"]["balance_cents"], 0);

    app.post("/v1/operator/accounts", OPERATOR_TOKEN, json!({ "login": "newbie" }))
        .await
        .assert_error(409, "ACCOUNT_EXISTS");
    app.post("/v1/operator/accounts", OPERATOR_TOKEN, json!({ "login": "Bad Login" }))
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.post("/v1/operator/accounts", OPERATOR_TOKEN, json!({ "login": "neg", "credit_cents": -1 }))
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.post("/v1/operator/accounts", OPERATOR_TOKEN, json!({ "login": "pw", "password": "short" }))
        .await
        .assert_error(400, "INVALID_REQUEST");
}

#[tokio::test]
async fn operator_routes_need_the_operator_token() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 0).await;
    let body = json!({ "login": "mallory" });
    app.call(Method::POST, "/v1/operator/accounts", None, Some(body.clone()), &[])
        .await
        .assert_error(401, "AUTH_REQUIRED");
    app.post("/v1/operator/accounts", "wrong-token", body.clone()).await.assert_error(401, "AUTH_INVALID");
    // A session token is not the operator token.
    app.post("/v1/operator/accounts", &session, body).await.assert_error(401, "AUTH_INVALID");
}

#[tokio::test]
async fn approve_and_credit() {
    let app = TestApp::spawn().await;
    app.account("octocat", false, 0).await;
    let reply = app.patch("/v1/operator/accounts/octocat", OPERATOR_TOKEN, json!({ "approved": true })).await;
    assert_eq!(reply.assert_ok(200)["account"]["approved"], true);
    let reply = app.post("/v1/operator/accounts/octocat/credits", OPERATOR_TOKEN, json!({ "amount_cents": 250 })).await;
    assert_eq!(reply.assert_ok(200)["account"]["balance_cents"], 250);
    let reply = app.post("/v1/operator/accounts/octocat/credits", OPERATOR_TOKEN, json!({ "amount_cents": 250 })).await;
    assert_eq!(reply.assert_ok(200)["account"]["balance_micros"], "5000000");
    app.post("/v1/operator/accounts/octocat/credits", OPERATOR_TOKEN, json!({ "amount_cents": 0 }))
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.post("/v1/operator/accounts/ghost/credits", OPERATOR_TOKEN, json!({ "amount_cents": 1 }))
        .await
        .assert_error(404, "ACCOUNT_NOT_FOUND");
    app.patch("/v1/operator/accounts/ghost", OPERATOR_TOKEN, json!({ "approved": true }))
        .await
        .assert_error(404, "ACCOUNT_NOT_FOUND");
}

#[tokio::test]
async fn sign_in_with_password() {
    let app = TestApp::spawn().await;
    let body = json!({ "login": "octocat", "password": "correct horse" });
    app.post("/v1/operator/accounts", OPERATOR_TOKEN, body).await.assert_ok(201);

    let good = json!({ "login": "octocat", "password": "correct horse" });
    let reply = app.call(Method::POST, "/v1/api/sessions", None, Some(good), &[]).await;
    let token = reply.assert_ok(201)["session_token"].as_str().unwrap().to_owned();
    app.get("/v1/api/keys", &token).await.assert_ok(200);

    let wrong = json!({ "login": "octocat", "password": "wrong horse" });
    app.call(Method::POST, "/v1/api/sessions", None, Some(wrong), &[]).await.assert_error(401, "AUTH_INVALID");
    let ghost = json!({ "login": "ghost", "password": "whatever1" });
    app.call(Method::POST, "/v1/api/sessions", None, Some(ghost), &[]).await.assert_error(401, "AUTH_INVALID");
}

#[tokio::test]
async fn control_plane_needs_a_session() {
    let app = TestApp::spawn().await;
    app.call(Method::GET, "/v1/api/keys", None, None, &[]).await.assert_error(401, "AUTH_REQUIRED");
    app.get("/v1/api/keys", "visa_session_forged").await.assert_error(401, "AUTH_INVALID");
    app.get("/v1/api/keys", OPERATOR_TOKEN).await.assert_error(401, "AUTH_INVALID");
}

#[tokio::test]
async fn generated_operator_token_is_private() {
    // The embedded database generates the token when none is given; a database that nodes
    // share never does (each node would hold another token), so such a node refuses to start.
    let dir = tempfile::tempdir().unwrap();
    let database = visa_store::Database::for_tests(dir.path()).unwrap();
    if matches!(database, visa_store::Database::Postgres(_)) {
        let mut config = visa_server::ServeConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
        config.database = Some(database);
        let refused = visa_server::Server::start(config).await.err().expect("no token, no start").to_string();
        assert!(refused.contains("VISA_OPERATOR_TOKEN") && refused.contains("never generated per node"), "{refused}");
        assert!(!dir.path().join("operator-token").exists());
        return;
    }
    let app = TestApp::spawn_with(|c| c.operator_token = None).await;
    let path = app.data_dir.path().join("operator-token");
    let token = std::fs::read_to_string(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let reply = app.post("/v1/operator/accounts", token.trim(), json!({ "login": "octocat" })).await;
    reply.assert_ok(201);
}

/// A credit retried under its Idempotency-Key (its answer was lost) credits once and answers
/// the first credit again; the key reused for another amount is refused.
#[tokio::test]
async fn an_operator_credit_under_an_idempotency_key_credits_once() {
    let app = TestApp::spawn().await;
    let session = app.account("octocat", true, 0).await;
    async fn credit_with(app: &TestApp, cents: i64, key: &str) -> visa_e2e::Reply {
        let (path, body) = ("/v1/operator/accounts/octocat/credits", json!({ "amount_cents": cents }));
        app.call(reqwest::Method::POST, path, Some(OPERATOR_TOKEN), Some(body), &[("Idempotency-Key", key)]).await
    }
    let credit = |cents, key| credit_with(&app, cents, key);
    let first = credit(250, "credit-2026-12-01-octocat").await;
    let again = credit(250, "credit-2026-12-01-octocat").await;
    assert_eq!(first.assert_ok(200)["account"], again.assert_ok(200)["account"], "the first answer again");
    assert_eq!(app.balance_micros(&session).await, 2_500_000, "credited once");
    credit(999, "credit-2026-12-01-octocat").await.assert_error(409, "IDEMPOTENT_REPLAY");
    credit(1, "bad key with spaces").await.assert_error(400, "INVALID_REQUEST");
    credit(100, "credit-2").await.assert_ok(200);
    assert_eq!(app.balance_micros(&session).await, 3_500_000);
    let audit = app.audit(&session, "?action=account.credited").await;
    assert_eq!(audit.len(), 2, "one audit entry per credit that ran");
}

/// Guessing passwords is throttled before any password is checked: past the per-login burst,
/// wrong and right passwords alike get 429 with Retry-After, the same for a login that exists
/// and one that does not; another login from the same client is still served until the
/// client's own budget runs out.
#[tokio::test]
async fn sign_in_is_throttled_per_login_and_per_client() {
    // Slow refills, so that the test's own pace does not refill a bucket.
    let limits = visa_server::auth::throttle::SignInLimits {
        per_ip: visa_server::ratelimit::Rate::per_minute(1, 10),
        per_login: visa_server::ratelimit::Rate::per_minute(1, 3),
    };
    let app = TestApp::spawn_with(|c| c.sign_in_limits = limits).await;
    let body = json!({ "login": "octocat", "approved": true, "password": "correct horse battery" });
    app.post("/v1/operator/accounts", OPERATOR_TOKEN, body).await.assert_ok(201);
    async fn sign_in_with(app: &TestApp, login: &str, password: &str) -> visa_e2e::Reply {
        let body = json!({ "login": login, "password": password });
        app.call(Method::POST, "/v1/api/sessions", None, Some(body), &[]).await
    }
    let sign_in = |login: &str, password: &str| {
        let (login, password) = (login.to_owned(), password.to_owned());
        let app = &app;
        async move { sign_in_with(app, &login, &password).await }
    };
    for login in ["octocat", "nobody-here"] {
        for _ in 0..3 {
            sign_in(login, "wrong password!").await.assert_error(401, "AUTH_INVALID");
        }
        let throttled = sign_in(login, "wrong password!").await;
        let body = throttled.assert_error(429, "RATE_LIMITED").clone();
        assert!(throttled.headers.contains_key("retry-after"), "{body}");
        let wait = body["retry_after"].as_u64().unwrap();
        assert!((1..=60).contains(&wait), "one attempt a minute after the burst: {body}");
    }
    // Throttled means throttled, right password included (the same answer as for a guess).
    sign_in("octocat", "correct horse battery").await.assert_error(429, "RATE_LIMITED");
    // The client's own budget (10 attempts) is shared across logins.
    let mut answers = vec![];
    for n in 0..4 {
        answers.push(sign_in(&format!("other-{n}"), "wrong password!").await.status.as_u16());
    }
    assert!(answers.contains(&429), "the per-client budget ran out: {answers:?}");
}

#[tokio::test]
async fn a_session_says_who_it_is_and_ends_at_once_when_signed_out() {
    let app = TestApp::spawn().await;
    let owner = app.account("whoami", true, 0).await;
    let me = app.get("/v1/api/sessions/current", &owner).await;
    let body = me.assert_ok(200);
    assert_eq!(
        (body["credential"].as_str(), body["actor"].as_str(), body["role"].as_str()),
        (Some("session"), Some("whoami"), Some("owner"))
    );

    let admin = app.post("/v1/api/admin-keys", &owner, serde_json::json!({ "label": "ci" })).await;
    let admin_key = admin.assert_ok(201)["key"].as_str().unwrap().to_owned();
    let as_admin = app.get("/v1/api/sessions/current", &admin_key).await;
    assert_eq!(as_admin.assert_ok(200)["credential"], "admin_key");
    // An admin key is not ended by signing out; it is revoked.
    app.delete("/v1/api/sessions/current", &admin_key).await.assert_error(400, "INVALID_REQUEST");
    app.get("/v1/api/keys", &admin_key).await.assert_ok(200);

    app.delete("/v1/api/sessions/current", &owner).await.assert_ok(200);
    app.get("/v1/api/keys", &owner).await.assert_error(401, "AUTH_INVALID");
    app.delete("/v1/api/sessions/current", &owner).await.assert_error(401, "AUTH_INVALID");
    // Signing out is audited, by the member, once.
    let ended = app.audit(&admin_key, "?action=session.ended").await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(
        (ended[0]["actor"]["name"].as_str(), ended[0]["ip"].as_str()),
        (Some("whoami"), Some("127.0.0.1")),
        "{}",
        ended[0]
    );
}

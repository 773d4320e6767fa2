//! MCP's OAuth, end to end: the official Python SDK's OAuth client connects by URL alone
//! (discovery, registration, PKCE), a member approves it on the consent page in headless
//! Chromium, and the minted token runs tools within the approved caps until revoked; then, over
//! plain HTTP, what the authorization server refuses: redirect URIs not registered (never
//! redirected to), a missing PKCE challenge, another resource, a wrong verifier, a code used
//! twice, a refresh token used twice, a token outside the MCP endpoint.

use reqwest::redirect::Policy;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use visa_e2e::TestApp;
use visa_e2e::browser::*;
use visa_e2e::catalog::{TestTool, catalog};

/// A cent a call.
const CALL_MICROS: i64 = 10_000;
/// RFC 7636's example pair.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

async fn app() -> TestApp {
    app_with(|_| {}).await
}

async fn app_with(adjust: impl FnOnce(&mut visa_server::config::ServeConfig)) -> TestApp {
    let tools = [TestTool::builtin("echo", "echo"), TestTool::builtin("slow", "sleep")];
    let catalog = catalog(&tools, "", None);
    TestApp::spawn_with(|c| {
        c.catalog = catalog;
        adjust(c);
    })
    .await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// An MCP `initialize` with `token`: its status and `WWW-Authenticate`.
async fn mcp_status(app: &TestApp, token: &str) -> (u16, String) {
    let initialize = visa_e2e::mcp_initialize("raw");
    let answer = client()
        .post(app.url("/v1/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    let challenge = answer.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    (answer.status().as_u16(), challenge.unwrap_or_default())
}

async fn token_request(app: &TestApp, form: &[(&str, &str)]) -> (u16, Value) {
    let answer = client().post(app.url("/oauth/token")).form(form).send().await.unwrap();
    assert_eq!(answer.headers()["cache-control"], "no-store");
    (answer.status().as_u16(), answer.json().await.unwrap())
}

async fn register(app: &TestApp, body: Value) -> (u16, Value) {
    let answer = client().post(app.url("/oauth/register")).json(&body).send().await.unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

/// The consent page for `query` as the member with session `session` sees it.
async fn consent(app: &TestApp, session: &str, query: &str) -> reqwest::Response {
    client()
        .get(app.url(&format!("/dashboard/oauth/authorize?{query}")))
        .header("cookie", format!("visa_session={session}"))
        .send()
        .await
        .unwrap()
}

fn authorize_query(client_id: &str, extra: &str) -> String {
    format!(
        "response_type=code&client_id={client_id}&redirect_uri={REDIRECT}&code_challenge={CHALLENGE}\
         &code_challenge_method=S256&state=xyz{extra}"
    )
}

/// Approves `client_id` as the member with session `session` (echo only, the default caps):
/// the code the client is sent back with.
async fn approve(app: &TestApp, session: &str, client_id: &str) -> String {
    let page = consent(app, session, &authorize_query(client_id, "")).await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("form-action 'self' http://127.0.0.1:9"), "the form may lead to the client: {csp}");
    let html = page.text().await.unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let resource = app.url("/v1/mcp");
    let form = [
        ("csrf", csrf.as_str()),
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", "xyz"),
        ("resource", resource.as_str()),
        ("tool", "echo"),
        ("total_cap", "10"),
        ("days", "7"),
        ("decision", "approve"),
    ];
    let answer = client()
        .post(app.url("/dashboard/oauth/authorize"))
        .header("cookie", format!("visa_session={session}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303, "{}", answer.text().await.unwrap());
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{REDIRECT}?code=")), "{location}");
    assert!(location.ends_with("&state=xyz"), "{location}");
    location.split("code=").nth(1).unwrap().split('&').next().unwrap().to_owned()
}

async fn registered(app: &TestApp) -> String {
    let (status, client) = register(app, json!({ "client_name": "raw client", "redirect_uris": [REDIRECT] })).await;
    assert_eq!(status, 201, "{client}");
    client["client_id"].as_str().unwrap().to_owned()
}

async fn redeem(app: &TestApp, client_id: &str, code: &str, verifier: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", client_id),
        ("code_verifier", verifier),
    ];
    token_request(app, &form).await
}

async fn key_status(app: &TestApp, session: &str, label: &str) -> Value {
    let keys = app.get("/v1/api/keys", session).await.assert_ok(200)["keys"].clone();
    keys.as_array().unwrap().iter().find(|k| k["label"] == label).cloned().expect("the grant's key")
}

/// The SDK connects by URL, a member approves in the browser (echo only, a 5-cent total cap),
/// the calls run and are charged once each until the cap refuses one; the token is refreshed,
/// works only at the MCP endpoint, and stops at once when the member revokes the key.
#[tokio::test]
async fn an_sdk_client_signs_in_runs_tools_within_the_approved_caps_and_stops_when_revoked() {
    let app = app().await;
    let owner = app.account("octocat", true, 1_000).await;
    app.member(&owner, "dana", "developer").await;
    let before = app.balance_micros(&owner).await;

    let python = visa_e2e::python_venv().join("bin/python");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/mcp_oauth_client.py");
    let mut sdk = tokio::process::Command::new(python)
        .arg(script)
        .arg(app.url("/v1/mcp"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the venv's python runs");
    let mut lines = BufReader::new(sdk.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().expect("the SDK asks a person to approve");
    let authorize = first.strip_prefix("AUTHORIZE ").unwrap_or_else(|| panic!("{first}")).to_owned();
    assert!(authorize.starts_with(&app.url("/dashboard/oauth/authorize?")), "{authorize}");

    // Not signed in: the sign-in page, then back to the consent page.
    let browser = browser().await;
    browser.client.goto(&authorize).await.unwrap();
    assert!(browser.client.current_url().await.unwrap().path().ends_with("/sign-in"));
    fill(&browser, "#login", "dana").await;
    fill(&browser, "#password", "dana-password-1").await;
    click_and_wait(&browser, "Sign in").await;
    let page = text(&browser).await;
    assert!(page.contains("Visa Keys test agent asks to run paid tools of octocat"), "{page}");
    screenshot(&browser, "oauth-consent").await;
    click(&browser, "input[name=tool][value=slow]").await; // asked for nothing: all were ticked
    fill(&browser, "#total_cap", "0.05").await;
    click_and_wait(&browser, "Approve").await;
    let landed = text(&browser).await;
    assert!(landed.contains("you may close this window"), "the redirect reached the client: {landed}");

    let last = lines.next_line().await.unwrap().expect("the SDK's report");
    let out: Value = serde_json::from_str(&last).unwrap_or_else(|_| panic!("{last}"));
    assert!(sdk.wait().await.unwrap().success());
    assert_eq!(out["tools"], json!(["echo"]), "only the approved tool");
    let calls = out["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 6, "five calls within the 5-cent cap, then a refusal: {calls:?}");
    for call in &calls[..5] {
        assert_eq!(call["is_error"], false, "{call}");
        assert_eq!(call["meta"]["dev.visakeys/charged_micros"], CALL_MICROS.to_string());
    }
    assert_eq!(calls[5]["is_error"], true);
    assert_eq!(calls[5]["structured"]["error_code"], "RATE_LIMITED", "{}", calls[5]);
    assert_eq!(app.balance_micros(&owner).await, before - 5 * CALL_MICROS, "charged once each");
    let expires_in = out["expires_in"].as_i64().unwrap();
    assert!((3500..=3600).contains(&expires_in), "an hour: {expires_in}");

    let key = key_status(&app, &owner, "MCP: Visa Keys test agent").await;
    assert_eq!(key["allowed_tools"], json!(["echo"]));
    assert_eq!(key["total_cap_cents"], 5);
    assert_eq!(key["spent_total_cents"], 5);
    let audit = app.audit(&owner, "").await;
    let actions: Vec<&str> = audit.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in ["oauth.approved", "oauth.tokens_issued"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }

    // The access token is for the MCP endpoint alone.
    let access = out["access_token"].as_str().unwrap().to_owned();
    app.execute(&access, "echo", json!({})).await.assert_error(401, "AUTH_INVALID");
    app.get("/v1/api/balance", &access).await.assert_error(401, "AUTH_INVALID");

    // A refresh rotates both tokens: the old access token stops at once.
    let client_id = out["client_id"].as_str().unwrap();
    let refresh = out["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", client_id)];
    let (status, fresh) = token_request(&app, &form).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(fresh["token_type"], "Bearer");
    assert_eq!(fresh["scope"], "echo");
    let new_access = fresh["access_token"].as_str().unwrap();
    assert_eq!(mcp_status(&app, &access).await.0, 401, "the old access token ended");
    assert_eq!(mcp_status(&app, new_access).await.0, 200);
    let audit = app.audit(&owner, "").await;
    let refreshed = audit.iter().find(|e| e["action"] == "oauth.refreshed").expect("the refresh is audited");
    assert_eq!(refreshed["actor"]["type"], "oauth_client");
    assert_eq!(refreshed["actor"]["name"], "Visa Keys test agent");

    // The connected applications, and revocation: 401 at once, naming where to sign in again.
    browser.client.goto(&app.url("/dashboard/connected")).await.unwrap();
    let page = text(&browser).await;
    assert!(page.contains("Visa Keys test agent") && page.contains("dana") && page.contains("$0.05"), "{page}");
    app.delete(&format!("/v1/api/keys/{}", key["id"]), &owner).await.assert_ok(200);
    let (status, challenge) = mcp_status(&app, new_access).await;
    assert_eq!(status, 401);
    let metadata = app.url("/.well-known/oauth-protected-resource/v1/mcp");
    assert!(challenge.contains(&format!("resource_metadata=\"{metadata}\"")), "{challenge}");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", fresh["refresh_token"].as_str().unwrap()),
        ("client_id", client_id),
    ];
    let (status, refused) = token_request(&app, &form).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_grant")), "{refused}");
}

#[tokio::test]
async fn the_metadata_names_this_server_and_registration_takes_only_safe_redirect_uris() {
    let app = app().await;
    let origin = app.url("");
    for path in ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/v1/mcp"] {
        let resource: Value = client().get(app.url(path)).send().await.unwrap().json().await.unwrap();
        assert_eq!(resource["resource"], app.url("/v1/mcp"), "{path}");
        assert_eq!(resource["authorization_servers"], json!([origin]));
    }
    let server: Value =
        client().get(app.url("/.well-known/oauth-authorization-server")).send().await.unwrap().json().await.unwrap();
    assert_eq!(server["issuer"], origin);
    assert_eq!(server["authorization_endpoint"], app.url("/dashboard/oauth/authorize"));
    assert_eq!(server["token_endpoint"], app.url("/oauth/token"));
    assert_eq!(server["registration_endpoint"], app.url("/oauth/register"));
    assert_eq!(server["code_challenge_methods_supported"], json!(["S256"]));

    for uri in ["http://evil.example/cb", "https://app.example/cb#x", "javascript:alert(1)"] {
        let (status, refused) = register(&app, json!({ "redirect_uris": [uri] })).await;
        assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_redirect_uri")), "{uri}: {refused}");
    }
    let (status, refused) =
        register(&app, json!({ "redirect_uris": [REDIRECT], "grant_types": ["client_credentials"] })).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_client_metadata")), "{refused}");
    let body = json!({ "client_name": "Cursor", "redirect_uris": ["cursor://anysphere.cursor-mcp/oauth/callback", REDIRECT],
        "token_endpoint_auth_method": "client_secret_post", "client_uri": "https://cursor.com", "software_version": "2.0" });
    let (status, client) = register(&app, body).await;
    assert_eq!(status, 201, "{client}");
    assert_eq!(client["token_endpoint_auth_method"], "none", "a public client: PKCE, no secret");
    assert!(client.get("client_secret").is_none());
    assert_eq!(client["client_uri"], "https://cursor.com", "the optional fields are answered back");
    assert_eq!(client["redirect_uris"].as_array().unwrap().len(), 2);
}

/// Nothing reaches a redirect URI the client did not register (no open redirect); a request
/// without PKCE or for another resource is sent back with its error.
#[tokio::test]
async fn the_consent_page_refuses_what_it_cannot_trust() {
    let app = app().await;
    let owner = app.account("octocat", true, 1_000).await;
    let client_id = registered(&app).await;

    let shown = |answer: reqwest::Response| async move {
        assert_eq!(answer.status(), 400);
        assert!(answer.headers().get("location").is_none(), "never redirected");
        answer.text().await.unwrap()
    };
    let evil = format!(
        "response_type=code&client_id={client_id}&redirect_uri=https://evil.example/cb&code_challenge={CHALLENGE}\
         &code_challenge_method=S256"
    );
    assert!(shown(consent(&app, &owner, &evil).await).await.contains("not one it registered"));
    let unknown = authorize_query("visa_client_nobody", "");
    assert!(shown(consent(&app, &owner, &unknown).await).await.contains("not registered"));

    let sent_back = |answer: reqwest::Response| {
        assert_eq!(answer.status(), 303);
        answer.headers()["location"].to_str().unwrap().to_owned()
    };
    let plain = format!("response_type=code&client_id={client_id}&redirect_uri={REDIRECT}&state=s1");
    let location = sent_back(consent(&app, &owner, &plain).await);
    assert!(location.starts_with(&format!("{REDIRECT}?error=invalid_request")) && location.ends_with("state=s1"));
    let elsewhere = authorize_query(&client_id, "&resource=https://other.example/mcp");
    assert!(sent_back(consent(&app, &owner, &elsewhere).await).contains("error=invalid_target"));

    // Not signed in: to the sign-in page, which comes back here.
    let answer = client()
        .get(app.url(&format!("/dashboard/oauth/authorize?{}", authorize_query(&client_id, ""))))
        .send()
        .await
        .unwrap();
    let location = answer.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("/dashboard/sign-in?next=%2Fdashboard%2Foauth%2Fauthorize%3F"), "{location}");
    // …and only ever to one of our pages.
    let page =
        client().get(app.url("/dashboard/sign-in?next=//evil.example/")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("evil.example"), "{page}");

    // A viewer sees who asks but cannot approve.
    let (_, viewer) = app.member(&owner, "vic", "viewer").await;
    let page = consent(&app, &viewer, &authorize_query(&client_id, "")).await.text().await.unwrap();
    assert!(page.contains("cannot connect applications") && !page.contains("Approve"), "{page}");
}

/// A code works once, with its verifier; a second presentation of a code or of a refresh token
/// revokes the grant (someone else may hold it), announced as `key.revoked` (`leaked`); the
/// tokens a refresh ends are not announced as ended secrets.
#[tokio::test]
async fn codes_and_refresh_tokens_work_once_and_a_replay_revokes_the_grant() {
    let app = app_with(|c| c.sweep_interval = std::time::Duration::from_millis(100)).await;
    let owner = app.account("octocat", true, 1_000).await;
    let hook = json!({ "url": "https://93.184.216.34/hook", "events": ["key.revoked"] });
    app.post("/v1/api/webhooks", &owner, hook).await.assert_ok(201);
    let client_id = registered(&app).await;

    let code = approve(&app, &owner, &client_id).await;
    let wrong = "x".repeat(43);
    let (status, refused) = redeem(&app, &client_id, &code, &wrong).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_grant")), "{refused}");
    assert!(refused["error_description"].as_str().unwrap().contains("code_verifier"));

    let code = approve(&app, &owner, &client_id).await;
    let (status, other) = redeem(&app, "visa_client_nobody", &code, VERIFIER).await;
    assert_eq!((status, other["error"].as_str()), (401, Some("invalid_client")));
    let code = approve(&app, &owner, &client_id).await;
    let (status, tokens) = redeem(&app, &client_id, &code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(mcp_status(&app, access).await.0, 200);
    let (status, again) = redeem(&app, &client_id, &code, VERIFIER).await;
    assert_eq!((status, again["error"].as_str()), (400, Some("invalid_grant")), "{again}");
    assert_eq!(mcp_status(&app, access).await.0, 401, "a code used twice revokes its grant");

    let code = approve(&app, &owner, &client_id).await;
    let (_, tokens) = redeem(&app, &client_id, &code, VERIFIER).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", client_id.as_str())];
    let (status, fresh) = token_request(&app, &form).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(mcp_status(&app, fresh["access_token"].as_str().unwrap()).await.0, 200);
    let (status, replayed) = token_request(&app, &form).await;
    assert_eq!((status, replayed["error"].as_str()), (400, Some("invalid_grant")), "{replayed}");
    assert_eq!(mcp_status(&app, fresh["access_token"].as_str().unwrap()).await.0, 401, "the grant is revoked");
    let revoked = app.audit(&owner, "").await.into_iter().filter(|e| e["action"] == "key.revoked_oauth_replay").count();
    assert_eq!(revoked, 2, "both replays revoked their grants, audited");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let announced = |reason: &str| {
        app.sql_value(&format!(
            "SELECT COUNT(*) FROM webhook_events WHERE type = 'key.revoked' AND payload LIKE '%\"reason\":\"{reason}\"%'"
        ))
    };
    assert_eq!((announced("leaked"), announced("secret_ended")), (2, 0), "grants revoked, and no token announced");

    let (status, unsupported) =
        token_request(&app, &[("grant_type", "password"), ("client_id", client_id.as_str())]).await;
    assert_eq!((status, unsupported["error"].as_str()), (400, Some("unsupported_grant_type")));
}

/// Registration is open, so a flood of it from one address is refused before it writes
/// anything: it shares the address's budget of unauthenticated attempts with sign-in.
#[tokio::test]
async fn a_flood_of_registrations_from_one_address_is_throttled() {
    let limits = visa_server::auth::throttle::SignInLimits {
        per_ip: visa_server::ratelimit::Rate::per_minute(1, 3),
        per_login: visa_server::ratelimit::Rate::per_minute(1, 3),
    };
    let app = TestApp::spawn_with(|c| {
        c.catalog = catalog(&[TestTool::builtin("echo", "echo")], "", None);
        c.sign_in_limits = limits;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(register(&app, json!({ "redirect_uris": [REDIRECT] })).await.0, 201);
    }
    let answer =
        client().post(app.url("/oauth/register")).json(&json!({ "redirect_uris": [REDIRECT] })).send().await.unwrap();
    assert_eq!(answer.status(), 429);
    let wait: u64 = answer.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = answer.json().await.unwrap();
    assert!(body["error_description"].as_str().unwrap().contains("too many registrations"), "{body}");
    assert_eq!(app.sql_value("SELECT COUNT(*) FROM oauth_clients"), 3, "nothing written for the refused one");
}

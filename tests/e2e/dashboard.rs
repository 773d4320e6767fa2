//! The dashboard in a real headless Chromium (chromedriver, driven over WebDriver by
//! fantoccini) against the real server on a random port: signing in (a wrong password
//! refused), the keys table showing keys created through the API, the cookie's flags, the
//! security headers, CSRF (a forged sign-out carrying the cookie but no token changes nothing)
//! and signing out (the session ends on the server too). Screenshots of the pages land in
//! `target/dashboard-screenshots/`.

use fantoccini::Locator;
use serde_json::json;
use std::time::Duration;
use visa_e2e::browser::*;
use visa_e2e::*;

#[tokio::test]
async fn a_member_signs_in_sees_the_accounts_keys_and_signs_out() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", true, 10_000).await;
    app.key(&owner, json!({ "label": "nightly-batch", "allowed_tools": ["echo"], "daily_cap_cents": 500 })).await;
    let (_, raw) = app.key(&owner, json!({ "label": "support-agent" })).await;
    app.execute(&raw, "echo", json!({ "hi": 1 })).await.assert_ok(200);
    app.member(&owner, "dana", "admin").await;
    let browser = browser().await;

    // A wrong password is refused on the form, and opens no session.
    sign_in(&browser, &app, "dana", "not-her-password").await;
    let page = text(&browser).await;
    assert!(page.contains("Wrong login or password."), "{page}");
    assert!(browser.client.get_all_cookies().await.unwrap().is_empty(), "no cookie for a refused sign-in");
    screenshot(&browser, "sign-in-refused").await;

    sign_in(&browser, &app, "dana", "dana-password-1").await;
    assert_eq!(browser.client.current_url().await.unwrap().path(), "/dashboard/overview", "the first page");
    follow(&browser, "Keys").await;
    let page = text(&browser).await;
    for expected in ["nightly-batch", "support-agent", "Production: live keys", "dana", "admin", "Sign out", "echo"] {
        assert!(page.contains(expected), "{expected:?} missing from the keys page: {page}");
    }
    // The support agent's one call: a cent of its $10.00 default daily cap, beside its meter.
    assert!(page.contains("$0.01 of $10.00"), "{page}");
    assert!(page.contains("$0.00 of $5.00"), "{page}");
    screenshot(&browser, "keys").await;

    // The cookie: HttpOnly, SameSite=Strict, only for /dashboard, bounded.
    let cookies = browser.client.get_all_cookies().await.unwrap();
    let cookie = cookies.iter().find(|c| c.name() == "visa_session").expect("the session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site().map(|s| format!("{s:?}")).as_deref(), Some("Strict"));
    assert_eq!(cookie.path(), Some("/dashboard"));
    assert!(cookie.expires().is_some(), "a bounded lifetime, not a forever cookie");
    let token = format!("visa_session={}", cookie.value());

    // The page's headers: nothing cached, no framing, a strict policy.
    let page = reqwest::Client::new().get(app.url("/dashboard/keys")).header("Cookie", &token).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let header = |name: &str| page.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("x-frame-options"), "DENY");
    assert!(header("content-security-policy").contains("frame-ancestors 'none'"));
    assert!(!header("content-security-policy").contains("unsafe-inline"));
    // The cookie is the dashboard's: the API does not take it as a credential.
    let api = reqwest::Client::new().get(app.url("/v1/api/keys")).header("Cookie", &token).send().await.unwrap();
    assert_eq!(api.status(), 401);

    // A cross-site sign-out carrying the cookie but not the form's token changes nothing.
    let forged = reqwest::Client::new()
        .post(app.url("/dashboard/sign-out"))
        .header("Cookie", &token)
        .header("Origin", "https://evil.example")
        .form(&[("csrf", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    browser.client.refresh().await.unwrap();
    assert!(text(&browser).await.contains("support-agent"), "still signed in");

    // Signing out ends the session on the server, not only in the browser.
    click_and_wait(&browser, "Sign out").await;
    assert_eq!(browser.client.current_url().await.unwrap().path(), "/dashboard/sign-in");
    let replayed =
        reqwest::Client::new().get(app.url("/dashboard/keys")).header("Cookie", &token).send().await.unwrap();
    assert_eq!(replayed.url().path(), "/dashboard/sign-in", "the old cookie no longer signs in");
    browser.client.goto(&app.url("/dashboard/keys")).await.unwrap();
    assert_eq!(browser.client.current_url().await.unwrap().path(), "/dashboard/sign-in");
    browser.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn a_preview_server_says_so_on_every_page() {
    let app = TestApp::spawn_preview().await;
    let owner = app.account("acme", true, 10_000).await;
    app.member(&owner, "pat", "viewer").await;
    let browser = browser().await;
    browser.client.goto(&app.url("/dashboard/sign-in")).await.unwrap();
    assert!(text(&browser).await.contains("Preview server"), "on the sign-in page");
    sign_in(&browser, &app, "pat", "pat-password-1").await;
    follow(&browser, "Keys").await;
    let page = text(&browser).await;
    assert!(page.contains("Preview server") && page.contains("No keys yet."), "{page}");
    // A call counts toward the key's caps but charges nothing: the page never calls it spend.
    let (_, raw) = app.key(&owner, serde_json::json!({ "label": "tried-in-preview" })).await;
    app.execute(&raw, "echo", serde_json::json!({})).await.assert_ok(200);
    browser.client.refresh().await.unwrap();
    let page = text(&browser).await;
    assert!(page.contains("$0.01 of $10.00") && page.contains("Counted today (not charged)"), "{page}");
    assert!(!page.contains("Spent"), "a preview page showing spend: {page}");
    screenshot(&browser, "keys-preview").await;
    browser.client.clone().close().await.unwrap();
}

/// The requests the traffic chart shows for the secret with `prefix` (its caption's count).
async fn requests_of(browser: &Browser, prefix: &str) -> u64 {
    let text = browser.client.find(Locator::Css("#usage")).await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.contains(prefix)).unwrap_or_else(|| panic!("no chart of {prefix}: {text}"));
    let count = line.split(": ").nth(1).and_then(|rest| rest.split(' ').next()).unwrap_or_default();
    count.parse().unwrap_or_else(|_| panic!("no request count in {line:?}"))
}

#[tokio::test]
async fn a_key_is_created_edited_rotated_and_revoked_in_the_browser_as_through_the_api() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", true, 10_000).await;
    app.member(&owner, "dev", "developer").await;
    app.member(&owner, "vic", "viewer").await;
    let browser = browser().await;
    sign_in(&browser, &app, "dev", "dev-password-1").await;
    follow(&browser, "Keys").await;
    let user_agent = browser.client.execute("return navigator.userAgent", vec![]).await.unwrap();
    let user_agent = user_agent.as_str().unwrap().to_owned();

    // Create: every field of the API, caps in dollars, tools from the catalog.
    follow(&browser, "Create key").await;
    fill(&browser, "#label", "browser-made").await;
    click(&browser, "input[name=scope][value=restricted]").await;
    click(&browser, "input[name=tool][value=echo]").await;
    fill(&browser, "#daily_cap", "0.05").await;
    fill(&browser, "#total_cap", "2").await;
    fill(&browser, "#rate_limit", "50").await;
    click_and_wait(&browser, "Create key").await;
    let raw = shown_key(&browser).await;
    assert!(raw.starts_with("VisaKey_live_"), "{raw}");
    assert!(text(&browser).await.contains("shown only once"));
    screenshot(&browser, "key-created").await;
    // It works on execute, within what the form set.
    app.execute(&raw, "echo", json!({ "n": 1 })).await.assert_ok(200);
    let keys = app.get("/v1/api/keys", &owner).await.assert_ok(200).clone();
    let key = &keys["keys"][0];
    let id = key["id"].as_i64().unwrap();
    assert_eq!((key["label"].as_str(), key["daily_cap_cents"].as_i64()), (Some("browser-made"), Some(5)));
    assert_eq!((key["total_cap_cents"].as_i64(), key["rate_limit_per_second"].as_i64()), (Some(200), Some(50)));
    assert_eq!(key["allowed_tools"], json!(["echo"]));
    // Never shown again: not on the key's page, not on the table, not after a reload.
    browser.client.goto(&app.url(&format!("/dashboard/keys/{id}"))).await.unwrap();
    browser.client.refresh().await.unwrap();
    assert!(!browser.client.source().await.unwrap().contains(&raw), "the raw key is on the key's page");
    browser.client.goto(&app.url("/dashboard/keys")).await.unwrap();
    assert!(!browser.client.source().await.unwrap().contains(&raw), "the raw key is on the keys table");

    // Edit the caps; the API agrees; a bad value gets the API's own message.
    browser.client.goto(&app.url(&format!("/dashboard/keys/{id}"))).await.unwrap();
    fill(&browser, "#daily_cap", "0.25").await;
    fill(&browser, "#total_cap", "").await;
    click_and_wait(&browser, "Save policy").await;
    let key = app.get(&format!("/v1/api/keys/{id}"), &owner).await.assert_ok(200).clone();
    assert_eq!((key["daily_cap_cents"].as_i64(), key["total_cap_cents"].as_i64()), (Some(25), None));
    fill(&browser, "#allowed_cidrs", "not-a-network").await;
    click_and_wait(&browser, "Save policy").await;
    let refused = text(&browser).await;
    assert!(refused.contains("not-a-network"), "the API's message names the bad entry: {refused}");

    // Rotate with a grace period: the new secret shown once, both secrets listed, both work.
    browser.client.goto(&app.url(&format!("/dashboard/keys/{id}"))).await.unwrap();
    click_and_wait(&browser, "Rotate").await;
    let rotated = shown_key(&browser).await;
    assert_ne!(rotated, raw);
    let page = text(&browser).await;
    assert!(page.contains("expiring") && page.contains("active"), "{page}");
    screenshot(&browser, "key-rotated").await;
    app.execute(&raw, "echo", json!({ "n": 2 })).await.assert_ok(200);
    app.execute(&rotated, "echo", json!({ "n": 3 })).await.assert_ok(200);
    // The traffic chart follows the old secret live: calls made after the page loaded show
    // up without a reload.
    let secrets = app.get(&format!("/v1/api/keys/{id}"), &owner).await.assert_ok(200)["secrets"].clone();
    let old_prefix = secrets[1]["key_prefix"].as_str().unwrap().to_owned();
    browser.client.goto(&app.url(&format!("/dashboard/keys/{id}"))).await.unwrap();
    let before = requests_of(&browser, &old_prefix).await;
    for n in 0..3 {
        app.execute(&raw, "echo", json!({ "live": n })).await.assert_ok(200);
    }
    // The old secret served 2 calls before the page loaded (counts reach the store within a
    // second, so the page may show 1 or 2) and 3 after.
    assert!(before <= 2, "{before}");
    let mut live = before;
    for _ in 0..100 {
        live = requests_of(&browser, &old_prefix).await;
        if live == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(live, 5, "the chart did not follow the old secret's traffic without a reload");
    // A chart with labelled axes, not only numbers: the tallest bar's requests, and the window's ends in UTC.
    let chart = browser.client.find(Locator::Css("svg")).await.unwrap().html(false).await.unwrap();
    assert!(
        chart.contains(">max ") && chart.contains(" request") && chart.matches(" UTC</text>").count() == 2,
        "{chart}"
    );
    screenshot(&browser, "key-traffic").await;
    // Revoke the old secret early: it stops, the new one works.
    click_and_wait(&browser, "Revoke this secret now").await;
    assert_eq!(app.execute(&raw, "echo", json!({ "n": 4 })).await.status, 401);
    app.execute(&rotated, "echo", json!({ "n": 5 })).await.assert_ok(200);

    // Revoke the key: asked first, then refused on execute.
    follow(&browser, "Revoke this key…").await;
    assert!(text(&browser).await.contains("cannot be undone"));
    screenshot(&browser, "key-revoke-confirm").await;
    click_and_wait(&browser, "Revoke key").await;
    assert!(text(&browser).await.contains("revoked"));
    assert_eq!(app.execute(&rotated, "echo", json!({ "n": 6 })).await.status, 401);

    // Every change is in the audit log as through the API, with the browser's user agent.
    for action in ["key.created", "key.updated", "key.rotated", "key.secret_revoked", "key.revoked"] {
        let entries = app.audit(&owner, &format!("?action={action}")).await;
        let entry = entries.first().unwrap_or_else(|| panic!("no {action} entry"));
        assert_eq!(entry["user_agent"].as_str(), Some(user_agent.as_str()), "{action}: {entry}");
        assert_eq!(entry["actor"]["name"].as_str(), Some("dev"), "{action}: {entry}");
    }
    let updated = &app.audit(&owner, "?action=key.updated").await[0];
    assert_eq!(updated["changes"]["daily_cap_cents"], json!({ "before": 5, "after": 25 }), "{updated}");
    browser.client.clone().close().await.unwrap();

    // A viewer sees no controls, and a POST forged with a viewer's session is refused.
    let browser = self::browser().await;
    sign_in(&browser, &app, "vic", "vic-password-1").await;
    let (_, other) = app.key(&owner, json!({ "label": "still-here" })).await;
    browser.client.goto(&app.url("/dashboard/keys")).await.unwrap();
    let source = browser.client.source().await.unwrap();
    assert!(source.contains("still-here") && !source.contains("Create key"), "{source}");
    let still_here = app.get("/v1/api/keys", &owner).await.assert_ok(200)["keys"][0]["id"].as_i64().unwrap();
    browser.client.goto(&app.url(&format!("/dashboard/keys/{still_here}"))).await.unwrap();
    let source = browser.client.source().await.unwrap();
    for control in ["Rotate", "Save policy", "Revoke"] {
        assert!(!source.contains(&format!(">{control}")), "a viewer sees {control:?}");
    }
    let cookies = browser.client.get_all_cookies().await.unwrap();
    let cookie = cookies.iter().find(|c| c.name() == "visa_session").unwrap();
    let csrf =
        browser.client.find(Locator::Css("input[name=csrf]")).await.unwrap().prop("value").await.unwrap().unwrap();
    let forged = reqwest::Client::new()
        .post(app.url(&format!("/dashboard/keys/{still_here}/revoke")))
        .header("Cookie", format!("visa_session={}", cookie.value()))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "the handler refuses a viewer, whatever the page showed");
    app.execute(&other, "echo", json!({ "n": 7 })).await.assert_ok(200);
    browser.client.clone().close().await.unwrap();
}

/// A key's page shows a call made with the key within about a second, without a reload (the
/// newest calls refresh every second; the traffic chart waits for the usage flush).
#[tokio::test]
async fn a_keys_page_shows_its_calls_within_a_second() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", true, 10_000).await;
    let (key_id, raw) = app.key(&owner, serde_json::json!({ "label": "watched" })).await;
    app.member(&owner, "vic", "viewer").await;
    let browser = browser().await;
    sign_in(&browser, &app, "vic", "vic-password-1").await;
    browser.client.goto(&app.url(&format!("/dashboard/keys/{key_id}"))).await.unwrap();
    assert!(text(&browser).await.contains("No calls yet."));
    let called = app.execute(&raw, "echo", serde_json::json!({ "n": 1 })).await;
    let execution = called.assert_ok(200)["execution_id"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    let mut shown = false;
    while started.elapsed() < Duration::from_secs(3) {
        let calls = browser.client.find(Locator::Css("#key-calls")).await.unwrap().text().await.unwrap();
        if calls.contains(&execution) && calls.contains("succeeded") {
            shown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(shown, "the call never appeared on its key's page");
    assert!(started.elapsed() < Duration::from_millis(1_500), "shown after {:?}", started.elapsed());
    browser.client.clone().close().await.unwrap();
}

//! The dashboard's account pages in a real headless Chromium against the real server: spend
//! (balance, per-day and per-key spend, the executions list and its filter, an execution's
//! receipt), the audit log (filters, new entries appearing without a reload), both pagers
//! walked through a filtered list and back, members (invite, accept the invitation in the
//! browser, change a role, the owner rule, remove), admin keys (created and shown once, used on
//! the API, revoked), the keys table's filters and sort, and what a viewer may not do. Each
//! change is checked through the API and in the audit log with the browser's user agent.

use fantoccini::Locator;
use serde_json::json;
use std::time::Duration;
use visa_e2e::browser::*;
use visa_e2e::*;

async fn goto(browser: &Browser, app: &TestApp, path: &str) {
    browser.client.goto(&app.url(path)).await.unwrap();
}

async fn user_agent(browser: &Browser) -> String {
    let agent = browser.client.execute("return navigator.userAgent", vec![]).await.unwrap();
    agent.as_str().unwrap().to_owned()
}

async fn choose(browser: &Browser, select: &str, value: &str) {
    click(browser, &format!("{select} option[value='{value}']")).await;
}

/// Rows of the table `css` (its body).
async fn rows(browser: &Browser, css: &str) -> Vec<String> {
    let mut texts = vec![];
    for row in browser.client.find_all(Locator::Css(&format!("{css} tbody tr"))).await.unwrap() {
        texts.push(row.text().await.unwrap());
    }
    texts
}

#[tokio::test]
async fn spend_shows_the_balance_what_each_key_spent_and_every_execution_with_its_receipt() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", true, 10_000).await;
    let (batch_id, batch) = app.key(&owner, json!({ "label": "nightly-batch", "allowed_tools": ["echo"] })).await;
    let (_, agent) = app.key(&owner, json!({ "label": "support-agent" })).await;
    let mut receipt = json!(null);
    for n in 0..3 {
        receipt = app.execute(&batch, "echo", json!({ "n": n })).await.assert_ok(200)["receipt"]["id"].clone();
    }
    // The agent's call is made for one of its end users.
    let headers = [
        ("X-Api-Key", agent.as_str()),
        ("Idempotency-Key", "5f0c8f0e-3b7a-4c1e-9f2d-6a1b2c3d4e5f"),
        ("X-Visa-End-User", "customer-42"),
    ];
    let body = Some(json!({ "input": { "n": 9 } }));
    app.call(reqwest::Method::POST, "/v1/api/tools/echo/execute", None, body, &headers).await.assert_ok(200);
    app.member(&owner, "ada", "viewer").await;
    let browser = browser().await;
    sign_in(&browser, &app, "ada", "ada-password-1").await;

    follow(&browser, "Spend").await;
    let page = text(&browser).await;
    // $100.00 credited, four 1-cent calls: the API's balance, in dollars.
    let balance = app.get("/v1/api/balance", &owner).await.assert_ok(200)["balance_cents"].as_i64().unwrap();
    assert_eq!(balance, 9_996);
    assert_eq!(browser.client.find(Locator::Css("#balance")).await.unwrap().text().await.unwrap(), "$99.96");
    assert_eq!(browser.client.find(Locator::Css("#held")).await.unwrap().text().await.unwrap(), "$0.00");
    // Per day: today, 4 cents; per key: the batch's 3 cents first, then the agent's 1.
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let days = rows(&browser, "table.spend-days").await;
    assert_eq!(days, [format!("{today} $0.04")], "{page}");
    let keys = rows(&browser, "table.spend-keys").await;
    assert!(keys[0].starts_with("nightly-batch $0.03") && keys[1].starts_with("support-agent $0.01"), "{keys:?}");
    // The per-day chart has labelled axes: the first and last day, and what its tallest bar is.
    let chart = browser.client.find(Locator::Css("figure svg")).await.unwrap().html(false).await.unwrap();
    assert!(chart.contains(">max $0.04</text>") && chart.contains(&format!(">{today}</text>")), "{chart}");
    // Every execution, newest first; the state filter is the API's.
    let executions = rows(&browser, "table.executions").await;
    assert_eq!(executions.len(), 4, "{executions:?}");
    assert!(executions[0].contains("succeeded") && executions[0].contains("support-agent"), "{executions:?}");
    assert!(
        executions[0].contains("customer-42") && !executions[1].contains("customer"),
        "the end user: {executions:?}"
    );
    screenshot(&browser, "spend").await;
    choose(&browser, "#state", "voided").await;
    click_and_wait(&browser, "Filter").await;
    assert!(text(&browser).await.contains("No executions."));
    assert!(browser.client.current_url().await.unwrap().query().unwrap().contains("state=voided"));
    choose(&browser, "#state", "succeeded").await;
    click_and_wait(&browser, "Filter").await;
    assert_eq!(rows(&browser, "table.executions").await.len(), 4);
    choose(&browser, "#key_id", &batch_id.to_string()).await;
    click_and_wait(&browser, "Filter").await;
    let batch_only = rows(&browser, "table.executions").await;
    assert!(batch_only.len() == 3 && batch_only.iter().all(|r| r.contains("nightly-batch")), "{batch_only:?}");

    // An execution's page carries its receipt (the batch's newest call).
    navigate_by(&browser, Locator::Css("table.executions tbody tr:first-child a"), "the newest execution").await;
    let page = text(&browser).await;
    assert!(page.contains(receipt.as_str().unwrap()) && page.contains("10000 micros"), "{page}");
    screenshot(&browser, "execution").await;
    browser.client.clone().close().await.unwrap();
}

/// The overview is the first page after sign-in: the balance, spend per day stacked by tool,
/// the top keys and end users, refusals by limit and the keys to watch, all from the API.
#[tokio::test]
async fn the_overview_is_the_first_page_and_sums_the_last_30_days() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", true, 10_000).await;
    // Noon UTC, so yesterday and today are whole days on the server's clock.
    let now = app.clock.now().unix_timestamp();
    app.clock.advance(time::Duration::seconds(43_200 - now.rem_euclid(86_400)));
    let fields = json!({ "label": "nightly-batch", "daily_cap_cents": 5 });
    let (batch_id, batch) = app.key(&owner, fields).await;
    let fields = json!({ "label": "support-agent", "expires_at": rfc3339_in(3 * 86_400) });
    let (_, agent) = app.key(&owner, fields).await;
    let for_user = |key: &str, user: &'static str, tool: &'static str| {
        let (app, key) = (&app, key.to_owned());
        async move {
            let idempotency_key = uuid::Uuid::new_v4().to_string();
            let headers =
                [("X-Api-Key", key.as_str()), ("Idempotency-Key", idempotency_key.as_str()), ("X-Visa-End-User", user)];
            let body = Some(if tool == "sleep" { json!({ "input": { "ms": 1 } }) } else { json!({ "input": {} }) });
            app.call(reqwest::Method::POST, &format!("/v1/api/tools/{tool}/execute"), None, body, &headers).await
        }
    };
    // Yesterday: the agent, twice for customer-42 (echo, then sleep).
    app.clock.advance(time::Duration::days(-1));
    for_user(&agent, "customer-42", "echo").await.assert_ok(200);
    for_user(&agent, "customer-42", "sleep").await.assert_ok(200);
    app.clock.advance(time::Duration::days(1));
    // Today: the batch up to its 5-cent daily cap (one call for customer-7), then refused.
    for _ in 0..4 {
        app.execute(&batch, "echo", json!({})).await.assert_ok(200);
    }
    for_user(&batch, "customer-7", "echo").await.assert_ok(200);
    assert_eq!(
        app.execute(&batch, "echo", json!({})).await.assert_error(429, "RATE_LIMITED")["limit"],
        "key_daily_cap"
    );

    app.member(&owner, "ada", "viewer").await;
    let browser = browser().await;
    sign_in(&browser, &app, "ada", "ada-password-1").await;
    assert_eq!(browser.client.current_url().await.unwrap().path(), "/dashboard/overview", "the first page");
    let page = text(&browser).await;
    assert!(page.contains("Overview"), "{page}");
    assert_eq!(browser.client.find(Locator::Css("#balance")).await.unwrap().text().await.unwrap(), "$99.93");
    assert_eq!(rows(&browser, "table.overview-tools").await, ["echo 6 $0.06", "sleep 1 $0.01"], "{page}");
    // Two days of bars: yesterday's stacked from two tools in two colours, today's of one.
    let chart = browser.client.find(Locator::Css("figure svg")).await.unwrap().html(false).await.unwrap();
    let yesterday = (app.clock.now() - time::Duration::days(1)).date().to_string();
    assert!(
        chart.contains(&format!("{yesterday} · echo: $0.01")) && chart.contains(&format!("{yesterday} · sleep: $0.01")),
        "{chart}"
    );
    assert!(
        chart.contains(">max $0.05</text>") && chart.contains("fill=\"#3b6fb6\"") && chart.contains("fill=\"#d9822b\""),
        "{chart}"
    );
    assert_eq!(rows(&browser, "table.overview-keys").await, ["nightly-batch 5 $0.05", "support-agent 2 $0.02"]);
    assert_eq!(rows(&browser, "table.overview-end-users").await, ["customer-42 2 $0.02", "customer-7 1 $0.01"]);
    assert_eq!(rows(&browser, "table.overview-refusals").await, ["key_daily_cap 1"]);
    // Newest key first, as the keys list.
    let watch = rows(&browser, "table.overview-watch").await;
    assert_eq!(watch.len(), 2, "{watch:?}");
    assert!(watch[0].starts_with("support-agent") && watch[0].contains("expires"), "{watch:?}");
    assert!(
        watch[1].starts_with("nightly-batch") && watch[1].contains("$0.05 of its $0.05 daily cap spent today"),
        "{watch:?}"
    );
    let link = browser.client.find(Locator::Css("table.overview-keys a")).await.unwrap().attr("href").await.unwrap();
    assert_eq!(link.as_deref(), Some(format!("/dashboard/keys/{batch_id}").as_str()));
    screenshot(&browser, "overview").await;
    browser.client.clone().close().await.unwrap();
}

/// Walks a filtered list to its last page and back with the pager's links: the filter holds on
/// every page, and the pages together show each row exactly once, newest first.
async fn walk_pages(
    browser: &Browser,
    table: &str,
    older: &str,
    newer: &str,
    filter: &str,
) -> (Vec<String>, Vec<String>) {
    let first = rows(browser, table).await;
    follow(browser, older).await;
    assert!(browser.client.current_url().await.unwrap().query().unwrap_or_default().contains(filter), "{filter}");
    let second = rows(browser, table).await;
    assert!(browser.client.find(Locator::LinkText(older)).await.is_err(), "the last page links no further");
    follow(browser, newer).await;
    assert!(browser.client.current_url().await.unwrap().query().unwrap_or_default().contains(filter), "{filter}");
    assert_eq!(rows(browser, table).await, first, "back to the first page");
    (first, second)
}

#[tokio::test]
async fn the_spend_and_audit_pagers_walk_a_filtered_list_both_ways() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", true, 10_000).await;
    let (batch_id, batch) = app.key(&owner, json!({ "label": "nightly-batch", "allowed_tools": ["echo"] })).await;
    let (other_id, other) = app.key(&owner, json!({ "label": "support-agent" })).await;
    for n in 0..30 {
        app.execute(&batch, "echo", json!({ "n": n })).await.assert_ok(200);
        if n % 10 == 0 {
            app.execute(&other, "echo", json!({ "n": n })).await.assert_ok(200);
        }
    }
    for cents in 101..=127 {
        app.patch(&format!("/v1/api/keys/{other_id}"), &owner, json!({ "daily_cap_cents": cents }))
            .await
            .assert_ok(200);
    }
    app.member(&owner, "ada", "viewer").await;
    let browser = browser().await;
    sign_in(&browser, &app, "ada", "ada-password-1").await;

    // The batch key's 30 executions: 25 on the first page, 5 on the next, none of the other key's.
    goto(&browser, &app, "/dashboard/spend").await;
    choose(&browser, "#key_id", &batch_id.to_string()).await;
    click_and_wait(&browser, "Filter").await;
    let filter = format!("key_id={batch_id}");
    let (first, second) =
        walk_pages(&browser, "table.executions", "Older executions", "Newer executions", &filter).await;
    assert_eq!((first.len(), second.len()), (25, 5), "{first:?} {second:?}");
    assert!(first.iter().chain(&second).all(|r| r.contains("nightly-batch")), "{first:?} {second:?}");
    let listed = app.get(&format!("/v1/api/executions?key_id={batch_id}&limit=100"), &owner).await;
    let listed = listed.assert_ok(200);
    let ids: Vec<&str> = listed["executions"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 30);
    for (row, id) in first.iter().chain(&second).zip(&ids) {
        assert!(row.contains(id), "row {row:?} is not execution {id} (the API order)");
    }

    // The 27 cap changes of one key: 25, then 2, each once, newest (127 cents) first.
    goto(&browser, &app, "/dashboard/audit").await;
    choose(&browser, "#action", "key.updated").await;
    click_and_wait(&browser, "Filter").await;
    let (first, second) =
        walk_pages(&browser, "table.audit", "Older entries", "Newer entries", "action=key.updated").await;
    assert_eq!((first.len(), second.len()), (25, 2), "{first:?} {second:?}");
    for (row, cents) in first.iter().chain(&second).zip((101..=127).rev()) {
        let dollars = format!("→ ${}.{:02}", cents / 100, cents % 100);
        assert!(row.contains(&dollars), "row {row:?} is not the change to {dollars}");
    }
    screenshot(&browser, "audit-second-page").await;
    browser.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn members_and_admin_keys_are_managed_in_the_browser_and_audited_as_through_the_api() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", true, 10_000).await;
    app.member(&owner, "ada", "admin").await;
    let browser = browser().await;
    sign_in(&browser, &app, "ada", "ada-password-1").await;
    let agent = user_agent(&browser).await;

    // Invite: the invitation is shown once, and is not on the members page after.
    follow(&browser, "Members").await;
    fill(&browser, "#invite-login", "zoe").await;
    click_and_wait(&browser, "Invite").await;
    let invitation = value_of(&browser, "#invite-token").await;
    assert!(invitation.starts_with("visa_invite"), "{invitation}");
    screenshot(&browser, "member-invited").await;
    goto(&browser, &app, "/dashboard/members").await;
    let source = browser.client.source().await.unwrap();
    assert!(source.contains("zoe") && source.contains("invited") && !source.contains(&invitation), "{source}");
    screenshot(&browser, "members").await;

    // Zoe accepts in her own browser, chooses a password, and is signed in as herself.
    let zoe = self::browser().await;
    goto(&zoe, &app, "/dashboard/accept").await;
    // The page states the API's one password rule, and the field enforces its length.
    assert!(text(&zoe).await.contains(&visa_core::password::rule()), "{}", text(&zoe).await);
    let field = zoe.client.find(Locator::Css("#new-password")).await.unwrap();
    assert_eq!(field.attr("minlength").await.unwrap().as_deref(), Some("8"));
    fill(&zoe, "#invite_token", &invitation).await;
    fill(&zoe, "#new-password", "zoe-chose-this-1").await;
    click_and_wait(&zoe, "Accept invitation").await;
    assert_eq!(zoe.client.current_url().await.unwrap().path(), "/dashboard/overview");
    assert!(text(&zoe).await.contains("zoe · developer · acme"));
    // The invitation worked once.
    click_and_wait(&zoe, "Sign out").await;
    goto(&zoe, &app, "/dashboard/accept").await;
    fill(&zoe, "#invite_token", &invitation).await;
    fill(&zoe, "#new-password", "zoe-chose-this-2").await;
    click_and_wait(&zoe, "Accept invitation").await;
    assert!(text(&zoe).await.contains("unknown, used or expired"));
    zoe.client.clone().close().await.unwrap();

    // Change Zoe's role; the API agrees.
    let members = app.get("/v1/api/members", &owner).await.assert_ok(200)["members"].clone();
    let id_of =
        |login: &str| members.as_array().unwrap().iter().find(|m| m["login"] == login).unwrap()["id"].as_i64().unwrap();
    let (zoe_id, acme_id) = (id_of("zoe"), id_of("acme"));
    goto(&browser, &app, "/dashboard/members").await;
    choose(&browser, &format!("#role-{zoe_id}"), "viewer").await;
    let change = format!("form[action='/dashboard/members/{zoe_id}/role'] button");
    navigate_by(&browser, Locator::Css(&change), "Change role").await;
    let zoe_now = app.get("/v1/api/members", &owner).await.assert_ok(200)["members"].clone();
    assert!(zoe_now.as_array().unwrap().iter().any(|m| m["login"] == "zoe" && m["role"] == "viewer"), "{zoe_now}");
    // An admin may not demote the owner: the store's rule, in the API's words; nothing changes.
    choose(&browser, &format!("#role-{acme_id}"), "developer").await;
    let change = format!("form[action='/dashboard/members/{acme_id}/role'] button");
    navigate_by(&browser, Locator::Css(&change), "Change role").await;
    assert!(text(&browser).await.to_lowercase().contains("owner"), "the refusal names the owner rule");
    let still = app.get("/v1/api/members", &owner).await.assert_ok(200)["members"].clone();
    assert!(still.as_array().unwrap().iter().any(|m| m["login"] == "acme" && m["role"] == "owner"));
    // Remove Zoe, after a confirmation.
    goto(&browser, &app, "/dashboard/members").await;
    follow(&browser, "Remove zoe…").await;
    assert!(text(&browser).await.contains("Remove zoe"));
    click_and_wait(&browser, "Remove member").await;
    let left = app.get("/v1/api/members", &owner).await.assert_ok(200)["members"].clone();
    assert!(!left.as_array().unwrap().iter().any(|m| m["login"] == "zoe"), "{left}");

    // Admin keys: created and shown once, usable on the API, revoked after a confirmation.
    follow(&browser, "Admin keys").await;
    fill(&browser, "#admin-label", "ci-pipeline").await;
    click_and_wait(&browser, "Create admin key").await;
    let admin_key = value_of(&browser, "#raw-key").await;
    assert!(admin_key.starts_with("VisaKey_admin_live_"), "{admin_key}");
    app.get("/v1/api/keys", &admin_key).await.assert_ok(200);
    goto(&browser, &app, "/dashboard/admin-keys").await;
    assert!(!browser.client.source().await.unwrap().contains(&admin_key), "the admin key is shown once");
    screenshot(&browser, "admin-keys").await;
    follow(&browser, "Revoke ci-pipeline…").await;
    click_and_wait(&browser, "Revoke admin key").await;
    assert_eq!(app.get("/v1/api/keys", &admin_key).await.status, 401);
    assert!(text(&browser).await.contains("revoked"));

    // Each change is in the audit log as through the API, with the browser's user agent.
    for action in ["member.invited", "member.role_changed", "member.removed", "admin_key.created", "admin_key.revoked"]
    {
        let entries = app.audit(&owner, &format!("?action={action}")).await;
        let entry = entries.first().unwrap_or_else(|| panic!("no {action} entry"));
        assert_eq!(entry["user_agent"].as_str(), Some(agent.as_str()), "{action}: {entry}");
        assert_eq!(entry["actor"]["name"].as_str(), Some("ada"), "{action}: {entry}");
    }
    browser.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn the_audit_log_filters_and_follows_new_entries_live() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", true, 10_000).await;
    app.key(&owner, json!({ "label": "first" })).await;
    let (second, _) = app.key(&owner, json!({ "label": "second" })).await;
    app.patch(&format!("/v1/api/keys/{second}"), &owner, json!({ "daily_cap_cents": 250 })).await.assert_ok(200);
    app.member(&owner, "ada", "viewer").await;
    let browser = browser().await;
    sign_in(&browser, &app, "ada", "ada-password-1").await;

    follow(&browser, "Audit log").await;
    let page = text(&browser).await;
    // Sentences, names and money, not ids and cents; the action codes stay for the filter.
    for expected in [
        "acme created key “first”",
        "acme updated key “second”",
        "daily cap: $10.00 → $2.50",
        "acme invited member ada",
        "ada signed in",
        "key.updated",
        "Chrome ",
    ] {
        assert!(page.contains(expected), "{expected:?} missing: {page}");
    }
    assert!(!page.contains("daily_cap_cents"), "a raw field name: {page}");
    // The user agent shows as its browser; the whole string is there on demand, closed by default.
    let agent = browser.client.find(Locator::Css("details.agent")).await.unwrap();
    assert_eq!(agent.attr("open").await.unwrap(), None);
    let summary = agent.find(Locator::Css("summary")).await.unwrap().text().await.unwrap();
    assert!(summary.starts_with("Chrome ") && summary.len() < 16, "{summary}");
    screenshot(&browser, "audit").await;
    // The API's filters.
    choose(&browser, "#action", "key.updated").await;
    click_and_wait(&browser, "Filter").await;
    let entries = rows(&browser, "table.audit").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].contains("updated key “second”"), "{entries:?}");
    fill(&browser, "#target", "key:999").await;
    click_and_wait(&browser, "Filter").await;
    assert!(text(&browser).await.contains("No entries."));

    // Unfiltered, the first page follows new entries without a reload.
    goto(&browser, &app, "/dashboard/audit").await;
    app.key(&owner, json!({ "label": "made-while-watching" })).await;
    let target = "created key “made-while-watching”";
    let mut seen = false;
    for _ in 0..100 {
        let table = browser.client.find(Locator::Css("#audit-entries")).await.unwrap().text().await.unwrap();
        if table.contains(target) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the new entry did not appear without a reload");
    browser.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn the_keys_table_filters_and_sorts() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", true, 10_000).await;
    let (_, alpha) = app.key(&owner, json!({ "label": "alpha", "allowed_tools": ["echo"] })).await;
    app.key(&owner, json!({ "label": "beta", "allowed_tools": ["sleep"], "expires_at": rfc3339_in(3 * 86_400) })).await;
    let (gamma, _) = app.key(&owner, json!({ "label": "gamma" })).await;
    app.delete(&format!("/v1/api/keys/{gamma}"), &owner).await.assert_ok(200);
    for n in 0..2 {
        app.execute(&alpha, "echo", json!({ "n": n })).await.assert_ok(200);
    }
    app.member(&owner, "ada", "viewer").await;
    let browser = browser().await;
    sign_in(&browser, &app, "ada", "ada-password-1").await;
    goto(&browser, &app, "/dashboard/keys").await;
    let labels = || async {
        let mut labels = vec![];
        for row in rows(&browser, "main table").await {
            labels.push(row.split(' ').next().unwrap_or_default().to_owned());
        }
        labels
    };
    assert_eq!(labels().await, ["gamma", "beta", "alpha"], "newest first");

    choose(&browser, "#status", "active").await;
    click_and_wait(&browser, "Apply").await;
    assert_eq!(labels().await, ["beta", "alpha"]);
    assert!(text(&browser).await.contains("2 matching keys"));
    choose(&browser, "#tool", "echo").await;
    click_and_wait(&browser, "Apply").await;
    assert_eq!(labels().await, ["alpha"], "a tool filter keeps keys allowed that tool");
    goto(&browser, &app, "/dashboard/keys").await;
    click(&browser, "#expiring").await;
    click_and_wait(&browser, "Apply").await;
    assert_eq!(labels().await, ["beta"], "expiring within 7 days");
    goto(&browser, &app, "/dashboard/keys").await;
    click(&browser, "#unused").await;
    click_and_wait(&browser, "Apply").await;
    assert_eq!(labels().await, ["gamma", "beta"], "never used counts as unused");
    goto(&browser, &app, "/dashboard/keys").await;
    choose(&browser, "#sort", "label").await;
    click_and_wait(&browser, "Apply").await;
    assert_eq!(labels().await, ["alpha", "beta", "gamma"]);
    choose(&browser, "#order", "desc").await;
    click_and_wait(&browser, "Apply").await;
    assert_eq!(labels().await, ["gamma", "beta", "alpha"]);
    choose(&browser, "#sort", "spent_today").await;
    choose(&browser, "#order", "").await;
    click_and_wait(&browser, "Apply").await;
    assert_eq!(labels().await[0], "alpha", "the biggest spender first");
    screenshot(&browser, "keys-filtered").await;
    follow(&browser, "Clear filters").await;
    assert_eq!(labels().await, ["gamma", "beta", "alpha"]);
    browser.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn a_viewer_sees_no_member_or_admin_key_controls_and_a_forged_invitation_is_refused() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", true, 10_000).await;
    app.member(&owner, "vic", "viewer").await;
    let browser = browser().await;
    sign_in(&browser, &app, "vic", "vic-password-1").await;
    for (page, controls) in [
        ("/dashboard/members", ["Invite", "Change role", "Remove"]),
        ("/dashboard/admin-keys", ["Create admin key", "Revoke", "Revoke"]),
    ] {
        goto(&browser, &app, page).await;
        let source = browser.client.source().await.unwrap();
        assert!(source.contains("acme"), "{page}: {source}");
        for control in controls {
            assert!(!source.contains(&format!(">{control}")), "a viewer sees {control:?} on {page}");
        }
    }
    // A POST with the viewer's own session and token: the handler refuses it, nothing changes.
    goto(&browser, &app, "/dashboard/keys").await;
    let csrf = value_of(&browser, "input[name=csrf]").await;
    let forged = reqwest::Client::new()
        .post(app.url("/dashboard/members"))
        .header("Cookie", session_cookie(&browser).await)
        .form(&[("csrf", csrf.as_str()), ("login", "mallory"), ("role", "owner")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let members = app.get("/v1/api/members", &owner).await.assert_ok(200)["members"].clone();
    assert!(!members.to_string().contains("mallory"), "{members}");
    // Without the token (a cross-site form), refused before any handler.
    let cross_site = reqwest::Client::new()
        .post(app.url("/dashboard/admin-keys"))
        .header("Cookie", session_cookie(&browser).await)
        .header("Origin", "https://evil.example")
        .form(&[("label", "evil")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    assert_eq!(app.get("/v1/api/admin-keys", &owner).await.assert_ok(200)["admin_keys"], json!([]));
    browser.client.clone().close().await.unwrap();
}

/// On a phone the pages fit the screen: wide tables scroll inside themselves, never the page.
#[tokio::test]
async fn every_page_fits_a_phone_screen() {
    let app = TestApp::spawn().await;
    let owner = app.account("acme", true, 10_000).await;
    let (key_id, raw) =
        app.key(&owner, json!({ "label": "a-key-with-a-rather-long-label", "allowed_tools": ["echo"] })).await;
    app.execute(&raw, "echo", json!({ "n": 1 })).await.assert_ok(200);
    // An audit entry with long values: many networks and tools, caps, a long user agent.
    let cidrs: Vec<String> = (0..24).map(|i| format!("2001:db8:{i:x}::/48")).collect();
    let update = json!({ "allowed_cidrs": cidrs, "daily_cap_cents": 500, "total_cap_cents": 123_456, "label": "renamed-with-a-long-label-too" });
    let agent = format!(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) {}",
        "Extension/1.0 ".repeat(20)
    );
    let path = format!("/v1/api/keys/{key_id}");
    app.call(reqwest::Method::PATCH, &path, Some(&owner), Some(update), &[("User-Agent", &agent)]).await.assert_ok(200);
    app.member(&owner, "ada", "admin").await;
    let browser = browser().await;
    sign_in(&browser, &app, "ada", "ada-password-1").await;
    let key_page = format!("/dashboard/keys/{key_id}");
    // A phone, and the two most common laptop widths.
    for (width, height) in [(390, 844), (1280, 800), (1440, 900)] {
        browser.client.set_window_size(width, height).await.unwrap();
        for page in [
            "/dashboard/overview",
            "/dashboard/keys",
            key_page.as_str(),
            "/dashboard/spend",
            "/dashboard/audit",
            "/dashboard/members",
            "/dashboard/admin-keys",
            "/dashboard/webhooks",
        ] {
            goto(&browser, &app, page).await;
            let widths = browser
                .client
                .execute("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]", vec![])
                .await
                .unwrap();
            let (page_width, screen) = (widths[0].as_i64().unwrap(), widths[1].as_i64().unwrap());
            if page_width > screen {
                screenshot(&browser, &format!("wide-{width}")).await;
            }
            assert!(page_width <= screen, "{page}: the page is {page_width} px wide in a {screen} px window");
            assert!(text(&browser).await.contains("Sign out"), "{page}");
        }
    }
    goto(&browser, &app, "/dashboard/audit").await;
    screenshot(&browser, "audit-1440").await;
    browser.client.set_window_size(390, 844).await.unwrap();
    goto(&browser, &app, "/dashboard/keys").await;
    screenshot(&browser, "keys-phone").await;
    browser.client.clone().close().await.unwrap();
}

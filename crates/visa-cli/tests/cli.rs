//! The real `visa-cli` binary: `serve` as a subprocess on a random port, and the client
//! commands as subprocesses against it, exactly as a user runs them.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn serve_creates_its_data_dir_and_stops_cleanly_on_sigterm() {
    let mut server = ServerProcess::start(&[], None);
    let data = server.data_dir();
    assert!(data.join("visa.db").is_file());
    let token_file = data.join("operator-token");
    #[cfg(unix)]
    assert_eq!(mode(&token_file), 0o600);

    let health: Value = reqwest::blocking::get(format!("{}/healthz", server.url)).unwrap().json().unwrap();
    assert_eq!(health, serde_json::json!({ "ok": true }));

    // A request in flight when SIGTERM arrives still completes.
    let token = std::fs::read_to_string(&token_file).unwrap();
    let client = reqwest::blocking::Client::new();
    let url = server.url.clone();
    let account = post_json(
        &client,
        format!("{url}/v1/operator/accounts"),
        token.trim(),
        serde_json::json!({ "login": "drain", "approved": true, "credit_cents": 100 }),
    );
    let session = account["session_token"].as_str().unwrap();
    let key = post_json(&client, format!("{url}/v1/api/keys"), session, serde_json::json!({ "label": "drain" }));
    let raw = key["key"].as_str().unwrap().to_owned();
    let request = std::thread::spawn(move || {
        client
            .post(format!("{url}/v1/api/tools/sleep/execute"))
            .header("X-Api-Key", raw)
            .header("Idempotency-Key", "3f1c7a52-9a0b-4c3e-8d7e-2b6f0a9c1d4e")
            .json(&serde_json::json!({ "input": { "ms": 1000 } }))
            .send()
            .map(|r| r.status().as_u16())
    });
    std::thread::sleep(Duration::from_millis(300));
    let status = server.sigterm();
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(request.join().unwrap().unwrap(), 200, "the in-flight request was drained");
}

#[test]
fn newcomer_flow_through_the_cli() {
    let server = ServerProcess::start(&[], Some(OPERATOR_TOKEN));
    let created = server.cli(
        &["operator", "accounts", "create", "octocat", "--approve", "--credit", "100", "--password-stdin"],
        Some("correct horse\n"),
        None,
    );
    let out = assert_success(&created);
    assert!(out.contains("octocat") && out.contains("$100.00"), "{out}");

    let login = server.cli(&["login", "octocat", "--password-stdin"], Some("correct horse\n"), None);
    assert_success(&login);
    let session_file = server.dirs.path().join("config/session");
    #[cfg(unix)]
    assert_eq!(mode(&session_file), 0o600);

    // The stored session is used from here on.
    let key = json(&server.cli(
        &[
            "keys",
            "create",
            "my-demo-app",
            "--tools",
            "echo,or-gpt-4o-mini",
            "--daily-cap",
            "5",
            "--total-cap",
            "200",
            "--json",
        ],
        None,
        None,
    ));
    assert_eq!(key["daily_cap_cents"], 500);
    assert_eq!(key["total_cap_cents"], 20000);
    assert_eq!(key["allowed_tools"], serde_json::json!(["echo", "or-gpt-4o-mini"]));
    let id = key["id"].as_i64().unwrap().to_string();

    let readable = server.cli(&["keys", "create", "second", "--daily-cap", "0.5"], None, None);
    let out = assert_success(&readable);
    assert!(out.lines().next().unwrap().starts_with("VisaKey_live_"), "raw key first: {out}");
    assert!(stderr(&readable).contains("will not be shown again"));

    let list = assert_success(&server.cli(&["keys", "list"], None, None));
    assert!(
        list.contains("LABEL") && list.contains("my-demo-app") && list.contains("second") && list.contains("$0.50"),
        "{list}"
    );

    let got = assert_success(&server.cli(&["keys", "get", &id], None, None));
    assert!(got.contains("my-demo-app") && got.contains("$5.00"), "{got}");

    let updated = json(&server.cli(
        &["keys", "update", &id, "--daily-cap", "0.5", "--label", "renamed", "--rate-limit", "7", "--json"],
        None,
        None,
    ));
    assert_eq!(updated["daily_cap_cents"], 50);
    assert_eq!(updated["rate_limit_per_second"], 7);
    assert_eq!(updated["label"], "renamed");

    let rotated = assert_success(&server.cli(&["keys", "rotate", &id, "--grace", "10m"], None, None));
    assert!(rotated.starts_with("VisaKey_live_"), "{rotated}");
    let viewed = json(&server.cli(&["keys", "get", &id, "--json"], None, None));
    assert_eq!(viewed["secrets"][1]["status"], "expiring");
    // The readable views show each secret and when the old one stops working.
    let ends = viewed["secrets"][1]["expires_at"].as_str().unwrap().to_owned();
    let readable = assert_success(&server.cli(&["keys", "get", &id], None, None));
    assert!(readable.contains("expiring") && readable.contains(&ends), "{readable}");
    assert!(rotated.contains("expiring") && rotated.contains(&ends), "rotate shows it too: {rotated}");

    let revoked = assert_success(&server.cli(&["keys", "revoke", &id], None, None));
    assert!(revoked.contains(&format!("Revoked key {id}")), "{revoked}");
    let again = json(&server.cli(&["keys", "revoke", &id, "--json"], None, None));
    assert_eq!(again, serde_json::json!({ "success": true, "revoked": id.parse::<i64>().unwrap() }));

    // Spend a cent with the second key, then read balance and executions.
    let second_key = out.lines().next().unwrap().to_owned();
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/v1/api/tools/echo/execute", server.url))
        .header("X-Api-Key", &second_key)
        .header("Idempotency-Key", "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d")
        .json(&serde_json::json!({ "input": { "hi": 1 } }))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    std::thread::sleep(Duration::from_millis(1300)); // usage counts are flushed once a second
    let second_id = (id.parse::<i64>().unwrap() + 1).to_string();
    let usage = assert_success(&server.cli(&["keys", "usage", &second_id], None, None));
    assert!(usage.contains("1 requests, 1 ok") && usage.contains('█') && usage.contains("$0.01"), "{usage}");
    let balance = assert_success(&server.cli(&["balance"], None, None));
    assert!(balance.contains("balance $99.99"), "{balance}");
    // The key asks its own budget: its daily cap (50 cents) less the cent it spent.
    let budget = server.cli_command(&["budget"], None).env("VISA_API_KEY", &second_key).output().unwrap();
    let budget = assert_success(&budget);
    assert!(budget.contains("spendable $0.49") && budget.contains("limited by key_daily_cap"), "{budget}");
    let without = server.cli(&["budget"], None, None);
    assert!(!without.status.success() && String::from_utf8_lossy(&without.stderr).contains("VISA_API_KEY"));
    // A cap on each end user, set from the CLI; a call made for one ("team a/b+c": the query
    // is encoded), then that end user's budget.
    let capped = json(&server.cli(
        &["keys", "update", &second_id, "--end-user-daily-cap", "0.20", "--end-user-total-cap", "1", "--json"],
        None,
        None,
    ));
    assert_eq!(
        (capped["end_user_daily_cap_cents"].as_i64(), capped["end_user_total_cap_cents"].as_i64()),
        (Some(20), Some(100))
    );
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/v1/api/tools/echo/execute", server.url))
        .header("X-Api-Key", &second_key)
        .header("Idempotency-Key", "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5e")
        .header("X-Visa-End-User", "team a/b+c")
        .json(&serde_json::json!({ "input": { "hi": 2 } }))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let budget = server
        .cli_command(&["budget", "--end-user", "team a/b+c"], None)
        .env("VISA_API_KEY", &second_key)
        .output()
        .unwrap();
    let budget = assert_success(&budget);
    assert!(budget.contains("spendable $0.19") && budget.contains("limited by end_user_daily_cap"), "{budget}");
    assert!(
        budget.contains("end user team a/b+c: spent today $0.01")
            && budget.contains("caps $0.20 a day, $1.00 in total"),
        "{budget}"
    );
    // Spend over time: today's two calls, by tool and by end user, as a table and as CSV.
    let by_tool = assert_success(&server.cli(&["spend", "--by", "tool", "--since", "7d"], None, None));
    assert!(
        by_tool.contains("TOOL")
            && by_tool.lines().any(|l| l.contains("echo") && l.contains(" 2 ") && l.contains("$0.02")),
        "{by_tool}"
    );
    let csv = assert_success(&server.cli(&["spend", "--by", "end-user", "--csv"], None, None));
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("start,group,calls,charged_micros,charged_cents,key_daily_cap,"), "{csv}");
    assert_eq!(lines.len(), 2, "one end user named: {csv}");
    assert!(lines[1].contains(",team a/b+c,1,10000,1,0,0,0,0,0,0"), "{csv}");
    let bad = server.cli(&["spend", "--since", "soon"], None, None);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("not a duration"));
    let cleared =
        json(&server.cli(&["keys", "update", &second_id, "--end-user-total-cap", "none", "--json"], None, None));
    assert_eq!(
        (cleared["end_user_daily_cap_cents"].as_i64(), cleared["end_user_total_cap_cents"].as_i64()),
        (Some(20), None)
    );

    // The quickstart's `VISA_KEY=$(visa-cli keys create … | head -1)`: a reader that closes
    // early ends the command quietly (it used to panic with "failed printing to stdout").
    let mut child = server.cli_command(&["keys", "create", "piped"], None).spawn().unwrap();
    drop(child.stdout.take());
    let early = child.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&early.stderr).contains("panicked"), "{}", String::from_utf8_lossy(&early.stderr));

    let executions = assert_success(&server.cli(&["executions", "list"], None, None));
    assert!(executions.contains("succeeded") && executions.contains("echo"), "{executions}");
    // The CSV export, streamed to standard output: a header and the two calls, newest first.
    let csv = assert_success(&server.cli(&["executions", "export"], None, None));
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("execution_id,created_at,") && lines.len() == 3, "{csv}");
    assert!(lines[1].contains(",echo,succeeded,false,team a/b+c,10000,"), "{csv}");
    assert!(lines[2].contains(",echo,succeeded,false,,10000,"), "{csv}");
    let later = assert_success(&server.cli(
        &["executions", "export", "--from", "2999-01-01T00:00:00+00:00", "--to", "2999-01-02T00:00:00Z"],
        None,
        None,
    ));
    assert_eq!(later.lines().count(), 1, "a header alone: {later}");
    let backwards = server.cli(
        &["executions", "export", "--from", "2999-01-02T00:00:00Z", "--to", "2999-01-01T00:00:00Z"],
        None,
        None,
    );
    assert!(
        !backwards.status.success() && String::from_utf8_lossy(&backwards.stderr).contains("from must be before to")
    );
    let data_dir = server.data_dir();
    let verified =
        assert_success(&server.cli(&["ledger", "verify", "--data-dir", data_dir.to_str().unwrap()], None, None));
    assert!(verified.contains("ledger ok"));

    let admin = assert_success(&server.cli(&["admin-keys", "create", "ci"], None, None));
    let admin = admin.lines().next().unwrap().to_owned();
    assert!(admin.starts_with("VisaKey_admin_live_"), "{admin}");
    // The admin key drives the CLI like a session.
    let listed = server.cli(&["keys", "list", "--json"], None, Some(&admin));
    assert_eq!(json(&listed)["keys"].as_array().unwrap().len(), 3, "my-demo-app, second and piped");
    assert!(assert_success(&server.cli(&["admin-keys", "list"], None, None)).contains("ci"));
    assert_success(&server.cli(&["admin-keys", "revoke", "1"], None, None));
    assert_one_line_error(&server.cli(&["keys", "list"], None, Some(&admin)), "AUTH_INVALID");

    let tools = assert_success(&server.cli(&["tools"], None, None));
    assert!(tools.contains("echo") && tools.contains("$0.01"), "{tools}");

    // No secret reached the server's log or its data dir: raw keys, session tokens, the
    // operator token and the password are all absent from every file.
    let session = std::fs::read_to_string(&session_file).unwrap();
    assert_no_secret_kept(&server, &[second_key.as_str(), session.trim(), OPERATOR_TOKEN, "correct horse"]);
}

#[test]
fn cli_errors_are_one_line_and_non_zero() {
    let server = ServerProcess::start(&[], Some(OPERATOR_TOKEN));
    let created = json(&server.cli(&["operator", "accounts", "create", "octocat", "--json"], None, None));
    let session = created["session_token"].as_str().unwrap();

    assert_one_line_error(&server.cli(&["keys", "get", "9999"], None, Some(session)), "KEY_NOT_FOUND");
    // A remote plain-HTTP URL is refused before the session token (or a password) leaves;
    // 192.0.2.1 (TEST-NET) would swallow the request if it were sent.
    for args in [&["whoami"][..], &["login", "octocat", "--password-stdin"][..]] {
        let mut remote = server.cli_command(args, Some(session));
        remote.env("VISA_API_URL", "http://192.0.2.1:8080");
        let output = remote.output().unwrap();
        assert_one_line_error(&output, "refusing to send a credential over plain HTTP to 192.0.2.1");
    }
    assert_one_line_error(
        &server.cli(&["keys", "create", "x", "--daily-cap", "1.234"], None, Some(session)),
        "more than 2 decimals",
    );
    assert_one_line_error(&server.cli(&["keys", "create", "x", "--daily-cap=-1"], None, Some(session)), "negative");
    assert_one_line_error(
        &server.cli(&["keys", "create", "x", "--total-cap", "lots"], None, Some(session)),
        "not an amount",
    );
    assert_one_line_error(
        &server.cli(&["keys", "create", "x", "--tools", "nope"], None, Some(session)),
        "INVALID_REQUEST",
    );
    assert_one_line_error(
        &server.cli(&["keys", "create", "x", "--cidr", "300.1.1.1/8"], None, Some(session)),
        "INVALID_REQUEST",
    );
    // A command line clap cannot parse is explained whole: the value, the argument, a hint.
    let unparsed = server.cli(&["keys", "rotate", "1", "--grace", "soon"], None, Some(session));
    assert_eq!(unparsed.status.code(), Some(2));
    let explained = stderr(&unparsed);
    assert!(explained.contains("--grace <GRACE>") && explained.contains("not a duration"), "{explained}");
    let typo = server.cli(&["keys", "creat", "x"], None, Some(session));
    assert_eq!(typo.status.code(), Some(2));
    assert!(stderr(&typo).contains("'create'"), "suggests the subcommand: {}", stderr(&typo));
    assert_one_line_error(&server.cli(&["keys", "list"], None, Some("visa_session_forged")), "AUTH_INVALID");
    assert_one_line_error(&server.cli(&["operator", "accounts", "create", "octocat"], None, None), "ACCOUNT_EXISTS");
    assert_one_line_error(
        &server.cli(&["login", "octocat", "--password-stdin"], Some("wrong password\n"), None),
        "AUTH_INVALID",
    );
    // Caps the server clamped, or a daily cap above the total cap, are said, not silent.
    let clamped = server.cli(&["keys", "create", "clamped", "--daily-cap", "0"], None, Some(session));
    assert!(clamped.status.success() && stderr(&clamped).contains("daily cap is $0.01"), "{}", stderr(&clamped));
    let above = server.cli(&["keys", "create", "above", "--daily-cap", "5", "--total-cap", "1"], None, Some(session));
    assert!(above.status.success() && stderr(&above).contains("above the total cap"), "{}", stderr(&above));
    // --json is refused where it would do nothing.
    assert_one_line_error(&server.cli(&["serve", "--json"], None, None), "--json does not apply to serve");
    // No session stored and none in the environment.
    assert_one_line_error(&server.cli(&["keys", "list"], None, None), "not signed in");

    // An unreachable server.
    let output = Command::new(BIN)
        .args(["keys", "list"])
        .env("VISA_API_URL", "http://127.0.0.1:9")
        .env("VISA_SESSION_TOKEN", "x")
        .output()
        .unwrap();
    assert_one_line_error(&output, "cannot reach");
    assert!(stderr(&output).contains("visa-cli serve"), "says how to start one: {}", stderr(&output));
}

#[test]
fn a_bad_catalog_stops_the_server_naming_tool_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tools.toml");
    std::fs::write(&config, "[[tools]]\nid = \"pricey\"\nprice_micros = 100\nmax_price_micros = 5\nadapter = { type = \"builtin\", name = \"echo\" }\n").unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_one_line_error(&output, "max_price_micros");
    assert!(stderr(&output).contains("pricey"));

    let output = Command::new(BIN).args(["serve", "--environment", "staging"]).output().unwrap();
    assert_one_line_error(&output, "--environment");
}

/// A server with an approved account `acme` whose owner's password is `owner password`.
fn server_with_owner() -> ServerProcess {
    let server = ServerProcess::start(&[], Some(OPERATOR_TOKEN));
    let created = server.cli(
        &["operator", "accounts", "create", "acme", "--approve", "--password-stdin"],
        Some("owner password\n"),
        None,
    );
    assert_success(&created);
    server
}

#[test]
fn members_and_the_audit_log_through_the_cli() {
    use std::io::{BufRead, BufReader};
    let server = server_with_owner();
    assert_success(&server.cli(&["login", "acme", "--password-stdin"], Some("owner password\n"), None));

    // `audit --follow` prints what happens from now on, one line per entry.
    let mut follow = server.cli_command(&["audit", "--follow", "--json"], None).spawn().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let next_action = |wanted: &str| loop {
        let line = lines.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no {wanted} entry"));
        let entry: Value = serde_json::from_str(&line).unwrap();
        if entry["action"] == wanted {
            return entry;
        }
    };
    assert_eq!(next_action("account.created")["actor"]["type"], "operator");

    let invited = server.cli(&["members", "add", "vic", "--role", "viewer"], None, None);
    let token = assert_success(&invited).trim().to_owned();
    assert!(token.starts_with("visa_invite_"), "{token}");
    assert!(stderr(&invited).contains("members accept"), "{}", stderr(&invited));
    let invited_entry = next_action("member.invited");
    assert_eq!(invited_entry["actor"]["name"], "acme");
    assert_eq!(invited_entry["changes"]["role"]["after"], "viewer");
    assert!(invited_entry["user_agent"].as_str().unwrap().starts_with("visa-cli/"), "{invited_entry}");

    let members = assert_success(&server.cli(&["members", "list"], None, None));
    assert!(members.contains("ROLE") && members.contains("vic") && members.contains("invited"), "{members}");
    let vic_id = json(&server.cli(&["members", "list", "--json"], None, None))["members"][1]["id"].to_string();
    let promoted = assert_success(&server.cli(&["members", "role", &vic_id, "developer"], None, None));
    assert!(promoted.contains("vic is now developer"), "{promoted}");
    assert_eq!(next_action("member.role_changed")["changes"]["role"]["before"], "viewer");

    // Without a terminal and without --password-stdin, accept says how instead of failing obscurely.
    let mut no_tty = server.cli_command(&["members", "accept"], None);
    no_tty.env("VISA_INVITE_TOKEN", &token);
    let no_tty = no_tty.output().unwrap();
    assert_one_line_error(&no_tty, "--password-stdin");

    // The invitee accepts (token from the environment, password on stdin) and is signed in;
    // the CLI says who, and that the owner's stored session was replaced.
    let before = assert_success(&server.cli(&["whoami"], None, None));
    assert!(before.contains("acme (role owner) of account acme"), "{before}");
    let mut accept = server.cli_command(&["members", "accept", "--password-stdin"], None);
    accept.env("VISA_INVITE_TOKEN", &token);
    let mut child = accept.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"vic password 1\n").unwrap();
    let accepted = child.wait_with_output().unwrap();
    assert!(assert_success(&accepted).contains("Signed in as vic."), "{}", common::stdout(&accepted));
    assert!(stderr(&accepted).contains("replaced the session"), "{}", stderr(&accepted));
    let now = assert_success(&server.cli(&["whoami"], None, None));
    assert!(now.contains("vic (role developer) of account acme"), "{now}");
    next_action("member.joined");
    assert_one_line_error(&server.cli(&["members", "remove", &vic_id], None, None), "FORBIDDEN");
    assert_success(&server.cli(&["keys", "create", "vics-key"], None, None));
    assert_eq!(next_action("key.created")["actor"]["name"], "vic");

    let table = assert_success(&server.cli(&["audit", "--action", "member.role_changed"], None, None));
    assert!(table.contains("ACTION") && table.contains("role: \"viewer\" → \"developer\""), "{table}");
    assert!(!table.contains("member.invited"), "{table}");
    assert_one_line_error(&server.cli(&["audit", "--since", "last tuesday"], None, None), "INVALID_REQUEST");
    follow.kill().unwrap();
    follow.wait().unwrap();

    let vics_session = std::fs::read_to_string(server.dirs.path().join("config/session")).unwrap();
    assert_no_secret_kept(&server, &[token.as_str(), "owner password", "vic password 1", vics_session.trim()]);

    // logout ends the session on the server, not only here: the token no longer works.
    assert!(assert_success(&server.cli(&["logout"], None, None)).contains("Signed out."));
    assert!(!server.dirs.path().join("config/session").exists());
    assert_one_line_error(&server.cli(&["whoami"], None, Some(vics_session.trim())), "AUTH_INVALID");
    assert!(assert_success(&server.cli(&["logout"], None, None)).contains("Not signed in."));
}

/// A user who suspects a leaked session lists theirs, ends the stranger's and changes the
/// password, which ends every other session.
#[test]
fn sessions_and_password_through_the_cli() {
    let server = server_with_owner();
    let stranger = server.cli(&["login", "acme", "--password-stdin", "--json"], Some("owner password\n"), None);
    assert_success(&stranger);
    let stranger_session = std::fs::read_to_string(server.dirs.path().join("config/session")).unwrap();
    assert_success(&server.cli(&["login", "acme", "--password-stdin"], Some("owner password\n"), None));

    let table = assert_success(&server.cli(&["sessions", "list"], None, None));
    assert!(table.contains("(this one)") && table.contains("127.0.0.1"), "{table}");
    let listed: Value =
        serde_json::from_str(&assert_success(&server.cli(&["sessions", "list", "--json"], None, None))).unwrap();
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 3, "{listed}");
    let other =
        listed["sessions"].as_array().unwrap().iter().find(|s| s["current"] == false).unwrap()["id"].to_string();
    assert!(assert_success(&server.cli(&["sessions", "revoke", &other], None, None)).contains("Ended session"));
    assert_one_line_error(&server.cli(&["sessions", "revoke", &other], None, None), "NOT_FOUND");

    assert_one_line_error(
        &server.cli(&["password", "--password-stdin"], Some("wrong password\nnew password 2\n"), None),
        "AUTH_INVALID",
    );
    let changed = server.cli(&["password", "--password-stdin"], Some("owner password\nnew password 2\n"), None);
    assert!(assert_success(&changed).contains("; 1 other session ended."), "{}", common::stdout(&changed));
    assert_one_line_error(&server.cli(&["whoami"], None, Some(stranger_session.trim())), "AUTH_INVALID");
    assert_success(&server.cli(&["whoami"], None, None));
    assert_success(&server.cli(&["login", "acme", "--password-stdin"], Some("new password 2\n"), None));
    assert_no_secret_kept(&server, &["owner password", "new password 2", stranger_session.trim()]);
}

#[test]
fn serve_reads_a_config_file_under_the_environment_and_the_flags() {
    let dirs = Arc::new(tempfile::tempdir().unwrap());
    let file = dirs.path().join("visa.toml");
    std::fs::write(
        &file,
        "environment = \"preview\"\nbrand = \"FileBrand\"\nmax-connections = 77\ntrusted-proxy = [\"10.0.0.0/8\", \"192.0.2.0/24\"]\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();
    // The file sets all four; the environment overrides the brand, a flag the environment.
    let server = ServerProcess::start_with_env(
        dirs.clone(),
        &["--config-file", config, "--environment", "production"],
        Some(OPERATOR_TOKEN),
        &[("VISA_KEY_BRAND", "EnvBrand")],
    );
    assert!(server.log().contains("max_connections=77"), "{}", server.log());
    let session = tenant(&server, "configured", 100).session;
    let key = json(&server.cli(&["keys", "create", "k", "--json"], None, Some(&session)));
    assert!(key["key"].as_str().unwrap().starts_with("EnvBrand_live_"), "{key}");

    // An unknown key stops the server before it starts, naming it.
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nmax_conections = 5\n").unwrap();
    let refused = Command::new(BIN).args(["serve", "--config-file", config]).output().unwrap();
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(err.contains("unknown setting 'max_conections'") && err.contains("max-connections"), "{err}");
}

/// One password rule: the CLI states it and refuses a short password before sending it, and the
/// API refuses the same password in the same words.
#[test]
fn a_new_password_follows_the_one_rule_in_the_cli_and_the_api() {
    let server = ServerProcess::start(&[], Some(OPERATOR_TOKEN));
    let short = server.cli(&["operator", "accounts", "create", "pat", "--password-stdin"], Some("seven-7\n"), None);
    assert_one_line_error(&short, "a password must be 8 to 256 characters");
    let api = reqwest::blocking::Client::new()
        .post(format!("{}/v1/operator/accounts", server.url))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&serde_json::json!({ "login": "pat", "password": "seven-7" }))
        .send()
        .unwrap();
    assert_eq!(api.status().as_u16(), 400);
    let body: Value = api.json().unwrap();
    assert!(body["error"].as_str().unwrap().contains("a password must be 8 to 256 characters"), "{body}");
    let ok = server.cli(&["operator", "accounts", "create", "pat", "--password-stdin"], Some("eight-88\n"), None);
    assert_success(&ok);
}

#[test]
fn webhooks_through_the_cli() {
    let strict = ServerProcess::start(&[], Some(OPERATOR_TOKEN));
    let created = json(&strict.cli(&["operator", "accounts", "create", "hooks", "--json"], None, None));
    let session = created["session_token"].as_str().unwrap().to_owned();
    let refused = strict.cli(&["webhooks", "create", "http://127.0.0.1:9/hook"], None, Some(&session));
    assert_one_line_error(&refused, "webhook-allow-private");

    let server = ServerProcess::start(&["--webhook-allow-private", "127.0.0.0/8"], Some(OPERATOR_TOKEN));
    let created = json(&server.cli(&["operator", "accounts", "create", "hooks", "--json"], None, None));
    let session = created["session_token"].as_str().unwrap().to_owned();
    let receiver = WebhookReceiver::start();
    let url = receiver.url();
    let secret =
        assert_success(&server.cli(&["webhooks", "create", &url, "--event", "key.created"], None, Some(&session)));
    assert!(secret.trim().starts_with("whsec_"), "{secret}");
    let listed = assert_success(&server.cli(&["webhooks", "list"], None, Some(&session)));
    assert!(listed.contains(&url) && listed.contains("key.created") && listed.contains("enabled"), "{listed}");
    assert!(!listed.contains(secret.trim()), "the secret is shown once");

    let sent = assert_success(&server.cli(&["webhooks", "test", "1"], None, Some(&session)));
    assert!(sent.contains("msg_"), "{sent}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while receiver.requests().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the test event never arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut log = String::new();
    while !log.contains("200") {
        assert!(std::time::Instant::now() < deadline, "no delivery logged: {log}");
        std::thread::sleep(Duration::from_millis(50));
        log = assert_success(&server.cli(&["webhooks", "deliveries", "1"], None, Some(&session)));
    }
    assert!(log.contains("webhook.test"), "{log}");

    let disabled = assert_success(&server.cli(&["webhooks", "update", "1", "--disable"], None, Some(&session)));
    assert!(disabled.contains("disabled"), "{disabled}");
    let rotated = assert_success(&server.cli(&["webhooks", "rotate-secret", "1"], None, Some(&session)));
    assert!(rotated.trim().starts_with("whsec_") && rotated.trim() != secret.trim(), "{rotated}");
    assert_one_line_error(
        &server.cli(&["webhooks", "replay", "1", "--event-id", "msg_nope"], None, Some(&session)),
        "NOT_FOUND",
    );
    assert_success(&server.cli(&["webhooks", "delete", "1"], None, Some(&session)));
    assert_one_line_error(&server.cli(&["webhooks", "get", "1"], None, Some(&session)), "NOT_FOUND");
}

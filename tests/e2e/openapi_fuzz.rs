//! The OpenAPI document against the live server, by third-party tools: the document must
//! validate (`openapi-spec-validator`) and a schema-driven fuzzer (`schemathesis`) with real
//! credentials must find no 5xx, no undocumented status, no answer off its schema and no
//! valid request refused — on every operation, within a bounded number of examples.
//!
//! The Python tools live in the tests' venv (`visa_e2e::python_venv`, pinned versions in
//! `tests/python/requirements.txt`).
//! `tests/openapi/schemathesis.toml` holds the fuzzer's settings and the few operations where
//! a server rule cannot be said in JSON Schema, each with its reason.

use serde_json::json;
use std::path::Path;
use std::process::Command;
use visa_e2e::{OPERATOR_TOKEN, TestApp};

/// The operations that can end the fuzzer's own session, or take its rights away (its member
/// id is a small integer a fuzzer will try, and once the fuzzer has made other owners — an
/// owner may — the owner it signs in as may rightly be demoted).
const SESSION_ENDING: [&str; 6] = [
    "DELETE /v1/api/sessions/current",
    "DELETE /v1/api/sessions/{id}",
    "DELETE /v1/api/members/{id}/sessions",
    "POST /v1/api/sessions/current/password",
    "PATCH /v1/api/members/{id}",
    "DELETE /v1/api/members/{id}",
];

#[tokio::test(flavor = "multi_thread")]
async fn the_document_validates_and_the_live_server_matches_it() {
    let venv = visa_e2e::python_venv();
    // Only tools that are always ready: a provider tool without its key is 503 by design, and
    // the `fail` builtin answers 5xx on request; both are tested in their own suites.
    let echo = visa_e2e::catalog::TestTool::builtin("echo", "echo").set("aliases", r#"["builtin-echo"]"#);
    let catalog = visa_e2e::catalog::catalog(&[echo], "", None);
    let app = TestApp::spawn_with(|c| c.catalog = catalog).await;
    let session = app.account("fuzz", true, 1_000_000).await;
    // The tool key belongs to an account of its own: the session's fuzzed key operations (revoke,
    // rotate any key id) can then never end the key the fuzzer calls with.
    let keys_account = app.account("fuzz-keys", true, 1_000_000).await;
    let (_, api_key) = app.key(&keys_account, json!({ "label": "fuzz", "rate_limit_per_second": 100000 })).await;
    let work = tempfile::tempdir().unwrap();
    let document = work.path().join("openapi.json");
    let doc = app.call(reqwest::Method::GET, "/openapi.json", None, None, &[]).await;
    std::fs::write(&document, serde_json::to_vec_pretty(&doc.body).unwrap()).unwrap();

    let validate = Command::new(venv.join("bin/openapi-spec-validator")).arg(&document).output().unwrap();
    assert!(validate.status.success(), "openapi-spec-validator: {}", String::from_utf8_lossy(&validate.stdout));

    let examples = std::env::var("VISA_FUZZ_EXAMPLES").unwrap_or_else(|_| "30".into());
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/schemathesis.toml");
    let url = app.url("");
    // Two passes over every operation: first all but the ones that end the fuzzer's own session
    // (run first, they would leave every later session operation answering only 401, fuzzed
    // unauthenticated), then those alone, with the session they may end.
    let ending: Vec<String> =
        SESSION_ENDING.iter().flat_map(|name| ["--exclude-name".into(), (*name).into()]).collect();
    let only_ending: Vec<String> =
        SESSION_ENDING.iter().flat_map(|name| ["--include-name".into(), (*name).into()]).collect();
    for (pass, filter) in
        [("all but the session-ending operations", ending), ("the session-ending operations", only_ending)]
    {
        let (venv, config, url, document) = (venv.clone(), config.clone(), url.clone(), document.clone());
        let (examples, session, api_key) = (examples.clone(), session.clone(), api_key.clone());
        let fuzz = tokio::task::spawn_blocking(move || {
            Command::new(venv.join("bin/st"))
                .arg("--config-file")
                .arg(config)
                .args(["run", "--url", &url, "--max-examples", &examples, "--seed", "1", "--no-shrink"])
                .args(&filter)
                .arg(&document)
                .env("VISA_OPERATOR_TOKEN", OPERATOR_TOKEN)
                .env("VISA_SESSION_TOKEN", &session)
                .env("VISA_API_KEY", &api_key)
                .env("NO_COLOR", "1")
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let report = String::from_utf8_lossy(&fuzz.stdout);
        assert!(
            fuzz.status.success(),
            "schemathesis found failures ({pass}):\n{report}\n{}",
            String::from_utf8_lossy(&fuzz.stderr)
        );
        // The session-ending operations end the session they are fuzzed with; every other one
        // must have been fuzzed with its credentials.
        if !pass.starts_with("the session-ending") {
            assert!(!report.contains("Authentication failed"), "operations fuzzed without credentials:\n{report}");
        }
    }
    assert!(app.verify_ledger().await.is_empty(), "the fuzzed ledger does not verify");
}

//! Provider secrets stay secret: a real `visa-cli serve` calls a mock provider with a key from
//! its environment, including a provider that echoes that key back in an error, and the key
//! appears in no answer, no log line and no file of the data dir.

mod common;

use common::*;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use visa_e2e::mock_provider::MockProvider;

const PROVIDER_KEY: &str = "sk-provider-secret-do-not-leak-0123456789";

#[test]
fn provider_keys_never_reach_answers_logs_or_disk() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockProvider::start());
    let dirs = Arc::new(tempfile::tempdir().unwrap());
    let catalog = dirs.path().join("tools.toml");
    std::fs::write(
        &catalog,
        format!(
            "[[tools]]\nid = \"chat\"\nprice_micros = 100\ninput_micros_per_mtok = 150000\noutput_micros_per_mtok = 600000\n\
             max_price_micros = 100000\nadapter = {{ type = \"openai_chat\", base_url = \"{}\", model = \"m\", api_key_env = \"VISA_TEST_PROVIDER_KEY\" }}\n",
            mock.base_url
        ),
    )
    .unwrap();
    let server = ServerProcess::start_with_env(
        dirs.clone(),
        &["--config", catalog.to_str().unwrap()],
        Some(OPERATOR_TOKEN),
        &[("VISA_TEST_PROVIDER_KEY", PROVIDER_KEY), ("VISA_LOG", "debug")],
    );
    let client = reqwest::blocking::Client::new();
    let account = post_json(
        &client,
        format!("{}/v1/operator/accounts", server.url),
        OPERATOR_TOKEN,
        json!({ "login": "octocat", "approved": true, "credit_cents": 1000 }),
    );
    let session = account["session_token"].as_str().unwrap();
    let key = post_json(&client, format!("{}/v1/api/keys", server.url), session, json!({ "label": "k" }));
    let key = key["key"].as_str().unwrap();
    let call = |idem: &str| {
        client
            .post(format!("{}/v1/api/tools/chat/execute", server.url))
            .header("X-Api-Key", key)
            .header("Idempotency-Key", idem)
            .json(&json!({ "input": { "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 5 } }))
            .send()
            .unwrap()
    };
    let ok = call("a3bb189e-8bf9-4888-9912-ace4e6543002");
    assert_eq!(ok.status(), 200);
    assert!(!ok.text().unwrap().contains(PROVIDER_KEY));
    // The provider now refuses input and echoes the credential it was sent.
    mock.behaviour.status.store(422, Ordering::SeqCst);
    let refused = call("b3bb189e-8bf9-4888-9912-ace4e6543003");
    assert_eq!(refused.status(), 400);
    let text = refused.text().unwrap();
    assert!(text.contains("[redacted]") && !text.contains(&PROVIDER_KEY[..12]), "{text}");
    // And then refuses the server's own credentials: the operator's problem, not the caller's.
    mock.behaviour.status.store(401, Ordering::SeqCst);
    let unauthorized = call("c3bb189e-8bf9-4888-9912-ace4e6543004");
    assert_eq!(unauthorized.status(), 503);
    let text = unauthorized.text().unwrap();
    assert!(text.contains("TOOL_UNAVAILABLE") && !text.contains(&PROVIDER_KEY[..12]), "{text}");
    assert_eq!(
        mock.behaviour.last_authorization.lock().unwrap().as_deref(),
        Some(format!("Bearer {PROVIDER_KEY}").as_str()),
        "the key did reach the provider"
    );

    let log = server.log();
    assert!(log.contains("key created"), "the log is captured");
    assert!(!log.contains(PROVIDER_KEY), "the provider key is in the server log");
    for entry in std::fs::read_dir(server.data_dir()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(PROVIDER_KEY.len()).any(|w| w == PROVIDER_KEY.as_bytes()), "the provider key is stored");
    }
}

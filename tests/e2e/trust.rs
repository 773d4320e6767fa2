//! HTTPS-only and trusted proxies over real HTTP: 127.0.0.2 plays an outside client (the
//! local networks are narrowed to 127.0.0.1) or a reverse proxy.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::IpAddr;
use visa_e2e::TestApp;

async fn spawn(trusted_proxy: Option<&str>) -> TestApp {
    let proxies: Vec<ipnet::IpNet> = trusted_proxy.iter().map(|p| p.parse().unwrap()).collect();
    TestApp::spawn_with(move |c| {
        c.trust.local_networks = vec!["127.0.0.1/32".parse().unwrap()];
        c.trust.trusted_proxies = proxies;
    })
    .await
}

/// A client whose connections come from `source`.
fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(source.parse::<IpAddr>().unwrap()).build().unwrap()
}

async fn execute_from(
    app: &TestApp,
    client: &reqwest::Client,
    key: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = client
        .post(app.url("/v1/api/tools/echo/execute"))
        .header("X-Api-Key", key)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({ "input": {} }));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.json().await.unwrap())
}

#[tokio::test]
async fn plain_http_from_outside_is_refused() {
    let app = spawn(None).await;
    let (_, _, key) = app.funded_key("octocat").await;
    let outside = client_from("127.0.0.2");
    let (status, _, body) = execute_from(&app, &outside, &key, &[("X-Forwarded-Proto", "https")]).await;
    assert_eq!(status, 403);
    assert_eq!(body["error_code"], "HTTPS_REQUIRED");
    let tools = outside.get(app.url("/v1/api/tools")).send().await.unwrap();
    assert_eq!(tools.status(), 403);
    // Health probes stay reachable; local clients are served.
    assert_eq!(outside.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    let (status, headers, _) = execute_from(&app, &client_from("127.0.0.1"), &key, &[]).await;
    assert_eq!(status, 200);
    assert!(!headers.contains_key("strict-transport-security"), "no HSTS on plain HTTP");
}

#[tokio::test]
async fn a_trusted_proxy_forwards_https_and_the_real_client_ip() {
    let app = spawn(Some("127.0.0.2/32")).await;
    let session = app.account("octocat", true, 1_000).await;
    let (id, key) = app.key(&session, json!({ "label": "office", "allowed_cidrs": ["198.51.100.0/24"] })).await;
    let proxy = client_from("127.0.0.2");
    // The client put a fake address first; the proxy appended the real one.
    let forwarded = [("X-Forwarded-For", "203.0.113.66, 198.51.100.7"), ("X-Forwarded-Proto", "https")];
    let (status, headers, body) = execute_from(&app, &proxy, &key, &forwarded).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
    // Without X-Forwarded-Proto: https, the proxy's request is plain HTTP from outside.
    let (status, _, _) = execute_from(&app, &proxy, &key, &[("X-Forwarded-For", "198.51.100.7")]).await;
    assert_eq!(status, 403);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let fetched = app.get(&format!("/v1/api/keys/{id}"), &session).await;
    assert_eq!(fetched.body["last_used_ip"], "198.51.100.7");
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = spawn(None).await;
    let session = app.account("octocat", true, 1_000).await;
    let (_, key) = app.key(&session, json!({ "label": "office", "allowed_cidrs": ["198.51.100.0/24"] })).await;
    let local = client_from("127.0.0.1");
    let spoof = [("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-Proto", "https")];
    let (status, headers, body) = execute_from(&app, &local, &key, &spoof).await;
    assert_eq!(status, 403);
    assert_eq!(body["error_code"], "KEY_SOURCE_IP_DENIED", "the header did not move the client into the allowlist");
    assert!(!headers.contains_key("strict-transport-security"), "an untrusted X-Forwarded-Proto is not HTTPS");
}

/// The spoofs of the security review, sent by a trusted proxy: each once passed an allowlist of
/// 6.6.6.6/32 because the walk skipped the entry it could not parse.
#[tokio::test]
async fn a_forwarded_for_entry_is_never_skipped() {
    let app = spawn(Some("127.0.0.2/32")).await;
    let session = app.account("octocat", true, 1_000).await;
    let (_, key) = app.key(&session, json!({ "label": "office", "allowed_cidrs": ["6.6.6.6/32"] })).await;
    let proxy = client_from("127.0.0.2");
    let https = ("X-Forwarded-Proto", "https");
    let (status, _, body) = execute_from(&app, &proxy, &key, &[("X-Forwarded-For", "6.6.6.6"), https]).await;
    assert_eq!(status, 200, "the allowlisted client itself is served: {body}");
    for spoof in ["6.6.6.6, 203.0.113.7:4444", "6.6.6.6, [2001:db8::7]:4444"] {
        let (status, _, body) = execute_from(&app, &proxy, &key, &[("X-Forwarded-For", spoof), https]).await;
        assert_eq!((status.as_u16(), body["error_code"].as_str()), (403, Some("KEY_SOURCE_IP_DENIED")), "{spoof}");
    }
    let unreadable: [&[(&str, &str)]; 2] = [
        &[("X-Forwarded-For", "6.6.6.6, unknown"), https],
        &[("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "garbage"), https],
    ];
    for headers in unreadable {
        let (status, _, body) = execute_from(&app, &proxy, &key, headers).await;
        assert_eq!((status.as_u16(), body["error_code"].as_str()), (400, Some("INVALID_REQUEST")), "{headers:?}");
        assert!(body["error"].as_str().unwrap().contains("X-Forwarded-For"), "{body}");
    }
    // RFC 7239 Forwarded is ignored: it cannot move the client either.
    let forwarded = [("Forwarded", "for=6.6.6.6;proto=https"), ("X-Forwarded-For", "203.0.113.7"), https];
    let (status, _, body) = execute_from(&app, &proxy, &key, &forwarded).await;
    assert_eq!(body["error_code"], "KEY_SOURCE_IP_DENIED", "{status} {body}");
}

/// HTTPS is what the proxy nearest us saw, and the HTTPS-only rule applies to the client it
/// forwards, not to the proxy's own (local) address.
#[tokio::test]
async fn https_is_the_nearest_proxys_word_about_the_real_client() {
    let remote_proxy = spawn(Some("127.0.0.2/32")).await;
    let (_, _, key) = remote_proxy.funded_key("octocat").await;
    let proxy = client_from("127.0.0.2");
    let lines = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "http"), ("X-Forwarded-For", "203.0.113.7")];
    let (status, headers, body) = execute_from(&remote_proxy, &proxy, &key, &lines).await;
    assert_eq!((status.as_u16(), body["error_code"].as_str()), (403, Some("HTTPS_REQUIRED")));
    assert!(!headers.contains_key("strict-transport-security"));

    let local_proxy = spawn(Some("127.0.0.1/32")).await;
    let (_, _, key) = local_proxy.funded_key("octocat").await;
    let proxy = client_from("127.0.0.1");
    let plain = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "http")];
    let (status, _, body) = execute_from(&local_proxy, &proxy, &key, &plain).await;
    assert_eq!((status.as_u16(), body["error_code"].as_str()), (403, Some("HTTPS_REQUIRED")), "{body}");
    let secure = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")];
    let (status, _, body) = execute_from(&local_proxy, &proxy, &key, &secure).await;
    assert_eq!(status, 200, "{body}");
    // A local client through the same local proxy may still use plain HTTP.
    let (status, _, body) = execute_from(&local_proxy, &proxy, &key, &[("X-Forwarded-For", "127.0.0.1")]).await;
    assert_eq!(status, 200, "{body}");
}

//! Every rejection anywhere is the error envelope with the right status, and the OpenAPI
//! document covers every route.

use reqwest::Method;
use serde_json::json;
use visa_e2e::{OPERATOR_TOKEN, TestApp};

#[tokio::test]
async fn unknown_routes_and_methods() {
    let app = TestApp::spawn().await;
    app.call(Method::GET, "/nope", None, None, &[]).await.assert_error(404, "NOT_FOUND");
    app.call(Method::GET, "/v1/api/nope", None, None, &[]).await.assert_error(404, "NOT_FOUND");
    app.call(Method::PUT, "/v1/api/keys", None, None, &[]).await.assert_error(405, "METHOD_NOT_ALLOWED");
    app.call(Method::GET, "/v1/api/tools/echo/execute", None, None, &[]).await.assert_error(405, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn malformed_bodies() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let url = app.url("/v1/operator/accounts");
    let send = |body: Vec<u8>, content_type: &'static str| {
        client.post(&url).bearer_auth(OPERATOR_TOKEN).header("content-type", content_type).body(body).send()
    };
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (b"{not json".to_vec(), "application/json", 400, "INVALID_REQUEST"),
        (b"{\"login\":\"a\"}".to_vec(), "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b"{\"login\":\"a\",\"extra\":1}".to_vec(), "application/json", 400, "INVALID_REQUEST"),
        (b"[]".to_vec(), "application/json", 400, "INVALID_REQUEST"),
        (vec![b' '; 1024 * 1024 + 10], "application/json", 413, "PAYLOAD_TOO_LARGE"),
    ];
    for (body, content_type, status, code) in cases {
        let response = send(body, content_type).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{code}");
        let envelope: serde_json::Value = response.json().await.unwrap();
        assert_eq!(envelope["success"], false);
        assert_eq!(envelope["error_code"], code);
        assert_eq!(envelope["retryable"], false);
    }
}

#[tokio::test]
async fn errors_never_echo_a_secret() {
    let app = TestApp::spawn().await;
    let (_, _, key) = app.funded_key("octocat").await;
    let mut tampered = key.clone();
    tampered.pop();
    tampered.push('!');
    let reply = app.execute(&tampered, "echo", json!({})).await;
    assert!(!reply.body.to_string().contains(&tampered[..20]));
    let reply = app.post("/v1/operator/accounts", "not-the-operator-token-secret", json!({ "login": "x" })).await;
    assert!(!reply.body.to_string().contains("not-the-operator"));
}

#[tokio::test]
async fn openapi_covers_every_route() {
    let app = TestApp::spawn().await;
    let doc = app.call(Method::GET, "/openapi.json", None, None, &[]).await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = &doc.body["paths"];
    let expected = [
        ("/healthz", "get"),
        ("/openapi.json", "get"),
        ("/metrics", "get"),
        ("/v1/operator/accounts", "post"),
        ("/v1/operator/accounts/{login}", "patch"),
        ("/v1/operator/accounts/{login}/credits", "post"),
        ("/v1/api/sessions", "post"),
        ("/v1/api/keys", "post"),
        ("/v1/api/keys", "get"),
        ("/v1/api/keys/{id}", "get"),
        ("/v1/api/keys/{id}", "patch"),
        ("/v1/api/keys/{id}", "delete"),
        ("/v1/api/keys/{id}/rotate", "post"),
        ("/v1/api/tools", "get"),
        ("/v1/api/tools/{tool}/execute", "post"),
        ("/v1/api/balance", "get"),
        ("/v1/api/keys/revoke-leaked", "post"),
        ("/v1/api/keys/{id}/secrets/{secret_id}/revoke", "post"),
        ("/v1/api/keys/{id}/usage", "get"),
        ("/v1/api/admin-keys", "post"),
        ("/v1/api/admin-keys", "get"),
        ("/v1/api/admin-keys/{id}", "delete"),
        ("/v1/api/executions", "get"),
        ("/v1/api/executions/{id}", "get"),
        ("/v1/operator/executions", "get"),
        ("/v1/operator/executions/{id}/reconcile", "post"),
        ("/v1/api/members", "get"),
        ("/v1/api/members", "post"),
        ("/v1/api/members/{id}", "patch"),
        ("/v1/api/members/{id}", "delete"),
        ("/v1/api/members/accept", "post"),
        ("/v1/api/audit", "get"),
    ];
    for (path, method) in expected {
        assert!(paths[path][method].is_object(), "{method} {path} missing from the OpenAPI document");
    }
    let schemas = &doc.body["components"]["schemas"];
    for schema in ["KeyView", "CreateKeyRequest", "ExecuteRequest", "ExecutionResponse", "ErrorBody"] {
        assert!(schemas[schema].is_object(), "schema {schema} missing");
    }
    // Code generators need unique operationIds; every error points at a shared response that exists.
    let mut ids = std::collections::HashSet::new();
    for (path, item) in paths.as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} repeats");
            for (status, response) in op["responses"].as_object().unwrap() {
                if let Some(reference) = response["$ref"].as_str() {
                    let name = reference.trim_start_matches("#/components/responses/");
                    assert!(
                        doc.body["components"]["responses"][name].is_object(),
                        "{status} of {id}: {reference} missing"
                    );
                }
            }
        }
    }
    // Shape-derived errors: a secured route documents 401, a body 415, a path id 404.
    let update = &paths["/v1/api/keys/{id}"]["patch"]["responses"];
    for status in ["400", "401", "403", "404", "413", "415", "503"] {
        assert!(update[status].is_object(), "PATCH /v1/api/keys/{{id}} does not document {status}");
    }
    // The server's own catalog names the tools; every error code is listed.
    let tool = &paths["/v1/api/tools/{tool}/execute"]["post"]["parameters"][0];
    assert_eq!(tool["name"], "tool");
    assert!(tool["schema"]["enum"].as_array().unwrap().iter().any(|t| t == "echo"), "{tool}");
    let codes = schemas["ErrorBody"]["properties"]["error_code"]["enum"].as_array().unwrap();
    assert!(codes.iter().any(|c| c == "IDEMPOTENCY_UNAVAILABLE") && codes.len() >= 30, "{codes:?}");
    assert_eq!(paths["/v1/api/keys"]["get"]["parameters"][0]["schema"]["maximum"], 100);
}

#[tokio::test]
async fn tool_catalog_lists_prices_and_readiness() {
    let app = TestApp::spawn().await;
    let reply = app.call(Method::GET, "/v1/api/tools", None, None, &[]).await;
    let tools = reply.assert_ok(200)["tools"].as_array().unwrap().clone();
    let echo = tools.iter().find(|t| t["id"] == "echo").unwrap();
    assert_eq!(echo["price_micros"], "10000");
    assert_eq!(echo["price_cents"], 1);
    assert_eq!(echo["ready"], true);
    assert!(tools.iter().any(|t| t["id"] == "or-gpt-4o-mini"));
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(|c| c.header_read_timeout = std::time::Duration::from_millis(300)).await;
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"POST /v1/api/keys HTTP/1.1\r\nHost: visa\r\nX-Dribble: a").await.unwrap();
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 512];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), slow.read(&mut buffer)).await;
    let closed_after = started.elapsed();
    // Closed by the server (EOF, or a 408 it sends first), not by our 5 s guard.
    assert!(read.is_ok(), "the connection was still open after 5 s");
    assert!(closed_after >= std::time::Duration::from_millis(250), "closed too early: {closed_after:?}");
    // A well-behaved client on another connection is unaffected.
    app.get("/healthz", "").await;
}

/// A body far over the limit gets its 413 envelope, not a connection reset: the server reads
/// and drops the rest (up to 64 MiB) before answering.
#[tokio::test]
async fn a_body_far_over_the_limit_is_answered_413() {
    let app = TestApp::spawn().await;
    let body = vec![b' '; 4 * 1024 * 1024];
    let response = reqwest::Client::new()
        .post(app.url("/v1/api/sessions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("an answer, not a reset");
    assert_eq!(response.status().as_u16(), 413);
    let envelope: serde_json::Value = response.json().await.unwrap();
    assert_eq!(envelope["error_code"], "PAYLOAD_TOO_LARGE");
}

/// Raw body bytes, for bodies `serde_json::Value` cannot express (a repeated field).
async fn post_raw(app: &TestApp, path: &str, body: &'static str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(app.url(path))
        .bearer_auth(OPERATOR_TOKEN)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn integers_may_be_written_as_whole_floats_and_nothing_else_loosens() {
    let app = TestApp::spawn().await;
    app.account("floaty", true, 0).await;
    let path = "/v1/operator/accounts/floaty/credits";
    // JSON Schema's integer (and so the OpenAPI document) admits 5.0.
    let (status, body) = post_raw(&app, path, r#"{"amount_cents": 5.0}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account"]["balance_cents"], 5);
    for refused in
        [r#"{"amount_cents": 5.5}"#, r#"{"amount_cents": 1, "amount_cents": 100}"#, r#"{"amount_cents": 1e300}"#]
    {
        let (status, body) = post_raw(&app, path, refused).await;
        assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_REQUEST")), "{refused}: {body}");
    }
    let (_, body) = post_raw(&app, path, r#"{"amount_cents": 2}"#).await;
    assert_eq!(body["account"]["balance_cents"], 7, "only the accepted credits moved money");
}

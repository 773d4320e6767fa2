//! HTTPS via rustls: a certificate generated at test time, HSTS on every answer, plain HTTP
//! not spoken on the TLS port, and a renewed certificate picked up by a reload (SIGHUP).

use std::path::Path;
use visa_e2e::TestApp;
use visa_server::tls::TlsFiles;

struct TestCert {
    pem: String,
    der: Vec<u8>,
}

fn write_cert(dir: &Path) -> TestCert {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = certified.cert.pem();
    std::fs::write(dir.join("cert.pem"), &pem).unwrap();
    std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    TestCert { pem, der: certified.cert.der().to_vec() }
}

fn client_trusting(cert: &TestCert) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem.as_bytes()).unwrap())
        .tls_info(true)
        .build()
        .unwrap()
}

async fn peer_certificate(client: &reqwest::Client, url: &str) -> Vec<u8> {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let info = response.extensions().get::<reqwest::tls::TlsInfo>().expect("TLS info");
    info.peer_certificate().unwrap().to_vec()
}

#[tokio::test]
async fn serves_https_with_hsts_and_reloads_the_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let first = write_cert(certs.path());
    let files = TlsFiles { cert: certs.path().join("cert.pem"), key: certs.path().join("key.pem") };
    let app = TestApp::spawn_with(|c| {
        c.tls = Some(files);
        // Even a non-local client is served: the connection itself is HTTPS.
        c.trust.local_networks = vec![];
    })
    .await;
    let url = format!("https://localhost:{}/v1/api/tools", app.addr.port());

    let client = client_trusting(&first);
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["strict-transport-security"].to_str().unwrap().contains("max-age="));
    assert_eq!(peer_certificate(&client, &url).await, first.der);

    // Plain HTTP is not spoken on the TLS port.
    let plain = reqwest::get(format!("http://127.0.0.1:{}/healthz", app.addr.port())).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    // A renewed certificate is served after a reload, without a restart.
    let second = write_cert(certs.path());
    app.reload_tls().await;
    let renewed = client_trusting(&second);
    assert_eq!(peer_certificate(&renewed, &url).await, second.der);
}

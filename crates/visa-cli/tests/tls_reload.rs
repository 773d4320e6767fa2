//! `visa-cli serve --tls-cert --tls-key` speaks HTTPS, and `kill -HUP` makes it serve a renewed
//! certificate without a restart.

mod common;

use common::*;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn write_cert(dir: &Path) -> (String, Vec<u8>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    (certified.cert.pem(), certified.cert.der().to_vec())
}

fn served_certificate(pem: &str, url: &str) -> Option<Vec<u8>> {
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .tls_info(true)
        .build()
        .unwrap();
    let response = client.get(url).send().ok()?;
    let info = response.extensions().get::<reqwest::tls::TlsInfo>()?;
    info.peer_certificate().map(<[u8]>::to_vec)
}

#[test]
fn sighup_reloads_the_certificate() {
    let dirs = Arc::new(tempfile::tempdir().unwrap());
    let (first_pem, first_der) = write_cert(dirs.path());
    let cert = dirs.path().join("cert.pem");
    let key = dirs.path().join("key.pem");
    let server = ServerProcess::start_in(
        dirs.clone(),
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
        Some(OPERATOR_TOKEN),
    );
    let url = server.url.replace("http://127.0.0.1", "https://localhost") + "/healthz";
    assert_eq!(served_certificate(&first_pem, &url), Some(first_der));

    let (second_pem, second_der) = write_cert(dirs.path());
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while served_certificate(&second_pem, &url).as_ref() != Some(&second_der) {
        assert!(Instant::now() < deadline, "the renewed certificate was not served after SIGHUP");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.log().contains("TLS certificate reloaded"), "{}", server.log());
}

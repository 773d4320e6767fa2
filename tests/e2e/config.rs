//! `ServeConfig::check`: a configuration that would break a guarantee is refused before
//! anything is opened, naming what is wrong.

use std::time::Duration;

#[tokio::test]
async fn a_per_minute_window_longer_than_the_per_hour_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = visa_server::ServeConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("data"));
    config.usage_minute_retention = Duration::from_secs(10 * 24 * 3600);
    config.usage_hour_retention = Duration::from_secs(24 * 3600);
    let error = config.check().unwrap_err().to_string();
    assert!(error.contains("usage retention"), "{error}");
}

#[tokio::test]
async fn a_node_lease_too_short_to_renew_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = visa_server::ServeConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("data"));
    config.node_lease = Duration::ZERO;
    let error = config.check().unwrap_err().to_string();
    assert!(error.contains("node lease"), "{error}");
    config.node_lease = Duration::from_secs(3);
    config.check().unwrap();
}

//! Signing: an endpoint's secret is `whsec_` + base64 of HMAC-SHA256(webhook key, salt), so the
//! database holds only the salt, which reveals nothing without the key. The webhook key is
//! `VISA_WEBHOOK_KEY`, or else derived from the operator token (which every node of a cluster
//! shares; rotating it then changes every endpoint's secret — set `VISA_WEBHOOK_KEY` to keep
//! them apart). A delivery carries the Standard Webhooks headers, signed with the current
//! secret and, during a rotation's overlap, with the previous one too.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use visa_core::secret::hmac_sha256;
use visa_store::{Timestamp, WebhookEndpoint};

/// Random bytes of a new endpoint's salt.
pub const SALT_BYTES: usize = 32;

/// The server's webhook key.
#[derive(Clone)]
pub struct WebhookKey([u8; 32]);

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey(..)")
    }
}

impl WebhookKey {
    /// From `VISA_WEBHOOK_KEY` if set, else from the operator token.
    pub fn new(configured: Option<&str>, operator_token: &str) -> Self {
        match configured.map(str::trim).filter(|k| !k.is_empty()) {
            Some(key) => Self(hmac_sha256(b"visa-webhook-key", &[key.as_bytes()])),
            None => Self(hmac_sha256(b"visa-webhook-key-from-operator-token", &[operator_token.as_bytes()])),
        }
    }

    /// A fresh salt for a new secret.
    pub fn new_salt() -> Vec<u8> {
        use rand::RngCore;
        let mut salt = vec![0u8; SALT_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        salt
    }

    fn secret_bytes(&self, salt: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.0, &[b"visa-webhook-secret\0", salt])
    }

    /// The secret of `salt`, as the endpoint's owner is shown it once: `whsec_<base64>`.
    pub fn secret(&self, salt: &[u8]) -> String {
        format!("whsec_{}", STANDARD.encode(self.secret_bytes(salt)))
    }

    /// `webhook-signature` for `payload` sent as `msg_id` at `timestamp` (Unix seconds): one
    /// `v1,<base64>` per live secret, space-separated, the current one first.
    pub fn signature(
        &self,
        endpoint: &WebhookEndpoint,
        now: Timestamp,
        msg_id: &str,
        timestamp: i64,
        payload: &str,
    ) -> String {
        let previous =
            endpoint.previous_salt.as_deref().filter(|_| endpoint.previous_until.is_some_and(|until| until > now));
        std::iter::once(endpoint.secret_salt.as_slice())
            .chain(previous)
            .map(|salt| {
                let signed = format!("{msg_id}.{timestamp}.{payload}");
                format!("v1,{}", STANDARD.encode(hmac_sha256(&self.secret_bytes(salt), &[signed.as_bytes()])))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use visa_store::{AccountId, WebhookId};

    fn endpoint(salt: &[u8], previous: Option<(&[u8], Timestamp)>) -> WebhookEndpoint {
        WebhookEndpoint {
            id: WebhookId::new(1),
            account_id: AccountId::new(1),
            url: "https://example.com/hook".into(),
            events: vec!["*".into()],
            description: String::new(),
            enabled: true,
            disabled_reason: None,
            secret_salt: salt.to_vec(),
            previous_salt: previous.map(|(s, _)| s.to_vec()),
            previous_until: previous.map(|(_, t)| t),
            failing_since: None,
            created_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn signatures_verify_with_the_standard_webhooks_library_for_each_live_secret() {
        let key = WebhookKey::new(Some("a webhook key of the operator's"), "unused");
        let now = Timestamp::now_utc();
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let rotated = endpoint(&new, Some((&old, now + time::Duration::hours(1))));
        let ts = now.unix_timestamp();
        let payload = r#"{"type":"webhook.test"}"#;
        let signature = key.signature(&rotated, now, "msg_1", ts, payload);
        assert_eq!(signature.split(' ').count(), 2, "{signature}");
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().unwrap());
        headers.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        headers.insert("webhook-signature", signature.parse().unwrap());
        for salt in [old, new] {
            let receiver = standardwebhooks::Webhook::new(&key.secret(&salt)).unwrap();
            receiver.verify(payload.as_bytes(), &headers).expect("each secret verifies during the overlap");
        }
        // After the overlap only the new secret signs.
        let later = key.signature(&rotated, now + time::Duration::hours(2), "msg_1", ts, payload);
        headers.insert("webhook-signature", later.parse().unwrap());
        assert!(
            standardwebhooks::Webhook::new(&key.secret(&old)).unwrap().verify(payload.as_bytes(), &headers).is_err()
        );
        standardwebhooks::Webhook::new(&key.secret(&new)).unwrap().verify(payload.as_bytes(), &headers).unwrap();
    }

    #[test]
    fn a_secret_depends_on_the_key_and_the_salt() {
        let (a, b) = (WebhookKey::new(None, "operator-token-one"), WebhookKey::new(None, "operator-token-two"));
        assert_ne!(a.secret(&[1; 32]), b.secret(&[1; 32]));
        assert_ne!(a.secret(&[1; 32]), a.secret(&[2; 32]));
        assert!(a.secret(&[1; 32]).starts_with("whsec_"));
        assert_eq!(format!("{a:?}"), "WebhookKey(..)");
    }
}
